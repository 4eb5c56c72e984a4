"""The ATS emulators, served over real HTTP: one `emulator(name, **options)` fixture for all tests.

Each emulator (a name and its options) is started once per session, on first use, and put back
to its seed, with no faults and empty records, at the start of every test that asks for it.
Tests take it by name::

    def test_x(emulator): otys = emulator("otys", session_max_calls=3)

or through the shortcuts `factorial`, `flatchr`, `otys` and `laura` (the default options), and
`hellowork` and `indeed` for the job boards' own APIs.
`ats_http` is the connectors' production HTTP client, for tests that drive a connector alone.
Registered by tests/conftest.py (`pytest_plugins`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from app.net.ats_http import ats_client
from connectors.sandbox import create_emulator
from connectors.sandbox.common import BackgroundServer


class Emulator:
    """An emulator served over HTTP, with helpers for its sandbox endpoints."""

    def __init__(self, name: str, app: Any) -> None:
        self.name = name
        self.server = BackgroundServer(app).start()
        self.url = self.server.url
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def records(self) -> dict[str, Any]:
        """Everything the emulator holds (seed and what it received), as /_sandbox/records answers."""
        return self.http.get("/_sandbox/records").raise_for_status().json()

    def faults(self, **faults: Any) -> None:
        """Set fault injection (see connectors/sandbox/common.py `Faults`); no argument clears it."""
        self.http.post("/_sandbox/faults", json=faults).raise_for_status()

    def reset(self) -> None:
        self.http.post("/_sandbox/reset").raise_for_status()

    def close(self) -> None:
        self.http.close()
        self.server.stop()


EmulatorFactory = Callable[..., Emulator]


class Emulators:
    """The session's running emulators, one per (name, options)."""

    def __init__(self) -> None:
        self._running: dict[str, Emulator] = {}

    @staticmethod
    def key(name: str, options: dict[str, Any]) -> str:
        return f"{name}{sorted(options.items())!r}"

    def get(self, name: str, **options: Any) -> Emulator:
        key = self.key(name, options)
        if key not in self._running:
            self._running[key] = Emulator(name, create_emulator(name, **options))
        return self._running[key]

    def close(self) -> None:
        for emulator in self._running.values():
            emulator.close()
        self._running.clear()


@pytest.fixture(scope="session")
def emulators() -> Iterator[Emulators]:
    running = Emulators()
    yield running
    running.close()


@pytest.fixture
def emulator(emulators: Emulators) -> EmulatorFactory:
    """`emulator(name, **options)`: that emulator over HTTP, reset to its seed for this test."""
    fresh: set[str] = set()

    def get(name: str, **options: Any) -> Emulator:
        served = emulators.get(name, **options)
        key = emulators.key(name, options)
        if key not in fresh:  # once per test: a second look in the same test keeps its records
            served.reset()
            fresh.add(key)
        return served

    return get


@pytest.fixture
def factorial(emulator: EmulatorFactory) -> Emulator:
    return emulator("factorial")


@pytest.fixture
def flatchr(emulator: EmulatorFactory) -> Emulator:
    return emulator("flatchr")


@pytest.fixture
def otys(emulator: EmulatorFactory) -> Emulator:
    return emulator("otys")


@pytest.fixture
def laura(emulator: EmulatorFactory) -> Emulator:
    return emulator("laura")


@pytest.fixture
def hellowork(emulator: EmulatorFactory) -> Emulator:
    """HelloWork's status API (connectors/sandbox/hellowork.py)."""
    return emulator("hellowork")


@pytest.fixture
def indeed(emulator: EmulatorFactory) -> Emulator:
    """Indeed's OAuth token and Disposition Sync GraphQL endpoints (connectors/sandbox/indeed.py)."""
    return emulator("indeed")


@pytest.fixture
async def ats_http() -> AsyncIterator[httpx.AsyncClient]:
    """The connectors' production HTTP client (app/net/ats_http.py), one per test."""
    async with ats_client() as client:
        yield client
