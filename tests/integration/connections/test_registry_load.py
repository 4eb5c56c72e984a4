"""A process's start-up against a Redis that is away (app/connections/registry.py `load`,
app/runtime.py `start`): a web or worker started while Redis restarts comes up once it is back,
instead of dying (a chaos run saw a worker die so, in the middle of a Redis restart); still checks
the eviction policy once Redis answers; and fails at once on what no wait mends (a wrong password)."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError, BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError

from app.blobs.capacity import EvictingRedis
from app.config import Limits, parse_config
from app.connections.registry import ConnectionRegistry, redis_away
from app.connections.store import ConnectionStore
from app.privacy.crypto import AesGcmSealer, parse_keys
from app.redis.embedded import EmbeddedRedis, free_port, redis_server_binary
from app.runtime import Runtime
from app.settings import BlobSettings, Settings
from tests.support.harness import DATA_KEY


def registry_on(url: str) -> tuple[ConnectionRegistry, Redis]:
    redis = Redis.from_url(url)
    return ConnectionRegistry({}, Limits(), ConnectionStore(redis, AesGcmSealer(parse_keys(DATA_KEY)))), redis


async def test_the_first_load_waits_for_redis_to_come_back(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis", port=free_port())
    registry, redis = registry_on(server.url)
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


async def test_a_wrong_password_fails_the_load_at_once(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    registry, redis = registry_on(server.url.replace(server.password, "not-the-password"))
    try:
        with pytest.raises(AuthenticationError):
            await asyncio.wait_for(registry.load(), timeout=5)
    finally:
        await redis.aclose()
        server.stop()


class EvictingRedisLater:
    """A port where an evicting redis-server listens once `start` runs (the embedded one never evicts)."""

    def __init__(self, data_dir: Path) -> None:
        self.port, self.data_dir = free_port(), data_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        policy = ["--maxmemory-policy", "allkeys-lru", "--dir", str(self.data_dir)]
        self.process = subprocess.Popen([redis_server_binary(), *args, *policy], stdout=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


async def test_a_process_started_while_redis_was_away_still_refuses_an_evicting_one(tmp_path: Path) -> None:
    redis = EvictingRedisLater(tmp_path)
    settings = Settings(
        redis_url=redis.url,
        config=parse_config({"connections": {}}, {}),
        data_keys=parse_keys(DATA_KEY),
        blobs=BlobSettings(url=f"file://{tmp_path / 'blobs'}"),
    )
    runtime = Runtime(settings)
    start = asyncio.create_task(runtime.start())
    try:
        await asyncio.sleep(0.5)  # Redis away: the start waits (the eviction check would pass it by)
        assert not start.done()
        await asyncio.to_thread(redis.start)
        with pytest.raises(EvictingRedis, match="allkeys-lru"):
            await asyncio.wait_for(start, timeout=15)
    finally:
        start.cancel()
        await runtime.close()
        await asyncio.to_thread(redis.stop)


def test_what_counts_as_redis_being_away() -> None:
    """Waited for: refused, reset, timed out, loading. Not: a password or certificate refused,
    also when redis-py wraps the TLS error in its own ConnectionError (as it does)."""
    wrapped = RedisConnectionError("Error connecting")
    wrapped.__cause__ = ssl.SSLCertVerificationError("certificate verify failed")
    refused = [wrapped, AuthenticationError("WRONGPASS"), ssl.SSLError("bad handshake")]
    assert [redis_away(exc) for exc in refused] == [False, False, False]
    away = [ConnectionRefusedError(), RedisConnectionError("Connection reset"), BusyLoadingError("loading")]
    assert all(redis_away(exc) for exc in away)
