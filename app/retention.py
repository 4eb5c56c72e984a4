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
from typing import Any

import structlog
from arq import cron

from app.erasure import PURGED_METRIC, file_count
from app.store import PREFIX, DeliveryStore, status_index

log = structlog.get_logger("applyrelay.retention")
CURSOR_KEY = PREFIX + "retention:cursor"
BATCH = 500
RULES = (("delivered", "delivered"), ("failed", "dead_letter"))  # (status, reason)


@dataclass(frozen=True)
class RetentionPolicy:
    keep_delivered_s: float = 7 * 86400.0
    keep_dead_letters_s: float = 30 * 86400.0

    def keep(self, status: str) -> float:
        return self.keep_delivered_s if status == "delivered" else self.keep_dead_letters_s


async def sweep(store: DeliveryStore, policy: RetentionPolicy, now: float) -> dict[str, int]:
    """Purge every delivered / failed delivery whose last change is older than its retention."""
    purged: dict[str, int] = {}
    redis = store.redis
    for status, reason in RULES:
        cutoff = now - policy.keep(status)
        raw_cursor = await redis.hget(CURSOR_KEY, status)
        start: Any = float(raw_cursor) if raw_cursor else "-inf"
        held: float | None = None  # the oldest record skipped (busy): the next sweep starts there
        count, offset = 0, 0
        while True:
            rows = await redis.zrangebyscore(status_index(status), start, cutoff, start=offset, num=BATCH,
                                             withscores=True)
            if not rows:
                break
            offset += len(rows)
            for delivery in await store.get_many([i.decode() for i, _ in rows]):
                if delivery.status != status or (delivery.payload_purged and delivery.files_purged):
                    continue
                token = await store.acquire(delivery.id, 30.0)
                if token is None:  # being retried right now: leave it for the next sweep
                    held = delivery.updated_at if held is None else min(held, delivery.updated_at)
                    continue
                try:
                    fresh = await store.get(delivery.id)
                    if fresh is None or fresh.status != status or fresh.updated_at > cutoff:
                        continue
                    await store.purge(fresh, await file_count(store, fresh))
                    count += 1
                finally:
                    await store.release(delivery.id, token)
        await redis.hset(CURSOR_KEY, status, str(cutoff if held is None else min(held, cutoff)))
        if count:
            await redis.hincrby(PURGED_METRIC, reason, count)
        purged[reason] = count
    return purged


def policy_from(settings: Any) -> RetentionPolicy:
    return RetentionPolicy(keep_delivered_s=settings.keep_delivered_s,
                           keep_dead_letters_s=settings.keep_dead_letters_s)


def make_job(policy: RetentionPolicy, clock: Callable[[], float] = time.time) -> Any:
    async def retention(ctx: dict[str, Any]) -> dict[str, int]:
        runtime = ctx["runtime"]
        now = getattr(runtime, "clock", clock)()  # a runtime may carry its own clock (tests move it)
        purged = await sweep(runtime.store, policy, now)
        if any(purged.values()):
            log.info("retention.purged", **purged)
        return purged
    return retention


def cron_job(settings: Any) -> Any:
    """`CRON_JOBS` entry: the retention sweep every 10 minutes, and once at worker start-up."""
    return cron(make_job(policy_from(settings)), name="retention", minute=set(range(0, 60, 10)),
                run_at_startup=True, unique=True, timeout=600)
