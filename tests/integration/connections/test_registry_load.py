"""The connections' first load waits for Redis (app/connections/registry.py `load`): a web or
worker started while Redis restarts comes up once it is back, instead of dying (a chaos run saw
a worker die so, in its start-up, in the middle of a Redis restart)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from app.config import Limits
from app.connections.registry import ConnectionRegistry
from app.connections.store import ConnectionStore
from app.privacy.crypto import AesGcmSealer, parse_keys
from app.redis.embedded import EmbeddedRedis, free_port
from tests.support.harness import DATA_KEY


async def test_the_first_load_waits_for_redis_to_come_back(tmp_path: Path) -> None:
    port = free_port()
    server = EmbeddedRedis(tmp_path / "redis", port=port)
    redis = Redis.from_url(server.url)
    registry = ConnectionRegistry({}, Limits(), ConnectionStore(redis, AesGcmSealer(parse_keys(DATA_KEY))))
    load = asyncio.create_task(registry.load())
    try:
        await asyncio.sleep(0.5)  # Redis is away: the load keeps trying rather than raising
        assert not load.done(), load.exception() if load.done() else None
        await asyncio.to_thread(server.start)
        await asyncio.wait_for(load, timeout=10)
        assert registry.loaded_at > 0 and list(registry) == []
    finally:
        load.cancel()
        await redis.aclose()
        server.stop()
