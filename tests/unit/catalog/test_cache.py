"""The catalog's cache against a real Redis: one ATS call per key however many ask, in one
process and across processes (two caches on two clients stand for two processes), entries kept
with their fetched_at (app/catalog/cache.py, docs/catalog.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.catalog.cache import CatalogCache, Entry, Policy
from app.core.catalog import Option, QuestionFormat, ScreeningQuestion

KEY, LOCK = "ar:cat:acme:questions:7", "ar:cat-lock:acme:questions:7"
POLICY = Policy(ttl_s=60, keep_s=600, lock_s=5)
QUESTIONS = [
    ScreeningQuestion(
        id="q1",
        remote_id="q1",
        title="Languages",
        format=QuestionFormat(type="MULTI_SELECT", options=[Option("en", "en", "English")]),
    )
]
TYPE = list[ScreeningQuestion]


class Ats:
    """A stand-in ATS read that counts its calls and answers after `delay_s`."""

    def __init__(self, delay_s: float = 0.05, fail: Exception | None = None) -> None:
        self.calls = 0
        self.delay_s = delay_s
        self.fail = fail

    async def read(self) -> list[ScreeningQuestion]:
        self.calls += 1
        await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        return QUESTIONS


@pytest.fixture
async def clients(redis_url: str) -> AsyncIterator[list[Redis]]:
    made = [Redis.from_url(redis_url) for _ in range(3)]
    yield made
    for client in made:
        await client.aclose()


async def test_concurrent_misses_in_one_process_make_one_call(clients: list[Redis]) -> None:
    cache, ats = CatalogCache(clients[0]), Ats()
    flights = [cache.refresh(KEY, LOCK, TYPE, ats.read, POLICY, None) for _ in range(50)]
    entries = await asyncio.gather(*(asyncio.shield(f) for f in flights))
    assert ats.calls == 1 and {e.fetched_at for e in entries} == {entries[0].fetched_at}
    assert entries[0].value == QUESTIONS
    stored = await cache.read(KEY, TYPE)
    assert stored == entries[0] and cache.fresh(stored, POLICY)
    assert await clients[0].exists(LOCK) == 0  # released
    assert 60_000 < await clients[0].pttl(KEY) <= 660_000  # fresh for the TTL, kept for the stale window


async def test_concurrent_misses_across_processes_make_one_call(clients: list[Redis]) -> None:
    caches, ats = [CatalogCache(c, poll_s=0.005) for c in clients], Ats(delay_s=0.2)
    entries = await asyncio.gather(
        *(asyncio.shield(c.refresh(KEY, LOCK, TYPE, ats.read, POLICY, None)) for c in caches)
    )
    assert ats.calls == 1 and len({e.fetched_at for e in entries}) == 1


async def test_a_waiting_process_takes_over_when_the_holder_fails(clients: list[Redis]) -> None:
    first, second = CatalogCache(clients[0], poll_s=0.005), CatalogCache(clients[1], poll_s=0.005)
    failing, working = Ats(delay_s=0.1, fail=RuntimeError("ATS down")), Ats(delay_s=0.0)
    held = first.refresh(KEY, LOCK, TYPE, failing.read, POLICY, None)
    await asyncio.sleep(0.02)  # the first holds the lock
    waiting = second.refresh(KEY, LOCK, TYPE, working.read, POLICY, None)
    with pytest.raises(RuntimeError):
        await held
    entry = await waiting
    assert entry.value == QUESTIONS and failing.calls == 1 and working.calls == 1


async def test_a_stuck_holder_is_waited_for_a_bounded_time(clients: list[Redis]) -> None:
    await clients[0].set(LOCK, b"someone-else", px=60_000)  # a holder that never writes nor releases
    cache, ats = CatalogCache(clients[0], poll_s=0.005), Ats(delay_s=0.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    entry = await cache.refresh(KEY, LOCK, TYPE, ats.read, Policy(ttl_s=60, keep_s=0, lock_s=0.3), None)
    assert entry.value == QUESTIONS and ats.calls == 1
    assert 0.3 <= loop.time() - started < 2.0
    assert await clients[0].get(LOCK) == b"someone-else"  # not ours to delete


async def test_an_entry_newer_than_the_stale_one_is_taken_from_another_process(clients: list[Redis]) -> None:
    clock = [1000.0]
    cache = CatalogCache(clients[0], clock=lambda: clock[0], poll_s=0.005)
    stale = Entry(900.0, QUESTIONS[:0])
    await cache.write(KEY, stale, POLICY)
    assert not cache.fresh(stale, POLICY) and cache.age(stale) == 100.0
    await clients[1].set(LOCK, b"other", px=5000)
    ats = Ats(delay_s=0.0)
    flight = cache.refresh(KEY, LOCK, TYPE, ats.read, POLICY, stale)
    await asyncio.sleep(0.05)
    await cache.write(KEY, Entry(999.0, QUESTIONS), POLICY)  # the other process's refresh lands
    entry = await flight
    assert entry == Entry(999.0, QUESTIONS) and ats.calls == 0


async def test_a_miss_is_cached_and_an_unreadable_entry_is_a_miss(clients: list[Redis]) -> None:
    cache = CatalogCache(clients[0])

    async def no_such_job() -> None:
        return None

    entry = await cache.refresh(KEY, LOCK, TYPE, no_such_job, POLICY, None)
    assert entry.value is None and await cache.read(KEY, TYPE) == entry
    await clients[0].set(KEY, b"\x93not-an-entry")
    assert await cache.read(KEY, TYPE) is None
