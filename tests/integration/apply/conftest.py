"""The apply pages' tests run once per ATS with screening questions (`case`,
tests/support/apply.py), each on a relay with connection `acme` on that ATS's emulator."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.apply import CASES, Case, apply_connection
from tests.support.emulators import Emulator, EmulatorFactory
from tests.support.harness import REPO, Relay
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


AXE_VERSION = "4.14.1"
AXE_DIR = REPO / "var" / "axe"  # gitignored; installed once per clone from npm


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's browser bundle, installed from npm into var/axe on first use (a clean clone in
    CI installs it here too; never committed)."""
    bundle = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not bundle.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: the accessibility check needs axe-core from npm")
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund", f"axe-core@{AXE_VERSION}"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return bundle.read_text()
