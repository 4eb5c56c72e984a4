"""docs/architecture.md says what the code does: its state diagram and table are the allowed-moves
table of app/delivery/transitions.py, and no source cites a document outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.delivery.record import Status
from app.delivery.transitions import ALLOWED

REPO = Path(__file__).resolve().parents[2]
ARCHITECTURE = (REPO / "docs" / "architecture.md").read_text()
ALLOWED_PAIRS = {(start.value, to.value) for start, tos in ALLOWED.items() for to in tos}


def test_the_state_diagram_draws_the_transitions_table() -> None:
    diagram = ARCHITECTURE.split("```mermaid", 1)[1].split("```", 1)[0]
    arrows = set(re.findall(r"^\s*(\w+) --> (\w+)", diagram, re.M))
    assert arrows == ALLOWED_PAIRS
    assert ("[*]", "queued") not in arrows and "[*] --> queued" in diagram  # every delivery starts queued


def test_the_moves_table_is_the_transitions_table() -> None:
    section = ARCHITECTURE.split("| from | to |", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| (\w+) \| ([\w, ]+) \|$", section, re.M)
    table = {(start, to.strip()) for start, tos in rows for to in tos.split(",")}
    assert table == ALLOWED_PAIRS and {start for start, _ in rows} == {s.value for s in Status}


CITED_OUTSIDE = ("DESIGN" + " §", "anchors" + " §", "shared" + "/")  # split: this file must not match itself
SOURCES = sorted(p for root in ("app", "connectors", "tests", "bench") for p in (REPO / root).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_sources_cite_only_documents_in_the_repository(path: Path) -> None:
    text = path.read_text()
    assert [c for c in CITED_OUTSIDE if c in text] == []
