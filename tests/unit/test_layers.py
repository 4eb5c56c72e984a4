"""The import contract (docs/architecture.md, "Layers"): checked on every run, so a violation fails
the suite instead of growing quietly. Imports inside functions count too."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> Iterator[str]:
    """Every module `path` imports (`from a import b` counts as a.b too: b may be a module)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def modules(*roots: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for root in roots:
        for path in sorted((REPO / root).rglob("*.py")):
            found[module_name(path)] = set(imports(path))
    return found


def within(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


def violations(importers: dict[str, set[str]], allowed: object, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for importer, targets in importers.items():
        if callable(allowed) and allowed(importer):
            continue
        hits = sorted(t for t in targets if within(t, *forbidden))
        if hits:
            bad[importer] = hits
    return bad


APP = modules("app")
CONNECTORS = modules("connectors")


def test_connectors_import_only_the_core_of_app() -> None:
    bad = {m: sorted(t for t in ts if within(t, "app") and not within(t, "app.core")) for m, ts in CONNECTORS.items()}
    assert {m: ts for m, ts in bad.items() if ts} == {}


def test_the_core_imports_nothing_else_of_the_relay() -> None:
    core = {m: ts for m, ts in APP.items() if within(m, "app.core")}
    bad = {
        m: sorted(t for t in ts if within(t, "app", "connectors") and not within(t, "app.core"))
        for m, ts in core.items()
    }
    assert {m: ts for m, ts in bad.items() if ts} == {}


def test_route_modules_are_imported_only_by_the_app_that_mounts_them() -> None:
    assert violations(APP, lambda m: m == "app.web.app" or within(m, "app.web.api"), ("app.web.api",)) == {}


def test_nothing_below_the_web_and_the_cli_imports_them() -> None:
    assert violations(APP, lambda m: within(m, "app.web", "app.cli"), ("app.web", "app.cli")) == {}
    assert violations(CONNECTORS, None, ("app.web", "app.cli")) == {}


def test_the_delivery_machinery_knows_nothing_of_intake_operators_or_tracking() -> None:
    delivery = {m: ts for m, ts in APP.items() if within(m, "app.delivery")}
    above = ("app.intake", "app.operator", "app.tracking", "app.web", "app.cli", "app.worker")
    assert violations(delivery, None, above) == {}


def test_the_worker_process_is_imported_by_the_cli_only() -> None:
    """app/worker.py assembles the cron jobs of every concern: nothing but the CLI may import it."""
    assert violations(APP, lambda m: within(m, "app.cli", "app.worker"), ("app.worker",)) == {}


def test_the_checker_sees_a_violation() -> None:
    """The walker itself: a module importing a route module is reported."""
    fake = {"app.operator.views": {"app.web.api.deliveries", "app.core.model"}}
    assert violations(fake, None, ("app.web.api",)) == {"app.operator.views": ["app.web.api.deliveries"]}


def test_no_test_module_imports_another() -> None:
    """Builders and helpers live in tests/support/; a test module is never a fixture library."""
    tests = modules("tests")
    test_modules = {m for m in tests if m.rsplit(".", 1)[-1].startswith("test_")}
    bad = {m: sorted(t for t in ts if t in test_modules) for m, ts in tests.items()}
    assert {m: ts for m, ts in bad.items() if ts} == {}


def test_the_blob_store_imports_nothing_of_the_relay() -> None:
    """app/blobs sits beside app/redis, under the delivery store that seals what it keeps: it may
    use the core's Problem (the 503 it answers with), nothing else of the relay."""
    blobs = {m: ts for m, ts in APP.items() if within(m, "app.blobs")}
    bad = {
        m: sorted(t for t in ts if within(t, "app", "connectors") and not within(t, "app.core", "app.blobs"))
        for m, ts in blobs.items()
    }
    assert {m: ts for m, ts in bad.items() if ts} == {}


def test_the_catalog_sits_beside_intake_and_below_the_web() -> None:
    """app/catalog/ reads the ATS for intake and the routes (docs/catalog.md): it may use the core,
    Redis, the config and the connectors, never what sits above it."""
    catalog = {m: ts for m, ts in APP.items() if within(m, "app.catalog")}
    above = ("app.intake", "app.operator", "app.tracking", "app.web", "app.cli", "app.worker", "app.runtime")
    assert catalog and violations(catalog, None, above) == {}
    below = {m: ts for m, ts in APP.items() if within(m, "app.core", "app.redis", "app.delivery", "app.config")}
    assert violations(below, None, ("app.catalog",)) == {}
