"""Bounded retention: candidate data is kept only as long as the relay needs it.

- attachment bytes: dropped as soon as the ATS confirmed each file (engine), and all of them when
  the delivery is delivered;
- delivered payloads: purged `keep_delivered_s` after delivery (default 7 days);
- dead letters (failed): payload and files purged `keep_dead_letters_s` after they failed
  (default 30 days) — long enough for an operator to retry.

A purge keeps the delivery's state record (ids, statuses, attempts: no candidate data). The sweep
runs as an arq cron job in the workers (every 10 minutes, and at start-up); it reads each status
index by score (the time of the last change) from where the previous sweep stopped
(`ar:retention:cursor`), so each sweep reads only what became due since. Purged records are
counted in `ar:m:purged` (hash, field = reason), which /metrics exposes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog
from arq import cron

from app.delivery.engine import file_count
from app.delivery.store import DeliveryStore
from app.redis.client import awaited
from app.redis.keys import PURGED_METRIC, RETENTION_CURSOR, status_index

if TYPE_CHECKING:
    from arq.cron import CronJob

    from app.settings import Settings

log = structlog.get_logger("applyrelay.retention")
BATCH = 500
RULES = (("delivered", "delivered"), ("failed", "dead_letter"))  # (status, reason)


@dataclass(frozen=True)
class RetentionPolicy:
    keep_delivered_s: float = 7 * 86400.0
    keep_dead_letters_s: float = 30 * 86400.0

    def keep(self, status: str) -> float:
        return self.keep_delivered_s if status == "delivered" else self.keep_dead_letters_s


async def sweep(
    store: DeliveryStore, policy: RetentionPolicy, now: float, budget_s: float | None = None
) -> dict[str, int]:
    """Purge every delivered / failed delivery whose last change is older than its retention.
    With `budget_s`, stop in time and leave the rest (in score order) to the next sweep."""
    purged: dict[str, int] = {}
    redis = store.redis
    deadline = None if budget_s is None else time.monotonic() + budget_s
    for status, reason in RULES:
        cutoff = now - policy.keep(status)
        raw_cursor = await awaited(redis.hget(RETENTION_CURSOR, status))
        start: Any = float(raw_cursor) if raw_cursor else "-inf"
        resume = cutoff  # where the next sweep starts: the oldest record left behind, else the cutoff
        count, offset, out_of_time = 0, 0, False
        while not out_of_time:
            rows = await redis.zrangebyscore(
                status_index(status), start, cutoff, start=offset, num=BATCH, withscores=True
            )
            if not rows:
                break
            offset += len(rows)
            states = {d.id: d for d in await store.get_many([i.decode() for i, _ in rows])}
            for raw_id, score in rows:
                if deadline is not None and time.monotonic() > deadline:
                    resume, out_of_time = min(resume, score), True
                    break
                delivery = states.get(raw_id.decode())
                if delivery is None or delivery.status != status or (delivery.payload_purged and delivery.files_purged):
                    continue
                done = await _purge(store, delivery.id, status, cutoff, now)
                if done is None:
                    resume = min(resume, score)  # being run right now: leave it for the next sweep
                count += bool(done)
        await awaited(redis.hset(RETENTION_CURSOR, status, repr(resume)))
        if count:
            await awaited(redis.hincrby(PURGED_METRIC, reason, count))
        purged[reason] = count
    return purged


async def _purge(store: DeliveryStore, delivery_id: str, status: str, cutoff: float, now: float) -> bool | None:
    """Purge under the delivery's lease (never under a running delivery); None if busy or if a
    signed file link handed to the ATS is still valid (kept until it expires), False if it changed
    meanwhile and is no longer due."""
    token = await store.acquire_lease(delivery_id, 30.0)
    if token is None:
        return None
    try:
        fresh = await store.get(delivery_id)
        if fresh is not None and (fresh.keep_files_until or 0) > now:
            return None
        if fresh is not None and fresh.status == status and fresh.updated_at <= cutoff:
            await store.purge(fresh, await file_count(store, fresh))
            return True
        return False
    finally:
        await store.release_lease(delivery_id, token)


def policy_from(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(keep_delivered_s=settings.keep_delivered_s, keep_dead_letters_s=settings.keep_dead_letters_s)


def make_job(policy: RetentionPolicy, clock: Callable[[], float] = time.time, budget_s: float | None = None) -> Any:
    async def retention(ctx: dict[str, Any]) -> dict[str, int]:
        runtime = ctx["runtime"]
        now = getattr(runtime, "clock", clock)()  # a runtime may carry its own clock (tests move it)
        purged = await sweep(runtime.store, policy, now, budget_s=budget_s)
        if any(purged.values()):
            log.info("retention.purged", **purged)
        return purged

    return retention


def cron_job(settings: Settings) -> CronJob:
    """`CRON_JOBS` entry: the retention sweep every 10 minutes, and once at worker start-up.

    Its timeout is the delivery jobs' one: arq sizes every job's in-progress lease on the longest
    function timeout, and a longer one would delay the re-run of a killed worker's deliveries. A
    sweep that runs out of time resumes where it stopped."""
    timeout = settings.job_timeout_s
    return cron(
        make_job(policy_from(settings), budget_s=timeout * 0.8),
        name="retention",
        minute=set(range(0, 60, 10)),
        run_at_startup=True,
        unique=True,
        timeout=timeout,
    )
