"""axe-core in the browser tests: its bundle, installed from npm into var/axe on first use (a clean
clone in CI installs it there too; never committed), and its serious and critical violations of a
page."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
from typing import Any

import pytest

from tests.support.harness import REPO

AXE_VERSION = "4.14.1"
AXE_DIR = REPO / "var" / "axe"


def axe_bundle() -> str:
    """Installed once per checkout; a lock file makes parallel test processes (pytest-xdist's
    workers) wait for the one installing instead of racing npm into the same folder."""
    bundle = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if bundle.exists():
        return bundle.read_text()
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the accessibility check needs axe-core from npm")
    AXE_DIR.mkdir(parents=True, exist_ok=True)
    with open(AXE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not bundle.exists():
            subprocess.run(
                [npm, "install", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund", f"axe-core@{AXE_VERSION}"],
                check=True,
                capture_output=True,
                timeout=300,
            )
    return bundle.read_text()


async def axe_violations(page: Any, source: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page (WCAG 2 A/AA rules and best practices)."""
    await page.evaluate(source)
    violations, passed = await page.evaluate(
        "async () => { const r = await axe.run(document); return [r.violations, r.passes.length]; }"
    )
    assert passed > 10  # axe ran its rules on the page (labels, contrast, ARIA...)
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
