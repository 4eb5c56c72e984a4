"""The chaos tests' counts, at the end of the run, whether the tests passed or not."""

from __future__ import annotations

from typing import Any

from tests.chaos.common import SUMMARY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SUMMARY:
        terminalreporter.section("chaos counts")
        for line in SUMMARY:
            terminalreporter.write_line(line)
