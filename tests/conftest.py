"""Session-wide real services: one redis-server (embedded, AOF) unless REDIS_URL names one, the
ATS emulators (tests/support/emulators.py: `emulator(name)`, `factorial`, ...) and relays."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

pytest.register_assert_rewrite("tests.support")  # helpers' asserts explain themselves too

import redis  # noqa: E402

from app.log import configure  # noqa: E402
from app.redis.embedded import EmbeddedRedis  # noqa: E402
from tests.support.harness import Relay  # noqa: E402

pytest_plugins = ["tests.support.emulators", "tests.support.s3"]

configure("WARNING")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests marked slow (they start and kill processes; the longest take a minute) run first,
    so that pytest-xdist spreads them over its processes while the short ones fill the gaps,
    instead of one of them starting last and ending the run alone (tests/README.md, "Running")."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis | None]:
    if os.environ.get("REDIS_URL"):
        yield None
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


def _own_database(url: str, worker: str) -> str:
    """The Redis that REDIS_URL names, shared by pytest-xdist's processes (gw0, gw1, ...): each
    takes its own database (the URL's, plus its number), since every test flushes its database.
    An embedded server is each process's own already."""
    if not worker.startswith("gw"):
        return url
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{base + int(worker[2:])}"))


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis | None, worker_id: str) -> str:
    """A clean database for each test."""
    url = _own_database(os.environ["REDIS_URL"], worker_id) if redis_server is None else redis_server.url
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


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
