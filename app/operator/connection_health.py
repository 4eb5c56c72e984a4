"""The health of each connection: paused or not, deliveries by status, and how long it has been failing.

A connection whose oldest undelivered delivery has been failing (transient errors, or paused on
refused credentials) for longer than ``APPLYRELAY_DEGRADED_AFTER_S`` (default 1 h) is *degraded*:
a cron job logs ``connection.degraded`` (warning) every minute while it lasts and
``connection.recovered`` once, and ``/metrics`` exposes the gauges an alert keys on
(``applyrelay_connection_oldest_failing_seconds``, ``applyrelay_connection_degraded``).

Computed from the status indexes (every status but `delivered`), so the cost grows with the
deliveries not yet delivered plus the dead letters kept, not with the history.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from arq import cron
from redis.asyncio import Redis

from app.config import Config
from app.delivery import queue, transitions
from app.delivery.record import Delivery, Status
from app.delivery.store import DeliveryStore
from app.redis.client import awaited
from app.redis.keys import DEGRADED_SET, paused_key, semaphore_key

if TYPE_CHECKING:
    from arq.cron import CronJob

    from app.settings import Settings

log = structlog.get_logger("applyrelay.connections")

OPEN_STATUSES = ("queued", "delivering", "retry_scheduled", "paused", "failed")
PAGE = 500


@dataclass
class ConnectionStatus:
    id: str
    connector: str
    paused: bool = False
    paused_reason: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPEN_STATUSES, 0))
    failing: int = 0
    oldest_failing_s: float = 0.0
    degraded: bool = False
    in_flight: int = 0
    concurrency: int = 0
    rate_per_s: float | None = None

    def view(self) -> dict[str, Any]:
        data = asdict(self)
        data["oldest_failing_s"] = round(self.oldest_failing_s, 1)
        return data


def failing_since(delivery: Delivery) -> float | None:
    """When this not-yet-delivered delivery started failing (None: it is not failing)."""
    if delivery.status in ("delivered", "failed"):
        return None
    if delivery.status not in ("retry_scheduled", "paused") and delivery.last_error is None:
        return None
    failures = [a.finished_at for a in delivery.attempts if a.outcome != "ok"]
    if failures:
        return min(failures)
    return delivery.last_error.at if delivery.last_error and delivery.last_error.at else delivery.created_at


async def _scan(store: DeliveryStore, status: str) -> list[Delivery]:
    found, offset = [], 0
    while True:
        ids = await store.list_ids(status, offset=offset, count=PAGE, newest_first=False)
        found.extend(await store.get_many(ids))
        if len(ids) < PAGE:
            return found
        offset += PAGE


async def connection_statuses(
    store: DeliveryStore, config: Config, *, threshold_s: float, now: float | None = None
) -> list[ConnectionStatus]:
    now = time.time() if now is None else now
    statuses = {
        cid: ConnectionStatus(cid, c.connector, concurrency=c.concurrency, rate_per_s=c.rate_per_s)
        for cid, c in config.connections.items()
    }
    oldest: dict[str, float] = {}
    for status in OPEN_STATUSES:
        for delivery in await _scan(store, status):
            entry = statuses.get(delivery.connection_id)
            if entry is None:  # a connection no longer configured: not reported
                continue
            entry.counts[delivery.status] = entry.counts.get(delivery.status, 0) + 1
            since = failing_since(delivery)
            if since is not None:
                entry.failing += 1
                oldest[entry.id] = min(oldest.get(entry.id, since), since)
    redis = store.redis
    pipe = redis.pipeline(transaction=False)
    for cid in statuses:
        pipe.get(paused_key(cid))
        pipe.zcount(semaphore_key(cid), f"({int(now * 1000)}", "+inf")
    answers = await pipe.execute()
    for i, entry in enumerate(statuses.values()):
        reason, in_flight = answers[2 * i], answers[2 * i + 1]
        entry.paused, entry.paused_reason = reason is not None, reason.decode() if reason else None
        entry.in_flight = int(in_flight)
        entry.oldest_failing_s = max(0.0, now - oldest[entry.id]) if entry.id in oldest else 0.0
        entry.degraded = entry.failing > 0 and entry.oldest_failing_s >= threshold_s
    return list(statuses.values())


async def report_degraded(redis: Redis, statuses: list[ConnectionStatus]) -> list[str]:
    """Log the degraded connections (an alert keys on `connection.degraded`) and the recoveries."""
    before = {m.decode() for m in await awaited(redis.smembers(DEGRADED_SET))}
    degraded = [s for s in statuses if s.degraded]
    for s in degraded:
        log.warning(
            "connection.degraded",
            connection=s.id,
            connector=s.connector,
            oldest_failing_s=round(s.oldest_failing_s),
            failing=s.failing,
            paused=s.paused,
        )
    names = {s.id for s in degraded}
    for cid in before - names:
        log.warning("connection.recovered", connection=cid)  # resolves the alert: same level
    pipe = redis.pipeline(transaction=True)
    pipe.delete(DEGRADED_SET)
    if names:
        pipe.sadd(DEGRADED_SET, *names)
    await pipe.execute()
    return sorted(names)


async def check_connections(ctx: dict[str, Any]) -> list[str]:
    runtime = ctx["runtime"]
    threshold_s = runtime.settings.degraded_after_s
    return await report_degraded(
        runtime.redis,
        await connection_statuses(runtime.store, runtime.config, threshold_s=threshold_s),
    )


def cron_job(settings: Settings) -> CronJob:
    """Every minute, on one worker (arq's cron jobs have unique ids across workers). The timeout is
    the job timeout: arq holds a killed worker's jobs for the longest function timeout + 10 s."""
    return cron(
        check_connections, name="check_connections", second=0, timeout=settings.job_timeout_s, run_at_startup=True
    )


# -- Prometheus text exposition ---------------------------------------------------------------------


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for k, v in labels.items()
    )
    return "{" + inner + "}"


async def metrics_text(store: DeliveryStore, config: Config, *, threshold_s: float) -> str:
    statuses = await connection_statuses(store, config, threshold_s=threshold_s)
    lines: list[str] = []

    def gauge(name: str, help_text: str, rows: list[tuple[dict[str, str], float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{_labels(**labels)} {value:g}" for labels, value in rows)

    ids = [({"connection": s.id, "connector": s.connector}, s) for s in statuses]
    gauge(
        "applyrelay_connection_oldest_failing_seconds",
        "Age of the oldest undelivered delivery that is failing (0 when none).",
        [(lbl, s.oldest_failing_s) for lbl, s in ids],
    )
    gauge(
        "applyrelay_connection_degraded",
        "1 when the connection has been failing longer than the threshold.",
        [(lbl, float(s.degraded)) for lbl, s in ids],
    )
    gauge(
        "applyrelay_connection_paused",
        "1 when deliveries are paused on refused credentials.",
        [(lbl, float(s.paused)) for lbl, s in ids],
    )
    gauge(
        "applyrelay_connection_in_flight",
        "Delivery runs holding a concurrency slot now.",
        [(lbl, float(s.in_flight)) for lbl, s in ids],
    )
    gauge(
        "applyrelay_connection_deliveries",
        "Deliveries not yet delivered, and dead letters, by status.",
        [({**lbl, "status": st}, float(n)) for lbl, s in ids for st, n in s.counts.items()],
    )
    redis = store.redis
    # (applyrelay_queue_jobs{state} is in app/operator/metrics.py; this one is the autoscaling signal)
    gauge(
        "applyrelay_queue_due_jobs",
        "Jobs in the arq queue that are due now (the autoscaling signal).",
        [({}, float(await redis.zcount(queue.QUEUE_NAME, "-inf", int(time.time() * 1000))))],
    )
    return "\n".join(lines) + "\n"


async def resume(store: DeliveryStore, connection_id: str) -> int:
    """Lift the connection's pause and re-queue its paused deliveries; returns how many."""
    await store.lift_pause(connection_id)
    resumed = 0
    for delivery in await store.get_many(await store.list_ids("paused", count=100_000)):
        if delivery.connection_id == connection_id and delivery.status == Status.PAUSED:
            move = transitions.requeue(delivery, time.time(), fresh_schedule=False)
            await store.save(delivery, move, run_at=time.time(), run_seq=delivery.runs + 1)
            resumed += 1
    return resumed
