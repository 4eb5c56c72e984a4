"""The README's "Error codes" lists every Kombo-style code the relay sets, with its HTTP status:
a code added in app/ or connectors/ without a README row fails here."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CODE = re.compile(r"\b(?:PLATFORM|INTEGRATION|REMOTE|ATS)\.[A-Z][A-Z_]+\b")


def codes_in_sources() -> set[str]:
    return {
        c for root in ("app", "connectors") for p in (REPO / root).rglob("*.py") for c in CODE.findall(p.read_text())
    }


def readme_rows() -> dict[str, str]:
    section = (REPO / "README.md").read_text().split("### Error codes", 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([A-Z_.]+)` \| ([^|]+) \|", section, re.M))


def test_the_readme_lists_every_code_the_relay_uses() -> None:
    used = codes_in_sources()
    assert {"PLATFORM.INPUT_INVALID", "ATS.JOB_CLOSED", "REMOTE.INPUT_INVALID"} <= used  # the scan sees them
    assert used - readme_rows().keys() == set()


def test_every_listed_code_has_a_status_and_is_used() -> None:
    rows = readme_rows()
    assert all(status.strip() for status in rows.values())
    assert rows.keys() - codes_in_sources() == set()
