"""The connect page's guide (app/web/connect/guides.py) and CSRF token (csrf.py): every
connector's document has both sections, rendered without raw HTML; a token is bound to one link
and one nonce and survives a data-key rotation."""

from __future__ import annotations

import pytest

from app.connections.credentials import CREDENTIAL_TYPES
from app.web.connect import csrf, guides


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
