"""The connect page's guide (app/web/connect/guides.py) and CSRF token (csrf.py): every
connector's document has both sections, rendered without raw HTML; a token is bound to one link
and one nonce and survives a data-key rotation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.connections.credentials import CREDENTIAL_TYPES
from app.web.connect import csrf, guides
from tests.support.harness import REPO


@pytest.mark.parametrize("connector", sorted(CREDENTIAL_TYPES))
def test_every_connector_documents_its_connection_guide_and_prerequisites(connector: str) -> None:
    guide = guides.guide(connector)
    assert guide.connection_guide is not None and "<li>" in guide.connection_guide
    assert guide.prerequisites is not None and "<li>" in guide.prerequisites


def test_a_section_ends_at_the_next_heading_and_raw_html_is_text() -> None:
    text = "# T\n\n## Prerequisites\n\nOne <script>alert(1)</script> thing.\n\n### Sub\n\nmore\n\n## Next\n\nnot this\n"
    body = guides.section(text, "Prerequisites")
    assert body is not None and "more" in body and "not this" not in body
    html = str(guides._render(body))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert guides.guide("../etc/passwd") == guides.Guide(None, None)


def test_a_csrf_token_is_bound_to_its_link_and_nonce_and_survives_rotation() -> None:
    old, new = b"o" * 32, b"n" * 32
    token = csrf.sign([old], "link-a", "nonce-1")
    assert csrf.check([old], "link-a", "nonce-1", token)
    assert csrf.check([new, old], "link-a", "nonce-1", token)  # rotated: the old key still checks
    assert not csrf.check([old], "link-b", "nonce-1", token)
    assert not csrf.check([old], "link-a", "nonce-2", token)
    assert not csrf.check([new], "link-a", "nonce-1", token)
    assert not csrf.check([old], "link-a", "", token) and not csrf.check([old], "link-a", "nonce-1", "")


def test_an_installed_package_reads_the_guides_from_applyrelay_guides_dir(tmp_path: Path) -> None:
    """The container image installs the package (no docs/ beside it) and copies docs/connectors
    to APPLYRELAY_GUIDES_DIR (deploy/Dockerfile): the same layout here, in a fresh interpreter."""
    site = tmp_path / "site-packages"
    for package in ("app", "connectors"):
        shutil.copytree(REPO / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "docs" / "connectors", tmp_path / "guides")
    probe = "from app.web.connect.guides import guide; print(guide('flatchr').connection_guide is not None)"
    env = {k: v for k, v in os.environ.items() if k != guides.GUIDES_ENV} | {"PYTHONPATH": str(site)}

    def shown(extra: dict[str, str]) -> str:
        run = subprocess.run(
            [sys.executable, "-c", probe], env=env | extra, cwd=tmp_path, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    assert shown({}) == "False"  # what the image showed before: "No guide is written"
    assert shown({guides.GUIDES_ENV: str(tmp_path / "guides")}) == "True"
