"""Every machine code the relay can answer is one listed in `CODES` (the OpenAPI document's enum
and the README's list), so a client switching on `code` never meets one it was not told of."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from app.core.problems import CODES

ROOT = Path(__file__).resolve().parents[3]
CODE = re.compile(r"^(PLATFORM|INTEGRATION|REMOTE|ATS|FILE|INPUT)\.[A-Z_]+$")


def codes_in_source() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in [*ROOT.joinpath("app").rglob("*.py"), *ROOT.joinpath("connectors").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.match(node.value):
                found.setdefault(node.value, str(path.relative_to(ROOT)))
    return found


def test_every_code_used_is_listed() -> None:
    unlisted = {code: where for code, where in codes_in_source().items() if code not in CODES}
    assert not unlisted, f"add these to app.core.problems.CODES (and the README): {unlisted}"


def test_codes_are_unique_and_well_formed() -> None:
    assert len(set(CODES)) == len(CODES)
    assert all(CODE.match(code) for code in CODES)
