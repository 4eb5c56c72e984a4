"""The apply pages' tests run once per ATS with screening questions (`case`,
tests/support/apply.py), each on a relay with connection `acme` on that ATS's emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.apply import CASES, Case, apply_connection
from tests.support.axe import axe_bundle
from tests.support.emulators import Emulator, EmulatorFactory
from tests.support.harness import Relay
from tests.support.inbound import inbound_env


@pytest.fixture(params=sorted(CASES))
def case(request: pytest.FixtureRequest) -> Case:
    return CASES[request.param]


@pytest.fixture
def served(case: Case, emulator: EmulatorFactory) -> Emulator:
    return emulator(case.name)


@pytest.fixture
def relay_for(
    make_relay: Callable[..., Relay], case: Case, served: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Relay]:
    """A relay with connection `acme` on the case's ATS; `apply` settings as arguments."""
    inbound_env(monkeypatch)

    def make(**apply: Any) -> Relay:
        return make_relay({"acme": apply_connection(case, served.url, **apply)})

    return make


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's browser bundle (tests/support/axe.py installs it from npm on first use)."""
    return axe_bundle()
