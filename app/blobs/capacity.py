"""Whether the relay can take an application now, answered honestly (docs/operations.md, "When a
store is full or away").

- Redis near `maxmemory`: intake (and queued actions) get 503 + Retry-After from a high-water
  mark (90 %), before Redis itself refuses writes. The rest is headroom for the workers, whose
  state writes must keep succeeding: each delivery they finish frees memory.
- Redis refusing writes (OOM, read-only replica) or away, the blob store full, unreachable or
  refusing: the same 503 (rendered by app/web/problems.py), and `/ready` answers 503 while it lasts.
- Every change of state is logged once (`platform.unavailable` / `platform.available`) and
  exported as the gauge `applyrelay_store_unavailable{store, reason}`.
- An evicting `maxmemory-policy` is refused at start: an evicted delivery is a lost application.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.blobs.store import BlobStore, BlobUnavailable
from app.core.problems import Problem

log = structlog.get_logger("applyrelay.capacity")

HIGH_WATER = 0.9  # of Redis's maxmemory: above it, intake waits for the workers to drain
RETRY_AFTER_S = 30
CODE = "PLATFORM.UNAVAILABLE"
STORES = ("redis", "blobs")


class EvictingRedis(RuntimeError):
    """Redis would evict keys under memory pressure: the relay does not start on it."""


def unavailable(store: str, reason: str) -> Problem:
    """The refusal of an application the relay cannot store now: nothing was kept, send it again."""
    what = {"redis": "the queue store (Redis)", "blobs": "the attachment store"}[store]
    return Problem(
        503,
        "Temporarily unavailable",
        f"{what} is {reason}; retry after {RETRY_AFTER_S} s (an application refused so was not stored)",
        code=CODE,
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


class Capacity:
    """The web process's view of its stores, checked at most every `every_s` (cheap per request)."""

    def __init__(
        self,
        redis: Redis,
        blobs: BlobStore,
        *,
        high_water: float = HIGH_WATER,
        every_s: float = 1.0,
        blobs_every_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis = redis
        self.blobs = blobs
        self.high_water = high_water
        self.every_s = {"redis": every_s, "blobs": blobs_every_s}
        self.clock = clock
        self.reasons: dict[str, str | None] = dict.fromkeys(STORES)
        self._checked: dict[str, float] = dict.fromkeys(STORES, -math.inf)

    def mark(self, store: str, reason: str | None) -> None:
        """What an operation just met (an OOM answer, a failed blob write), until the next check."""
        previous = self.reasons[store]
        self.reasons[store] = reason
        self._checked[store] = self.clock()
        if reason != previous:
            if reason is None:
                log.info("platform.available", store=store, was=previous)
            else:
                log.warning("platform.unavailable", store=store, reason=reason)

    async def redis_reason(self) -> str | None:
        if self.clock() - self._checked["redis"] < self.every_s["redis"]:
            return self.reasons["redis"]
        try:
            info: dict[str, Any] = await self.redis.info("memory")
            role = (await self.redis.info("replication")).get("role")
        except (RedisError, OSError):
            # Away: not cached, the write itself fails and is answered 503 (app/web/problems.py),
            # and the first request after Redis is back goes through.
            return None
        used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
        reason = "full" if limit and used >= limit * self.high_water else None
        if role == "slave":  # a replica (a failover not followed yet): it refuses every write
            reason = "read-only"
        self.mark("redis", reason)
        return reason

    async def blobs_reason(self) -> str | None:
        if self.clock() - self._checked["blobs"] < self.every_s["blobs"]:
            return self.reasons["blobs"]
        try:
            await self.blobs.check()
            reason = None
        except BlobUnavailable as exc:
            reason = exc.reason
        self.mark("blobs", reason)
        return reason

    async def check_intake(self) -> None:
        """Raise the 503 `Problem` while Redis is above its high-water mark (or was just seen
        refusing). A failing blob store answers for itself, when a file is written: an
        application without files is still taken."""
        reason = await self.redis_reason()
        if reason is not None:
            raise unavailable("redis", reason)

    async def not_ready(self) -> list[str]:
        """Why this process should get no traffic now ("redis: full", ...); empty when ready."""
        reasons = {"redis": await self.redis_reason(), "blobs": await self.blobs_reason()}
        return [f"{store}: {reason}" for store, reason in reasons.items() if reason]

    def gauge_text(self) -> str:
        lines = [
            "# HELP applyrelay_store_unavailable 1 while this process sees the store unable to take writes (reason)",
            "# TYPE applyrelay_store_unavailable gauge",
        ]
        for store in STORES:
            reason = self.reasons[store]
            lines.append(
                f'applyrelay_store_unavailable{{store="{store}",reason="{reason or "none"}"}} {int(bool(reason))}'
            )
        return "\n".join(lines) + "\n"


async def refuse_evicting_policy(redis: Redis) -> None:
    """Raise `EvictingRedis` unless Redis's maxmemory-policy is noeviction (or Redis is away: the
    start goes on and /ready says so; the check runs again at the next start)."""
    try:
        info: dict[str, Any] = await redis.info("memory")
    except (RedisError, OSError) as exc:
        log.warning("redis.policy_unchecked", error_type=type(exc).__name__)
        return
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        raise EvictingRedis(
            f"Redis maxmemory-policy is {policy}: under memory pressure Redis would evict the relay's "
            "keys, and an evicted delivery is a lost application. Set maxmemory-policy noeviction "
            "(redis.conf, or --maxmemory-policy noeviction); the relay then answers 503 when Redis is full"
        )
