"""Sync only created applications: follow, in the ATS, the stage and outcome of the applications the
relay created — and nothing else (no bulk sync of the ATS's data).

* **Enrolment.** Delivered applications carry their remote id (``checkpoints["application"]``).
  Each run reads the `delivered` index from a cursor and adds new ones to ``ar:sync``, a sorted set
  scored by the time of their next check.
* **Polling.** Each run checks the entries that are due (at most `batch`), through the connector's
  ``application_status`` and under the connection's concurrency/rate limits, then schedules the next
  check `APPLYRELAY_STATUS_SYNC_INTERVAL_S` later (default 15 min). Entries leave the set after
  `APPLYRELAY_STATUS_SYNC_DAYS` (default 60), when the ATS has no such call, or when the application
  is gone (404).
* **Changes** are stored on the Delivery (`remote_status`, shown by ``GET /v1/deliveries/{id}``) and,
  when the connection has a status callback, queued as a signed callback (app/tracking/callbacks.py);
  the first status seen and each change are also reported to the delivery's board when it wants
  them (HelloWork, Indeed: app/tracking/boards.py).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from arq import cron

from app.delivery.limits import ConnectionLimiter, Denied
from app.delivery.record import Delivery
from app.redis.keys import SYNC_CURSOR as CURSOR
from app.redis.keys import SYNC_SET, status_index
from app.tracking import boards, callbacks
from connectors.base import AuthError, ConnectorError, PermanentError

if TYPE_CHECKING:
    from arq.cron import CronJob

    from app.runtime import Runtime
    from app.settings import Settings

log = structlog.get_logger("applyrelay.status_sync")

VOLATILE = frozenset({"observed_at", "checked_at"})


@dataclass
class SyncReport:
    enrolled: int = 0
    checked: int = 0
    changed: list[str] = field(default_factory=list)
    dropped: int = 0
    skipped: int = 0
    callbacks: int = 0
    board_reports: int = 0


def _syncable(delivery: Delivery, now: float, window_s: float) -> bool:
    return (
        delivery.kind == "application"
        and delivery.status == "delivered"
        and bool(delivery.checkpoints.get("application"))
        and delivery.remote_status is None
        and delivery.erased_at is None
        and (delivery.delivered_at or now) >= now - window_s
    )


async def enroll(runtime: Runtime, now: float, report: SyncReport) -> None:
    redis, store = runtime.redis, runtime.store
    raw = await redis.get(CURSOR)
    cursor = float(raw) if raw else now - runtime.settings.status_sync_window_s
    while True:
        rows = await redis.zrangebyscore(
            status_index("delivered"), f"({cursor}", "+inf", start=0, num=500, withscores=True
        )
        if not rows:
            break
        deliveries = await store.get_many([r[0].decode() for r in rows])
        fresh = {d.id: now for d in deliveries if _syncable(d, now, runtime.settings.status_sync_window_s)}
        if fresh:
            report.enrolled += await redis.zadd(SYNC_SET, fresh, nx=True)
        cursor = rows[-1][1]
        await redis.set(CURSOR, repr(cursor))
        if len(rows) < 500:
            break


def _same(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    if a is None:
        return False
    return {k: v for k, v in a.items() if k not in VOLATILE} == {k: v for k, v in b.items() if k not in VOLATILE}


async def check_one(
    runtime: Runtime, limiter: ConnectionLimiter, delivery_id: str, now: float, report: SyncReport
) -> None:
    redis, store, config = runtime.redis, runtime.store, runtime.config
    later = {delivery_id: now + runtime.settings.status_sync_interval_s}
    delivery_lease = await store.acquire_lease(delivery_id, 60)
    if delivery_lease is None:  # a run of this delivery is going on: next time
        await redis.zadd(SYNC_SET, {delivery_id: now + 30})
        report.skipped += 1
        return
    try:
        delivery = await store.get(delivery_id)
        connection = config.connections.get(delivery.connection_id) if delivery else None
        if (
            delivery is None
            or connection is None
            or delivery.erased_at is not None
            or (delivery.delivered_at or now) < now - runtime.settings.status_sync_window_s
        ):
            await redis.zrem(SYNC_SET, delivery_id)
            report.dropped += 1
            return
        if await store.paused_reason(connection.id):
            await redis.zadd(SYNC_SET, later)
            report.skipped += 1
            return
        lease = await limiter.acquire(connection)
        if isinstance(lease, Denied):
            await redis.zadd(SYNC_SET, {delivery_id: now + 30})
            report.skipped += 1
            return
        try:
            status = await runtime.connectors.get(connection.id).application_status(
                delivery.checkpoints["application"], job_id=delivery.job_id
            )
        except PermanentError as exc:
            if exc.status not in (404, 410):
                raise
            status = {"outcome": "DELETED", "stage_id": None, "stage_name": None}
        finally:
            await limiter.release(lease)
        report.checked += 1
        if status is None:  # this ATS cannot be asked
            await redis.zrem(SYNC_SET, delivery_id)
            report.dropped += 1
            if delivery.remote_status is None:  # the board still hears it reached the ATS (NEW)
                report.board_reports += await boards.on_status_change(
                    redis, connection, delivery, dict(boards.RECEIVED), None, now
                )
            return
        if status.get("outcome") == "DELETED":
            await redis.zrem(SYNC_SET, delivery_id)
        else:
            await redis.zadd(SYNC_SET, later)
        previous = delivery.remote_status
        if _same(previous, status):
            return
        delivery.remote_status = {**status, "observed_at": now}
        await store.save(delivery)  # the ATS's status only: the delivery's stays
        report.changed.append(delivery_id)
        log.info(
            "application.status_changed",
            delivery_id=delivery_id,
            connection=connection.id,
            stage_id=status.get("stage_id"),
            outcome=status.get("outcome"),
        )
        if connection.status_callback_url:
            await callbacks.enqueue(redis, delivery, dict(delivery.remote_status), previous, now=now)
            report.callbacks += 1
        report.board_reports += await boards.on_status_change(
            redis, connection, delivery, dict(delivery.remote_status), previous, now
        )
    except AuthError as exc:
        await redis.zadd(SYNC_SET, later)
        log.warning("status_sync.auth_refused", delivery_id=delivery_id, http_status=exc.status)
    except ConnectorError as exc:  # transient, or refused: try again at the next interval
        await redis.zadd(SYNC_SET, later)
        log.info("status_sync.failed", delivery_id=delivery_id, error_type=type(exc).__name__, http_status=exc.status)
    finally:
        await store.release_lease(delivery_id, delivery_lease)


async def sync_once(
    runtime: Runtime, *, now: float | None = None, batch: int = 200, budget_s: float = 30.0
) -> SyncReport:
    """Enrol newly delivered applications, then check those that are due by `now`; no new check
    starts after `budget_s` (the rest wait for the next run), so the cron job ends in time."""
    now = time.time() if now is None else now
    deadline = time.monotonic() + budget_s
    report = SyncReport()
    await enroll(runtime, now, report)
    limiter = ConnectionLimiter(runtime.redis, runtime.settings.lease_s)
    gate = asyncio.Semaphore(8)  # checks in flight from this worker; the connection limits apply too

    async def check(delivery_id: str) -> None:
        async with gate:
            if time.monotonic() < deadline:
                await check_one(runtime, limiter, delivery_id, now, report)

    due = await runtime.redis.zrangebyscore(SYNC_SET, "-inf", now, start=0, num=batch)
    await asyncio.gather(*(check(raw.decode()) for raw in due))
    return report


async def sync_application_status(ctx: dict[str, Any]) -> dict[str, int]:
    runtime = ctx["runtime"]
    budget = runtime.settings.run_budget_s / 2
    report = await sync_once(runtime, budget_s=budget)
    if report.callbacks:  # the first attempt goes out now, not at the next dispatch tick
        await callbacks.dispatch_due(runtime.redis, runtime.config, runtime.http, budget_s=budget / 2)
    if report.board_reports:
        await boards.dispatch_due(
            runtime.redis, runtime.config, runtime.http, budget_s=budget / 2, sealer=runtime.sealer
        )
    return {"enrolled": report.enrolled, "checked": report.checked, "changed": len(report.changed)}


def cron_job(settings: Settings) -> CronJob:
    """Every minute; each application is checked at most every APPLYRELAY_STATUS_SYNC_INTERVAL_S."""
    return cron(sync_application_status, name="sync_application_status", second=30, timeout=settings.job_timeout_s)
