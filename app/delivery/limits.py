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

# KEYS: semaphore, bucket. ARGV: lease ttl ms, limit, token, rate per s (0 = none), burst.
# Returns {1, 0} when a slot (and a token) was taken, else {0, ms to wait (or -1: no slot)}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl, limit, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= limit then return {0, -1} end
if rate > 0 then
  local state = redis.call('HMGET', KEYS[2], 'tokens', 'at')
  local tokens, at = tonumber(state[1]) or burst, tonumber(state[2]) or now
  tokens = math.min(burst, tokens + (now - at) * rate / 1000)
  if tokens < 1 then
    redis.call('HSET', KEYS[2], 'tokens', tostring(tokens), 'at', now)
    return {0, math.ceil((1 - tokens) * 1000 / rate)}
  end
  redis.call('HSET', KEYS[2], 'tokens', tostring(tokens - 1), 'at', now)
  redis.call('PEXPIRE', KEYS[2], math.ceil(burst * 1000 / rate) + 60000)
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl + 60000)
return {1, 0}
"""


@dataclass(frozen=True)
class Lease:
    connection_id: str
    token: str


@dataclass(frozen=True)
class Denied:
    """No run now; `wait_s` is how long the bucket needs (None: every slot is taken)."""

    wait_s: float | None


class ConnectionLimiter:
    def __init__(self, redis: Redis, lease_s: float) -> None:
        self.redis = redis
        self.lease_ms = int(lease_s * 1000)
        self._acquire = redis.register_script(_ACQUIRE)

    async def acquire(self, connection: Connection) -> Lease | Denied:
        token = uuid.uuid4().hex
        rate = connection.rate_per_s or 0.0
        burst = max(1, math.floor(rate)) if rate else 0
        ok, wait_ms = await self._acquire(
            keys=[semaphore_key(connection.id), bucket_key(connection.id)],
            args=[self.lease_ms, connection.concurrency, token, rate, burst],
        )
        if ok:
            return Lease(connection.id, token)
        return Denied(None if int(wait_ms) < 0 else int(wait_ms) / 1000)

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
