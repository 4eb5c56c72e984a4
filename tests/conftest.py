"""Session-wide real services: one redis-server (embedded, AOF) unless REDIS_URL names one."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from app.log import configure
from app.net.ats_http import ats_client
from app.redis.embedded import EmbeddedRedis
from connectors.sandbox import create_emulator
from connectors.sandbox.common import BackgroundServer
from tests.support.harness import Emulator, Relay

configure("WARNING")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis | None]:
    if os.environ.get("REDIS_URL"):
        yield None
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis | None) -> str:
    """A clean database for each test."""
    url = os.environ["REDIS_URL"] if redis_server is None else redis_server.url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


@pytest.fixture(scope="session")
def factorial_emulator() -> Iterator[Emulator]:
    emulator = Emulator(create_emulator("factorial", api_key="sandbox"))
    yield emulator
    emulator.close()


@pytest.fixture
def factorial(factorial_emulator: Emulator) -> Emulator:
    factorial_emulator.reset()
    return factorial_emulator


@pytest.fixture
async def make_relay(redis_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., Relay]]:
    relays: list[Relay] = []

    def make(connections: dict[str, dict[str, Any]], **kwargs: Any) -> Relay:
        relay = Relay(redis_url, connections, tmp_path=tmp_path, **kwargs)
        relays.append(relay)
        return relay

    yield make
    for relay in relays:
        await relay.close()


@pytest.fixture(scope="module")
def server(request: pytest.FixtureRequest) -> Iterator[BackgroundServer]:
    """The emulator named by the test module's `EMULATOR`, served over HTTP for the module."""
    srv = BackgroundServer(create_emulator(request.module.EMULATOR)).start()
    yield srv
    srv.stop()


@pytest.fixture
async def http(server: BackgroundServer) -> AsyncIterator[httpx.AsyncClient]:
    """The connectors' production client (app/ats_http.py), with the module's emulator reset to its seed."""
    async with ats_client() as client:
        await client.post(f"{server.url}/_sandbox/reset")
        yield client
