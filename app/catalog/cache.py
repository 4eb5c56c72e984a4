"""The catalog's Redis cache and its single flight (docs/catalog.md, "Cache" and "Single flight").

One entry per connection and read (`ar:cat:<conn>:<kind>:<key>`, app/redis/keys.py): msgpack of
`Entry` (when it was fetched, the value; `None` is "the ATS has no such thing", cached like an
answer so unknown ids do not reach the ATS per request). An entry is fresh for the connection's
`catalog_ttl_s` and kept `catalog_stale_s` longer for the service to serve when the ATS fails.

A miss is refreshed once however many ask for it:

* in this process, one asyncio task per key: every caller awaits the same task;
* across processes, a short lock (`SET NX PX` on `ar:cat-lock:...`, a random token, deleted by
  compare-and-delete): the holder asks the ATS and writes the entry; the others poll the entry
  until one newer than what they had appears, taking the lock themselves if it is released with
  nothing written (the holder failed), and after `lock_s` ask the ATS themselves (the holder
  is stuck or died; the lock expires by then anyway).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
from redis.asyncio import Redis

T = TypeVar("T")

POLL_S = 0.025  # a waiting process first looks again after this, then less often
POLL_MAX_S = 0.2

_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class Entry(msgspec.Struct, Generic[T], frozen=True, array_like=True):
    """A cached read: `fetched_at` (epoch s, when the ATS was asked) and the value, `None` when
    the ATS has no such job."""

    fetched_at: float
    value: T | None = None


@dataclass(frozen=True)
class Policy:
    """How long an entry is fresh (`ttl_s`), kept after that (`keep_s`), and how long a refresh
    may hold the lock (`lock_s`, also how long other processes wait for it)."""

    ttl_s: float
    keep_s: float
    lock_s: float


Fetch = Callable[[], Awaitable[T | None]]


class CatalogCache:
    """Entries in Redis, refreshed by one caller per key (module docstring)."""

    def __init__(self, redis: Redis, *, clock: Callable[[], float] = time.time, poll_s: float = POLL_S) -> None:
        self.redis = redis
        self.clock = clock
        self.poll_s = poll_s
        self._flights: dict[str, asyncio.Future[Any]] = {}
        self._decoders: dict[Any, msgspec.msgpack.Decoder[Any]] = {}
        self._encoder = msgspec.msgpack.Encoder()
        self._unlock = redis.register_script(_UNLOCK)

    # -- entries -----------------------------------------------------------------------------------

    def _decoder(self, type_: Any) -> msgspec.msgpack.Decoder[Any]:
        decoder = self._decoders.get(type_)
        if decoder is None:
            decoder = self._decoders[type_] = msgspec.msgpack.Decoder(Entry[type_])
        return decoder

    async def read(self, key: str, type_: Any) -> Entry[Any] | None:
        """The entry under `key`, or None (absent, or written by an older release in another
        shape: then it is only a miss)."""
        raw = await self.redis.get(key)
        if raw is None:
            return None
        try:
            entry: Entry[Any] = self._decoder(type_).decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        return entry

    async def write(self, key: str, entry: Entry[Any], policy: Policy) -> None:
        await self._write_raw(key, self._encoder.encode(entry), policy)

    async def _write_raw(self, key: str, raw: bytes, policy: Policy) -> None:
        keep_ms = max(1000, int((policy.ttl_s + policy.keep_s) * 1000))
        await self.redis.set(key, raw, px=keep_ms)

    def age(self, entry: Entry[Any]) -> float:
        return max(0.0, self.clock() - entry.fetched_at)

    def fresh(self, entry: Entry[Any], policy: Policy) -> bool:
        return self.age(entry) < policy.ttl_s

    # -- single flight -----------------------------------------------------------------------------

    def refresh(
        self, key: str, lock_key: str, type_: Any, fetch: Fetch[Any], policy: Policy, known: Entry[Any] | None
    ) -> asyncio.Future[Entry[Any]]:
        """The one refresh of `key` running in this process (started if none is): await it under
        `asyncio.shield`, so a caller that gives up does not cancel it for the others."""
        loop = asyncio.get_running_loop()
        flight = self._flights.get(key)
        if flight is not None and not flight.done() and flight.get_loop() is loop:
            return flight
        task = loop.create_task(self._refresh(key, lock_key, type_, fetch, policy, known))
        self._flights[key] = task

        def landed(done: asyncio.Future[Any]) -> None:
            if self._flights.get(key) is done:
                del self._flights[key]
            if not done.cancelled():
                done.exception()  # retrieved: a caller that timed out is not told, and that is fine

        task.add_done_callback(landed)
        return task

    def _usable(self, current: Entry[Any] | None, known: Entry[Any] | None, policy: Policy) -> bool:
        """Someone else's entry will do: written after what this refresh started from, or fresh."""
        if current is None:
            return False
        newer = known is None or current.fetched_at > known.fetched_at
        return newer or self.fresh(current, policy)

    async def _refresh(
        self, key: str, lock_key: str, type_: Any, fetch: Fetch[Any], policy: Policy, known: Entry[Any] | None
    ) -> Entry[Any]:
        token = secrets.token_hex(8)
        lock_ms = max(100, int(policy.lock_s * 1000))
        deadline = time.monotonic() + policy.lock_s
        delay = self.poll_s
        while True:
            if await self.redis.set(lock_key, token, nx=True, px=lock_ms):
                try:
                    current = await self.read(key, type_)
                    if self._usable(current, known, policy):
                        assert current is not None
                        return current
                    return await self._fetch(key, type_, fetch, policy)
                finally:
                    await self._unlock(keys=[lock_key], args=[token])
            current = await self.read(key, type_)
            if self._usable(current, known, policy):
                assert current is not None
                return current
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX_S)
        return await self._fetch(key, type_, fetch, policy)  # the holder is stuck or gone: ask the ATS

    async def _fetch(self, key: str, type_: Any, fetch: Fetch[Any], policy: Policy) -> Entry[Any]:
        fetched_at = self.clock()  # when the ATS was asked: the age never understates
        raw = self._encoder.encode(Entry(fetched_at, await fetch()))
        await self._write_raw(key, raw, policy)
        # What every other caller reads back from Redis, to the type: a connector's `0` in a float
        # field is `0.0` here as it is there, so every process answers the same bytes.
        entry: Entry[Any] = self._decoder(type_).decode(raw)
        return entry
