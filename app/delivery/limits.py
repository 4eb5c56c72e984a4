"""Per-connection limits that hold across every worker process: a Redis semaphore and a token bucket.

An ATS (or a unified API in front of it, e.g. Kombo's 30 in-flight actions per integration)
caps what one account may have in flight. Each worker runs many deliveries at once and there
are many workers, so the cap lives in Redis:

* **concurrency** — a semaphore: ``ar:sem:<connection>`` is a sorted set of leases, each scored by
  its expiry (Redis server time, so worker clocks do not matter). A lease is taken for a whole
  delivery run and released when the run ends; a killed worker's lease expires by itself after
  the run's lease time, so its slot comes back without anyone cleaning up.
* **rate_per_s** — an optional token bucket (``ar:tb:<connection>``), burst = max(1, rate):
  delivery runs started per second, whatever the number of workers.

Both are checked in one Lua script, so a token is never spent on a run that then finds no free
slot. When either says no, the engine re-schedules the run shortly without spending an attempt.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

from app.config import Connection
from app.redis.keys import bucket_key, semaphore_key

# A Lua function, also part of the engine's start-of-run script (app/delivery/store.py,
# `begin_run`: pause check, limits and the run's first write in one round trip).
# acquire(semaphore, bucket, lease ttl ms, limit, token, rate per s (0 = none), burst) returns
# {1, 0} when a slot (and a token) was taken, else {0, ms to wait (or -1: no slot)}.
ACQUIRE_FUNCTION = """
local function acquire(sem, bucket, ttl, limit, token, rate, burst)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', sem, '-inf', now)
  if redis.call('ZCARD', sem) >= limit then return {0, -1} end
  if rate > 0 then
    local state = redis.call('HMGET', bucket, 'tokens', 'at')
    local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
    tokens = math.min(burst, tokens + (now - at) * rate / 1000)
    if tokens < 1 then
      redis.call('HSET', bucket, 'tokens', tostring(tokens), 'at', now)
      return {0, math.ceil((1 - tokens) * 1000 / rate)}
    end
    redis.call('HSET', bucket, 'tokens', tostring(tokens - 1), 'at', now)
    redis.call('PEXPIRE', bucket, math.ceil(burst * 1000 / rate) + 60000)
  end
  redis.call('ZADD', sem, now + ttl, token)
  redis.call('PEXPIRE', sem, ttl + 60000)
  return {1, 0}
end
"""
# KEYS: semaphore, bucket. ARGV: lease ttl ms, limit, token, rate per s (0 = none), burst.
_ACQUIRE = (
    ACQUIRE_FUNCTION
    + "return acquire(KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]),"
    + " tonumber(ARGV[5]))"
)


@dataclass(frozen=True)
class Lease:
    connection_id: str
    token: str


@dataclass(frozen=True)
class Denied:
    """No run now; `wait_s` is how long the bucket needs (None: every slot is taken)."""

    wait_s: float | None


@dataclass(frozen=True)
class LimitRequest:
    """One acquire, as the script's keys and arguments (see `ConnectionLimiter.request`)."""

    connection_id: str
    token: str
    keys: tuple[str, str]  # semaphore, bucket
    limits: tuple[int, int, float, int]  # lease ttl ms, limit, rate per s, burst

    @property
    def args(self) -> list[str | int | float]:
        ttl, limit, rate, burst = self.limits
        return [ttl, limit, self.token, rate, burst]

    def answer(self, ok: object, wait_ms: object) -> Lease | Denied:
        """The script's reply ({1, 0} or {0, ms to wait or -1}) as a lease or a refusal."""
        if int(ok):  # type: ignore[call-overload]
            return Lease(self.connection_id, self.token)
        wait = int(wait_ms)  # type: ignore[call-overload]
        return Denied(None if wait < 0 else wait / 1000)


class ConnectionLimiter:
    def __init__(self, redis: Redis, lease_s: float) -> None:
        self.redis = redis
        self.lease_ms = int(lease_s * 1000)
        self._acquire = redis.register_script(_ACQUIRE)

    async def acquire(self, connection: Connection) -> Lease | Denied:
        ask = self.request(connection)
        ok, wait_ms = await self._acquire(keys=ask.keys, args=ask.args)
        return ask.answer(ok, wait_ms)

    def request(self, connection: Connection) -> LimitRequest:
        """What `acquire` sends, for a caller that runs `ACQUIRE_FUNCTION` inside its own script
        (the engine's `begin_run`: one round trip with the pause check and the run's start)."""
        rate = connection.rate_per_s or 0.0
        return LimitRequest(
            connection.id,
            uuid.uuid4().hex,
            (semaphore_key(connection.id), bucket_key(connection.id)),
            (self.lease_ms, connection.concurrency, rate, max(1, math.floor(rate)) if rate else 0),
        )

    async def release(self, lease: Lease) -> None:
        await self.redis.zrem(*self.slot(lease))

    @staticmethod
    def slot(lease: Lease) -> tuple[str, str]:
        """(semaphore key, member): what `release` removes, for a caller that sends it along with
        its own commands (the engine, with the delivery's lease: one round trip)."""
        return semaphore_key(lease.connection_id), lease.token

    async def in_flight(self, connection_id: str) -> int:
        """Leases held now (expired ones included until the next acquire sweeps them)."""
        return int(await self.redis.zcard(semaphore_key(connection_id)))
