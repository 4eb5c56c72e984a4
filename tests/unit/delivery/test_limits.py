"""The per-connection limiter (app/delivery/limits.py) on a real Redis: semaphore slots that lapse
with a dead holder, a token bucket that paces runs and spends no token on a refused one, and the
config that feeds it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from app.config import parse_config
from app.delivery.limits import ConnectionLimiter, Denied, Lease
from tests.support.builders import connection_table


def _connection(**extra: Any) -> Any:
    config = parse_config(
        {"connections": {"acme": connection_table("factorial", "http://127.0.0.1:9", **extra)}},
        {"TEST_FACTORIAL_KEY": "k"},
    )
    return config.connections["acme"]


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
