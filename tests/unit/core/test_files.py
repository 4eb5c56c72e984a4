"""File sniffing (app/core/files.py): a file is what its first bytes say, whatever its name or
declared type; executables, scripts, other archives and binary "text" are refused with a reason.
And the PDF the tests send is one."""

from __future__ import annotations

import base64

import pytest

from app.core import files
from tests.support.builders import DOCX_BYTES, PDF_BYTES, b64


def test_pdf_fixture_is_a_pdf() -> None:
    assert base64.b64decode(b64(PDF_BYTES)).startswith(b"%PDF-")


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (PDF_BYTES, "application/pdf"),
        (DOCX_BYTES, files.DOCX),
        (b"PK\x03\x04" + b"\x00" * 26 + b"mimetypeapplication/vnd.oasis.opendocument.text", files.ODT),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "application/msword"),
        (b"{\\rtf1\\ansi Dear team}", "application/rtf"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image/png"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, "image/jpeg"),
        (b"GIF89a" + b"\x00" * 20, "image/gif"),
        (b"II*\x00" + b"\x00" * 20, "image/tiff"),
        ("Zoë Van der Berg — CV\nPython, Rust\n".encode(), "text/plain"),
        (b"a" * 10_000, "text/plain"),
    ],
)
def test_sniff_names_the_real_type(data: bytes, content_type: str) -> None:
    assert files.sniff(data) == content_type


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the file is empty"),
        (b"MZ\x90\x00" + b"\x00" * 100, "executables and scripts are not accepted"),
        (b"\x7fELF\x02\x01\x01" + b"\x00" * 100, "executables and scripts are not accepted"),
        (b"#!/bin/sh\nrm -rf /\n", "executables and scripts are not accepted"),
        (b"PK\x03\x04" + b"\x00" * 26 + b"payload.exe", "zip archives other than Word or OpenDocument"),
        (bytes(range(128, 256)), "unrecognised file type"),
        (b"looks like text\x00but is not", "binary content in a text file"),
    ],
)
def test_sniff_refuses_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(files.FileRejected, match=reason):
        files.sniff(data)


def test_a_pdf_named_like_anything_is_still_a_pdf_and_a_script_named_pdf_is_not() -> None:
    assert files.sniff(PDF_BYTES + b"\n#!/bin/sh\n") == "application/pdf"  # only the first bytes count
    with pytest.raises(files.FileRejected):
        files.sniff(b"#!" + PDF_BYTES)


@pytest.mark.xfail(
    strict=True,
    reason="app/core/files.py decodes the first 4000 bytes of a long text strictly: a multi-byte "
    "character cut at byte 4000 makes a valid UTF-8 text file 'unrecognised'",
)
def test_a_long_utf8_text_is_text_wherever_its_characters_fall() -> None:
    text = ("a" + "é" * 3000).encode()  # byte 4000 falls inside an "é"
    assert files.sniff(text) == "text/plain"


@pytest.mark.parametrize(
    ("declared", "actual"),
    [
        (None, "application/pdf"),
        ("application/octet-stream", "application/pdf"),
        ("application/pdf", "application/pdf"),
        ("Application/PDF; name=cv.pdf", "application/pdf"),
        ("application/msword", files.DOCX),  # a .doc name on a .docx: fine to fix
        ("application/zip", files.ODT),
        ("text/markdown", "text/plain"),
        ("image/jpg", "image/png"),  # images among themselves
        ("application/x-unheard-of", "application/pdf"),  # a type we do not know says nothing
    ],
)
def test_declared_types_that_agree_with_the_bytes(declared: str | None, actual: str) -> None:
    files.check_declared(declared, actual)  # no exception


@pytest.mark.parametrize(
    ("declared", "actual"),
    [
        ("application/pdf", files.DOCX),
        ("image/png", "text/plain"),
        ("text/plain", "application/pdf"),
    ],
)
def test_declared_types_that_contradict_the_bytes(declared: str, actual: str) -> None:
    with pytest.raises(files.FileRejected, match=f"declared as {declared} but the content is {actual}"):
        files.check_declared(declared, actual)
