"""The connectors keep one shape (connectors/base.py's docstring): the same section banners in the
same order, imports of `app.core` only, typed settings and connection, docs inside the repo."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from connectors import CONNECTORS, connector_class
from connectors.base import ConnectorSettings

REPO = Path(__file__).resolve().parents[3]
SOURCES = sorted((REPO / "connectors").glob("*.py"))  # connectors/sandbox/ (emulators) apart
ATS_FILES = [REPO / "connectors" / f"{name}.py" for name in sorted(CONNECTORS)]
SECTIONS = [
    "Settings",
    "Wire format",
    "Answer encoding",
    "Connector",
    "    Transport",
    "    Intake check",
    "    Plan",
    "    Steps",
    "    Actions",
    "    Reads",
    "Helpers",
]
BANNER = re.compile(r"^( *)# -- (.+?) -{3,}$")


@pytest.mark.parametrize("path", ATS_FILES, ids=lambda p: p.stem)
def test_every_ats_file_has_the_sections_in_order(path: Path) -> None:
    found = [m[1] + m[2] for line in path.read_text().splitlines() if (m := BANNER.match(line))]
    assert found == SECTIONS
    assert f"docs/connectors/{path.stem}.md" in (ast.get_docstring(ast.parse(path.read_text())) or "")
    assert (REPO / "docs" / "connectors" / f"{path.stem}.md").exists()


def test_the_order_is_the_one_base_documents() -> None:
    documented = ast.get_docstring(ast.parse((REPO / "connectors" / "base.py").read_text())) or ""
    names = [m[1].replace("    ", "", 1) + m[2] for m in re.finditer(r"^( *)# -- (\w[\w ]*?)\s{2,}", documented, re.M)]
    assert names == SECTIONS


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.stem)
def test_connectors_import_only_app_core(path: Path) -> None:
    for node in ast.walk(ast.parse(path.read_text())):
        modules = (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        for module in modules:
            assert module.split(".")[0] != "app" or module.startswith("app.core"), (path.name, module)


@pytest.mark.parametrize("name", sorted(CONNECTORS))
def test_settings_and_connection_are_typed(name: str) -> None:
    cls = connector_class(name)
    assert issubclass(cls.settings_type, ConnectorSettings) and cls.settings_type is not ConnectorSettings
    init = next(
        n
        for n in ast.walk(ast.parse((REPO / "connectors" / f"{name}.py").read_text()))
        if isinstance(n, ast.FunctionDef) and n.name == "__init__" and n.args.args[1].arg == "connection"
    )
    annotation = ast.unparse(init.args.args[1].annotation or ast.Constant(None))
    assert annotation == f"ConnectionSpec[{cls.settings_type.__name__}]"
