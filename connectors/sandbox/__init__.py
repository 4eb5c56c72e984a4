"""Emulators of each ATS's API, and of the job boards' status APIs (ASGI apps), for tests,
benchmarks and the demo."""

from __future__ import annotations

from typing import Any

from app.core import plugins

EMULATORS: dict[str, str] = {
    "factorial": "connectors.sandbox.factorial:create_app",
    "flatchr": "connectors.sandbox.flatchr:create_app",
    "otys": "connectors.sandbox.otys:create_app",
    "laura": "connectors.sandbox.laura:create_app",
    "hellowork": "connectors.sandbox.hellowork:create_app",  # job boards: what they receive back
    "indeed": "connectors.sandbox.indeed:create_app",
}


def create_emulator(name: str, **options: Any) -> Any:
    """Build the emulator app for `name`; options: api_key and emulator-specific ones."""
    return plugins.load(EMULATORS[name])(**options)
