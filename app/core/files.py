"""What a file really is, by its first bytes, not by its name or declared type.

Applications carry CVs and letters: PDF, Word (doc/docx), OpenDocument, RTF, plain text, and
images of scans. Anything else is refused, and so is an executable or script whatever it claims.
"""

from __future__ import annotations

SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "application/msword"),  # OLE2: .doc (and old .xls/.ppt)
    (b"{\\rtf", "application/rtf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
EXECUTABLE_SIGNATURES: tuple[bytes, ...] = (
    b"MZ",  # Windows PE
    b"\x7fELF",  # Linux
    b"\xcf\xfa\xed\xfe",
    b"\xce\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O
    b"#!",  # scripts
)
ZIP = b"PK\x03\x04"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"


class FileRejected(ValueError):
    """A file the relay will not carry; the message names the reason, never the content."""


def sniff(data: bytes) -> str:
    """The content type that `data` really has; raises FileRejected for anything not allowed."""
    if not data:
        raise FileRejected("the file is empty")
    head = data[:4096]
    for signature in EXECUTABLE_SIGNATURES:
        if head.startswith(signature):
            raise FileRejected("executables and scripts are not accepted")
    for signature, content_type in SIGNATURES:
        if head.startswith(signature):
            return content_type
    if head.startswith(ZIP):
        if b"word/" in data[:65536] or b"[Content_Types].xml" in data[:65536]:
            return DOCX
        if b"mimetypeapplication/vnd.oasis.opendocument.text" in head:
            return ODT
        raise FileRejected("zip archives other than Word or OpenDocument documents are not accepted")
    try:
        head.decode("utf-8") if len(data) <= 4096 else data[:4000].decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        raise FileRejected("unrecognised file type (accepted: PDF, Word, OpenDocument, RTF, text, images)") from None
    if "\x00" in head.decode("utf-8", errors="ignore"):
        raise FileRejected("binary content in a text file")
    return "text/plain"


_FAMILIES = {
    "application/pdf": {"application/pdf"},
    "application/msword": {"application/msword"},
    DOCX: {DOCX, "application/msword", "application/zip"},
    ODT: {ODT, "application/zip"},
    "application/rtf": {"application/rtf", "text/rtf", "application/msword"},
    "text/plain": {"text/plain", "text/markdown", "text/csv"},
}


def check_declared(declared: str | None, actual: str) -> None:
    """A declared type must agree with the bytes (a `.pdf` that is a Word file is fine to fix, a
    declared image that is text is not a CV we can trust)."""
    if not declared or declared in ("application/octet-stream", "binary/octet-stream"):
        return
    declared = declared.split(";")[0].strip().lower()
    if declared == actual or declared in _FAMILIES.get(actual, set()):
        return
    if declared.startswith("image/") and actual.startswith("image/"):
        return
    if declared in {t for ts in _FAMILIES.values() for t in ts} | {"image/png", "image/jpeg"}:
        raise FileRejected(f"declared as {declared} but the content is {actual}")
