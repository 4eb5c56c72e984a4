"""What a file really is, by its bytes, not by its name or declared type (README, "Limits").

Applications carry CVs and letters: PDF, Word (doc/docx), OpenDocument text, RTF, plain text, and
images of scans. Anything else is refused, and so is an executable or script whatever it claims.

Detection is puremagic's (a maintained, pure-Python signature database: no libmagic to install
beside the wheel). Its zip answer is only "a zip": Word and OpenDocument files are then checked by
their central directory with zipfile (the parts each format requires, nothing executable or macro
inside, entry count and declared uncompressed size bounded), which reads no compressed data, so a
zip bomb is refused before anything is inflated. Text is refused when its bytes are markup or a
script (SVG, HTML, XML, shell, PowerShell, JavaScript, batch): a ``.txt`` an ATS shows or a recruiter
opens must be prose.
"""

from __future__ import annotations

import codecs
import io
import re
import unicodedata
import zipfile
from typing import Final, Literal

import puremagic

PDF: Final = "application/pdf"
DOC: Final = "application/msword"
DOCX: Final = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT: Final = "application/vnd.oasis.opendocument.text"
RTF: Final = "application/rtf"
TEXT: Final = "text/plain"
PNG: Final = "image/png"
JPEG: Final = "image/jpeg"
GIF: Final = "image/gif"
TIFF: Final = "image/tiff"

# Every type the relay can recognise, with the extension a safe file name gets.
EXTENSIONS: Final[dict[str, str]] = {
    PDF: ".pdf",
    DOC: ".doc",
    DOCX: ".docx",
    ODT: ".odt",
    RTF: ".rtf",
    TEXT: ".txt",
    PNG: ".png",
    JPEG: ".jpg",
    GIF: ".gif",
    TIFF: ".tif",
}
# The names a connection's `allowed_attachment_types` takes (app/config.py): EXTENSIONS' keys.
AttachmentContentType = Literal[
    "application/pdf",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.oasis.opendocument.text",
    "application/rtf",
    "text/plain",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/tiff",
]
# A connection's `allowed_attachment_types` unless it says otherwise.
DEFAULT_ALLOWED: Final[tuple[AttachmentContentType, ...]] = (PDF, DOC, DOCX, ODT, RTF, TEXT, JPEG, PNG)

EXECUTABLE_SIGNATURES: Final[tuple[bytes, ...]] = (
    b"MZ",  # Windows PE
    b"\x7fELF",  # Linux
    b"\xcf\xfa\xed\xfe",
    b"\xce\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",  # Mach-O
    b"#!",  # scripts
)
ZIP: Final = b"PK\x03\x04"
# puremagic's answers the relay takes, as the type it stores (OLE2 is taken as .doc).
_BINARY: Final[dict[str, str]] = {
    PDF: PDF,
    DOC: DOC,
    RTF: RTF,
    "text/rtf": RTF,
    PNG: PNG,
    JPEG: JPEG,
    GIF: GIF,
    TIFF: TIFF,
}


def _signatures_of_other_taken_types() -> tuple[tuple[int, bytes], ...]:
    """(offset, bytes) of every puremagic signature (header, footer, multi-part) of a taken type
    other than PDF: what could give a "%PDF-" file another type in `sniff`."""
    tables = puremagic.main  # the tables `magic_string` matches against
    rows = [
        *tables.magic_header_array,
        *tables.magic_footer_array,
        *(row for options in tables.multi_part_dict.values() for row in options),
    ]
    return tuple((row.offset, row.byte_match) for row in rows if row.mime_type in _BINARY and row.mime_type != PDF)


PDF_HEADER: Final = b"%PDF-"
# A file that starts like a PDF and has no signature of another taken type: puremagic's best taken
# guess for it is PDF, whatever else it guesses, so `sniff` answers PDF without asking it (its
# Python loop over ~1,900 signatures is ~0.8 ms for a CV, 13 % of the web's CPU in bench P1).
_PDF_RIVALS: Final = _signatures_of_other_taken_types()


def _at(data: bytes, offset: int, length: int) -> bytes:
    """`data`'s bytes at a signature's offset (negative: from the end), as puremagic slices them."""
    end = offset + length
    return data[offset:end] if end != 0 else data[offset:]


_MARKUP_OR_SCRIPT: Final = re.compile(
    r"html|xml|svg|javascript|ecmascript|x-sh\b|x-shellscript|powershell|x-python|x-perl|x-php|x-msdos|x-bat"
)

# The zip checks: an OOXML or ODF CV has tens of parts and a few MB inflated.
MAX_ZIP_ENTRIES: Final = 1000
MAX_ZIP_UNCOMPRESSED: Final = 100 * 1024 * 1024
MAX_ZIP_RATIO: Final = 200  # a part inflating more than 200× its stored size is a bomb, not a CV
MAX_MANIFEST_BYTES: Final = 1024 * 1024
_EXECUTABLE_PARTS: Final = re.compile(
    r"\.(exe|dll|com|scr|cpl|msi|msp|sys|drv|ocx|bat|cmd|ps1|psm1|psd1|vbs|vbe|js|jse|wsf|wsh|hta|jar|"
    r"class|sh|bash|py|pl|rb|php|lnk|reg|app|dmg|elf|so|dylib|docm|dotm|xlsm|pptm|zip|7z|rar|gz|iso)$",
    re.IGNORECASE,
)
# Macros (OOXML's vbaProject, ODF's Basic and Scripts folders), ActiveX, and embedded OLE objects
# (a "package" object runs whatever it wraps when clicked).
_MACRO_PARTS: Final = re.compile(
    r"(^|/)(vbaproject\.bin|vbadata\.xml|activex/|basic/|scripts/|embeddings/[^/]*\.bin$)", re.IGNORECASE
)
_DOCX_MAIN: Final = b"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"

# Text that is markup or a script: tags a browser runs, and the syntax of shells, PowerShell,
# batch files and JavaScript at the start of a line (a CV that *names* these languages passes).
_SCRIPT_TEXT: Final = re.compile(
    r"""(?i:<\s*(?:script|svg|html|body|head|iframe|object|embed|applet|meta)\b|<!doctype\b|<\?xml\b|<\?php\b
        |\bjavascript\s*:|\bon(?:load|error|click|mouseover|focus)\s*=)
    |^[ \t]*(?:
        (?i:@echo\s+off|set\s+\w+=|powershell(?:\.exe)?\s+-|cmd(?:\.exe)?\s+/c)
       |(?i:\$[a-z_]\w*\s*=|\$env:|param\s*\(|function\s+[\w-]+\s*(?:\([^)\n]*\)\s*)?\{|Invoke-\w+|iex\s
           |New-Object\s|Set-ExecutionPolicy|Start-Process|Add-Type|Import-Module|\[System\.|Write-Host\s)
       |(?:var|let|const)\s+\w+\s*=|import\s+.+\s+from\s+['"]|require\s*\(|module\.exports|eval\s*\(
       |document\.(?:write|cookie|location|body|getElement)|window\.(?:location|open|onload)
       |\(\s*function\s*\(|\w+\s*=\s*\([^)\n]*\)\s*=>
       |sudo\s|rm\s+-[rf]+\s|chmod\s|chown\s|curl\s|wget\s|export\s+\w+=|nohup\s|if\s+\[\s|\w+\(\)\s*\{
    )""",
    re.VERBOSE | re.MULTILINE,
)  # markup, batch and PowerShell are case-insensitive; shell and JavaScript keywords are lower case
# Where a script or page shows itself: browsers sniff the first 512 bytes, interpreters read from
# the top. Scanning 64 K characters keeps a 10 MB text's check in milliseconds.
SCRIPT_SCAN_CHARS: Final = 64 * 1024
# C0 controls but tab, line feed, form feed and carriage return, and DEL; one memchr each.
_TEXT_CONTROLS: Final = tuple(bytes([c]) for c in (*range(0x09), 0x0B, *range(0x0E, 0x20), 0x7F))


class FileRejected(ValueError):
    """A file the relay will not carry; the message names the reason, never the content.

    `code` is the refusal's machine code (README, "Error codes")."""

    def __init__(self, message: str, code: str = "FILE.TYPE_REFUSED") -> None:
        super().__init__(message)
        self.code = code


def sniff(data: bytes) -> str:
    """The content type that `data` really has; raises FileRejected for anything not allowed."""
    if not data:
        raise FileRejected("the file is empty", "FILE.EMPTY")
    for signature in EXECUTABLE_SIGNATURES:
        if data.startswith(signature):
            raise FileRejected("executables and scripts are not accepted", "FILE.EXECUTABLE")
    if data.startswith(ZIP):
        return _check_package(data)
    if data.startswith(PDF_HEADER) and not any(_at(data, o, len(b)) == b for o, b in _PDF_RIVALS):
        return PDF  # what the guesses below would answer (see _PDF_RIVALS)
    guesses = _guesses(data)
    for mime in guesses:
        if mime in _BINARY:
            return _BINARY[mime]
    if "vnd.microsoft.portable-executable" in guesses or any("executable" in m for m in guesses):
        raise FileRejected("executables and scripts are not accepted", "FILE.EXECUTABLE")
    text = _utf8(data)
    if text is None:
        known = next((m for m in guesses if m), None)
        if known:
            raise FileRejected(f"files of type {known} are not accepted")
        raise FileRejected("unrecognised file type (accepted: PDF, Word, OpenDocument, RTF, text, images)")
    if any(_MARKUP_OR_SCRIPT.search(m) for m in guesses) or _SCRIPT_TEXT.search(text, 0, SCRIPT_SCAN_CHARS):
        raise FileRejected("markup and scripts are not accepted as text", "FILE.SCRIPT")
    if any(control in data for control in _TEXT_CONTROLS):
        raise FileRejected("binary content in a text file", "FILE.BINARY_TEXT")
    return TEXT


# What `sniff` reads of a binary file (a PDF, an image, a Word 97 document): its first bytes (the
# start signatures, and puremagic's header: 36,870 bytes in 1.30) and its last (puremagic's footer:
# 516). A zip or a text needs all of it. tests/unit/core checks puremagic's lengths fit.
PROBE_HEAD: Final = 64 << 10
PROBE_TAIL: Final = 4 << 10


def decided_by_ends(head: bytes) -> bool:
    """Whether `sniff` decides a file that starts with `head` (PROBE_HEAD bytes, or the whole
    file) by its first PROBE_HEAD and last PROBE_TAIL bytes alone: then a large file need not be
    held whole to be checked (the form route streams it to the blob store, app/delivery/staging.py).
    `sniff(head + tail)` is then what `sniff(whole)` is."""
    if not head or head.startswith(ZIP) or any(head.startswith(s) for s in EXECUTABLE_SIGNATURES):
        return False
    return any(mime in _BINARY for mime in _guesses(head))


def sniff_ends(head: bytes, tail: bytes) -> str:
    """`sniff` of a file `decided_by_ends`, from its two ends (a large binary file's check)."""
    actual = sniff(head + tail)
    if actual not in _BINARY.values():  # cannot happen for such a file; never guess
        raise FileRejected("unrecognised file type (accepted: PDF, Word, OpenDocument, RTF, text, images)")
    return actual


def _guesses(data: bytes) -> list[str]:
    """puremagic's candidate types, best first (its header and footer signatures only)."""
    try:
        return [m.mime_type for m in puremagic.magic_string(data) if m.mime_type]
    except puremagic.PureError:
        return []
    except (ValueError, IndexError, OSError):  # a malformed header puremagic trips on
        return []


def _utf8(data: bytes) -> str | None:
    """The text, if the bytes are UTF-8 (a BOM is allowed); None if not. All of it is decoded (at C
    speed): a prefix cut at a fixed byte could split a character and call valid text binary."""
    try:
        return data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _check_package(data: bytes) -> str:
    """A zip is a Word (OOXML) or OpenDocument text document, checked by its central directory."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        entries = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError):
        raise FileRejected("a damaged zip archive", "FILE.DAMAGED") from None
    with archive:
        if len(entries) > MAX_ZIP_ENTRIES:
            raise FileRejected(f"a document with more than {MAX_ZIP_ENTRIES} parts", "FILE.ARCHIVE_BOMB")
        total = 0
        for entry in entries:
            total += entry.file_size
            if total > MAX_ZIP_UNCOMPRESSED or entry.file_size > MAX_ZIP_RATIO * max(entry.compress_size, 1024):
                raise FileRejected("a document that inflates far beyond its size", "FILE.ARCHIVE_BOMB")
            name = entry.filename.replace("\\", "/")
            if name.startswith("/") or ".." in name.split("/"):
                raise FileRejected("a document with a part outside the archive", "FILE.ARCHIVE_PATH")
            if _EXECUTABLE_PARTS.search(name.rstrip("/")) and not name.endswith("/"):
                raise FileRejected("a document carrying an executable, script or archive", "FILE.EXECUTABLE")
            if _MACRO_PARTS.search(name):
                raise FileRejected("documents with macros are not accepted", "FILE.MACROS")
        names = {entry.filename for entry in entries}
        if "[Content_Types].xml" in names and "word/document.xml" in names:
            types = _read_part(archive, "[Content_Types].xml")
            if b"macroEnabled" in types or b"macroenabled" in types:
                raise FileRejected("documents with macros are not accepted", "FILE.MACROS")
            if _DOCX_MAIN not in types:
                raise FileRejected("a Word document without its main document type", "FILE.DAMAGED")
            return DOCX
        if entries and entries[0].filename == "mimetype" and "content.xml" in names:
            if _read_part(archive, "mimetype").strip() == ODT.encode():
                return ODT
    raise FileRejected("zip archives other than Word or OpenDocument documents are not accepted", "FILE.ARCHIVE")


def _read_part(archive: zipfile.ZipFile, name: str) -> bytes:
    """A small part's bytes, read no further than MAX_MANIFEST_BYTES whatever it declares."""
    try:
        with archive.open(name) as part:
            return part.read(MAX_MANIFEST_BYTES)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError):
        raise FileRejected("a damaged zip archive", "FILE.DAMAGED") from None


def check_allowed(actual: str, allowed: tuple[str, ...] | frozenset[str]) -> None:
    """The connection's list (`allowed_attachment_types`, default DEFAULT_ALLOWED)."""
    if actual not in allowed:
        raise FileRejected(f"files of type {actual} are not accepted on this connection", "FILE.TYPE_NOT_ALLOWED")


_UNSAFE_NAME_CHARS: Final = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')


def safe_name(name: str | None, actual: str | None, default_stem: str = "file") -> str:
    """A base name safe anywhere a file name goes: no directory, no control, format or reserved
    characters, a stem of at most 120 characters, and the extension of the detected type
    (``../../etc/passwd\\0.pdf`` of a PDF is ``passwd.pdf``; ``cv.exe`` of a PDF is ``cv.exe.pdf``)."""
    text = unicodedata.normalize("NFC", name or "")
    text = "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"))
    base = re.split(r"[/\\]", text)[-1]
    base = _UNSAFE_NAME_CHARS.sub("", base)
    base = " ".join(base.split()).strip(" .")
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    wanted = EXTENSIONS.get(actual or "", "")
    if wanted:
        if ("." + ext).lower() not in (wanted, *_ALIASES.get(wanted, ())):
            stem = base  # the claimed extension is not the type's: kept in the stem, the real one added
            ext = wanted[1:]
    elif actual is not None:
        stem, ext = base, ""
    stem = stem.strip(" .")[:120] or default_stem
    return f"{stem}.{ext}" if ext else stem


_ALIASES: Final[dict[str, tuple[str, ...]]] = {".jpg": (".jpeg", ".jpe", ".jfif"), ".tif": (".tiff",)}


_FAMILIES = {
    PDF: {PDF},
    DOC: {DOC},
    DOCX: {DOCX, DOC, "application/zip"},
    ODT: {ODT, "application/zip"},
    RTF: {RTF, "text/rtf", DOC},
    TEXT: {TEXT, "text/markdown", "text/csv"},
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
    if declared in {t for ts in _FAMILIES.values() for t in ts} | {PNG, JPEG}:
        raise FileRejected(f"declared as {declared} but the content is {actual}", "FILE.TYPE_MISMATCH")
