"""The catalog's integration tests run once per ATS (`ats`, tests/support/catalog.py), each on
one relay (web over HTTP on the session's Redis) with connection `acme` on that ATS's emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.builders import connection_table
from tests.support.catalog import ATSS, Ats
from tests.support.emulators import Emulator, EmulatorFactory
from tests.support.harness import Relay


@pytest.fixture(params=sorted(ATSS))
def ats(request: pytest.FixtureRequest) -> Ats:
    return ATSS[request.param]


@pytest.fixture
def served(ats: Ats, emulator: EmulatorFactory) -> Emulator:
    return emulator(ats.name, **ats.emulator_options)


@pytest.fixture
def relay_for(make_relay: Callable[..., Relay], ats: Ats, served: Emulator) -> Callable[..., Relay]:
    """A relay with connection `acme` on the ATS under test; keys of its table as arguments."""

    def make(**table: Any) -> Relay:
        return make_relay({"acme": connection_table(ats.name, served.url, **ats.settings, **table)})

    return make
