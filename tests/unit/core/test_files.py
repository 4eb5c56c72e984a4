"""File sniffing (app/core/files.py), and the PDF the tests send is one."""

from __future__ import annotations

import base64

from tests.support.builders import PDF_BYTES, b64


def test_pdf_fixture_is_a_pdf() -> None:
    assert base64.b64decode(b64(PDF_BYTES)).startswith(b"%PDF-")
