"""Per-connection concurrency and rate limits hold across worker processes (app/limits.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from app.config import parse_config
from app.delivery.limits import ConnectionLimiter, Denied, Lease
from tests.support.builders import connection_table
from tests.support.emulators import Emulator


def _connection(**extra: Any) -> Any:
    config = parse_config(
        {"connections": {"acme": connection_table("factorial", "http://127.0.0.1:9", **extra)}},
        {"TEST_FACTORIAL_KEY": "k"},
    )
    return config.connections["acme"]


def application(n: int) -> dict[str, Any]:
    return {
        "connection_id": "acme",
        "application": {"job_id": "2001"},
        "candidate": {"first_name": "Ana", "last_name": f"Test{n}", "email_address": f"ana{n}@example.org"},
    }


async def test_semaphore_slots_and_expiry_of_a_dead_holder(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    limiter = ConnectionLimiter(redis, lease_s=0.4)
    connection = _connection(concurrency=2)
    first, second = await limiter.acquire(connection), await limiter.acquire(connection)
    assert isinstance(first, Lease) and isinstance(second, Lease)
    third = await limiter.acquire(connection)
    assert isinstance(third, Denied) and third.wait_s is None
    await limiter.release(first)
    assert isinstance(await limiter.acquire(connection), Lease)
    # Nobody releases now (a killed worker): the leases lapse on their own.
    assert isinstance(await limiter.acquire(connection), Denied)
    await asyncio.sleep(0.5)
    assert isinstance(await limiter.acquire(connection), Lease)
    await redis.aclose()


async def test_token_bucket_paces_runs(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    limiter = ConnectionLimiter(redis, lease_s=10)
    connection = _connection(concurrency=100, rate_per_s=2)
    taken = [await limiter.acquire(connection) for _ in range(3)]
    assert [type(t) for t in taken] == [Lease, Lease, Denied]
    denied = taken[2]
    assert isinstance(denied, Denied) and denied.wait_s is not None and 0.3 <= denied.wait_s <= 0.5
    await asyncio.sleep(denied.wait_s + 0.05)
    assert isinstance(await limiter.acquire(connection), Lease)
    # No token is spent on a refused run: a full semaphore is checked first.
    await redis.delete("ar:tb:acme", "ar:sem:acme")
    full = _connection(concurrency=1, rate_per_s=1)
    assert isinstance(await limiter.acquire(full), Lease)
    assert (await limiter.acquire(full)) == Denied(None)
    assert float(await redis.hget("ar:tb:acme", "tokens")) < 1  # the one token went to the first run
    await redis.aclose()


def test_rate_per_s_is_validated() -> None:
    from app.config import ConfigError

    with pytest.raises(ConfigError, match="rate_per_s"):
        _connection(rate_per_s=0)
    with pytest.raises(ConfigError, match="concurrency"):
        _connection(concurrency=0)


@pytest.mark.slow
async def test_three_workers_never_exceed_the_connection_limit(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url, concurrency=2)})
    factorial.faults(latency_ms=120)
    for _ in range(3):
        relay.spawn_worker()
    ids = [(await relay.post(application(n))).json()["id"] for n in range(9)]
    records = [await relay.wait_for(i, "delivered", timeout=60) for i in ids]
    seen = factorial.records()
    assert seen["max_in_flight"] == 2  # the limit was used, never exceeded
    assert len(seen["applications"]) == 9
    for record in records:  # waiting for a slot spends no attempt
        assert record["failed_attempts"] == 0
        assert [a["outcome"] for a in record["attempts"]].count("transient") == 0
    assert await relay.redis.zcard("ar:sem:acme") == 0  # every lease given back


async def test_rate_limit_spaces_delivery_runs(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url, rate_per_s=2)})
    await relay.start_worker()
    ids = [(await relay.post(application(n))).json()["id"] for n in range(5)]
    records = [await relay.wait_for(i, "delivered", timeout=30) for i in ids]
    starts = sorted(min(a["started_at"] for a in r["attempts"] if a.get("step")) for r in records)
    # burst of 2, then one run every 0.5 s: 5 runs take at least 1.5 s
    assert starts[-1] - starts[0] >= 1.4
