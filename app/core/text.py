"""Text is clean before it is stored (issue 22, point 5): one pass over a decoded application,
whatever channel it came by (API, Indeed, webhooks, forms: app/intake/accept.py runs it).

* every text field: control and format characters removed (NUL, C0/C1, ANSI escape sequences,
  bidi overrides such as U+202E, zero-width characters, the BOM), whitespace collapsed, then
  Unicode NFC (a macOS "é" and a Windows one are one name);
* one-line fields (names, phones, company, city, list answers) collapse every run of whitespace to
  one space; free text (answers) keeps its line breaks, at most one blank line in a row;
* a name left empty is refused (422, naming the field);
* the email address is validated by email-validator (a kept library), its domain IDNA-encoded,
  and refused when its local part carries control or invisible characters, fullwidth or other
  compatibility forms, or letters of scripts that are not normally mixed (a Cyrillic "о" among
  Latin letters): each of those made a second candidate in the ATS. `normalise_email`
  (app/core/model.py) is the key form the idempotency and erasure indexes share.
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser
from typing import Any, Final

import email_validator
import msgspec

from app.core.model import (
    LIMIT_EXCEEDED,
    MAX_ANSWER_CHARS,
    MAX_ANSWER_ITEM_CHARS,
    MAX_EMAIL_CHARS,
    MAX_LINE_CHARS,
    MAX_ZIP_CHARS,
    ApplicationIn,
    FileAnswer,
    ScreeningAnswer,
)
from app.core.problems import FieldError, Problem

# Removed from text: controls (Cc), format characters (Cf: bidi controls, zero-width, BOM, soft
# hyphen, tags) and lone surrogates (Cs), which no ATS can store. As ranges (Unicode 14, Python
# 3.11's; tests/unit/core/test_text.py checks them against unicodedata) so that removing them is one
# regex pass at C speed: a per-character loop took 2 s over the 3 M characters of answers an
# application may carry.
REMOVED_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs"})
REMOVED_RANGES: Final = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C),
    (0x06DD, 0x06DD), (0x070F, 0x070F), (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E),
    (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2064), (0x2066, 0x206F), (0xD800, 0xDFFF),
    (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD), (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001), (0xE0020, 0xE007F),
)  # fmt: skip
_LF: Final = 0x0A  # kept: clean_text's line breaks (clean_line turns them into spaces first)
_REMOVED: Final = re.compile(
    "["
    + "".join(
        f"\\U{low:08x}-\\U{high:08x}"
        for first, last in REMOVED_RANGES
        for low, high in ((first, min(last, _LF - 1)), (max(first, _LF + 1), last))
        if low <= high
    )
    + "]"
)
_ESCAPES: Final = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, screen clears
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|\x1b[P^_X][^\x1b]*(?:\x1b\\)?"  # DCS, PM, APC, SOS strings
    r"|\x1b[ -/]*[0-~]"  # two- and three-character escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"  # the C1 CSI
)
_LINE_BREAKS: Final = re.compile(r"\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_BREAK_CHARS: Final = ("\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")
_BLANK_LINES: Final = re.compile(r"\n{3,}")


def _line_breaks(text: str, replacement: str) -> str:
    """Every kind of line break as `replacement` (a search per kind first: most texts have none)."""
    return _LINE_BREAKS.sub(replacement, text) if any(c in text for c in _BREAK_CHARS) else text


def _strip_controls(text: str) -> str:
    """`text` without escape sequences and REMOVED characters (line feeds kept)."""
    if text.isprintable():  # the common case, at C speed: no C* or Z* but the space
        return text
    return _REMOVED.sub("", _ESCAPES.sub("", text))


def _spaced(text: str) -> bool:
    """No run of spaces, none at either end (of the text or of a line)."""
    return not (
        "  " in text
        or " \n" in text
        or "\n " in text
        or text[:1] in (" ", "\n")
        or text[-1:] in (" ", "\n")
        or "\n\n\n" in text
    )


def clean_line(text: str) -> str:
    """One-line text: no controls or format characters, single spaces, NFC."""
    if text.isprintable() and _spaced(text) and unicodedata.is_normalized("NFC", text):
        return text  # already clean: every check at C speed
    collapsed = " ".join(text.split())  # every kind of whitespace and line break, one space
    if not collapsed.isprintable():
        collapsed = " ".join(_strip_controls(collapsed).split())
    return unicodedata.normalize("NFC", collapsed)


def clean_text(text: str) -> str:
    """Free text: as `clean_line` within each line; line breaks kept, at most one blank line.
    Text already clean is answered at C speed; other text is cleaned line by line (linear: the
    caps on answers bound it)."""
    if text.replace("\n", " ").isprintable() and _spaced(text) and unicodedata.is_normalized("NFC", text):
        return text
    lines = []
    for line in _line_breaks(text, "\n").replace("\t", " ").split("\n"):
        if not line.isprintable():
            line = " ".join(_strip_controls(line).split())
        elif "  " in line or line.startswith(" ") or line.endswith(" "):
            line = " ".join(line.split())
        lines.append(line)
    joined = "\n".join(lines)
    if "\n\n\n" in joined:
        joined = _BLANK_LINES.sub("\n\n", joined)
    return unicodedata.normalize("NFC", joined.strip("\n"))


class _TextOfHtml(HTMLParser):
    """The readable text of an HTML fragment: no tags, no script or style bodies."""

    BLOCKS: Final = frozenset({"p", "div", "br", "li", "ul", "ol", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section"})
    HIDDEN: Final = frozenset({"script", "style", "template", "noscript", "head", "title", "svg", "object"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.HIDDEN:
            self.hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """A board's HTML résumé as plain text (Indeed sends one): what a recruiter reads, without
    the markup an ATS might render."""
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    return clean_text("".join(parser.parts))


# -- emails -------------------------------------------------------------------------------------


class EmailRefused(ValueError):
    """An address the relay will not store; the message says why, without the address."""


# Scripts that UTS 39's "highly restrictive" level lets one identifier mix; any other mix of two
# scripts in a local part is refused as a likely homoglyph.
_SCRIPT_MIXES: Final = (
    frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA"}),
    frozenset({"LATIN", "CJK", "BOPOMOFO"}),
    frozenset({"LATIN", "CJK", "HANGUL"}),
)


def _script(char: str) -> str | None:
    """The script of a letter, from its Unicode name's first word (LATIN, CYRILLIC, GREEK, CJK...)."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def mixed_script(text: str) -> bool:
    scripts = {s for s in map(_script, text) if s is not None}
    return len(scripts) > 1 and not any(scripts <= allowed for allowed in _SCRIPT_MIXES)


def clean_email(address: str) -> str:
    """The address to store: validated, its local part NFC as sent, its domain IDNA (ASCII,
    lower case). Raises EmailRefused."""
    address = address.strip()
    if any(unicodedata.category(c) in REMOVED_CATEGORIES or c.isspace() for c in address):
        raise EmailRefused("the address contains control, invisible or space characters")
    try:
        valid = email_validator.validate_email(address, check_deliverability=False)
    except email_validator.EmailNotValidError as exc:
        raise EmailRefused(str(exc)) from None
    local = valid.local_part
    if unicodedata.normalize("NFKC", local) != local:
        raise EmailRefused("the local part has fullwidth or other compatibility characters")
    if mixed_script(local):
        raise EmailRefused("the local part mixes letters of different scripts (a homoglyph)")
    return f"{local}@{valid.ascii_domain.lower()}"


# -- the application ----------------------------------------------------------------------------


def _clean_value(value: Any) -> Any:
    """remote_fields: every string inside, as free text."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean_value(v) for k, v in value.items()}
    return value


def _optional(value: str | None, field: str, limit: int = MAX_LINE_CHARS) -> str | None:
    if value is None:
        return None
    return _within(field, clean_line(value), limit) or None


def _within(field: str, cleaned: str, limit: int) -> str:
    """`cleaned`, if still within the stored model's length: NFC lengthens some text, and a record
    over its own limits could not be read back (the worker's plan, the API's reads)."""
    if len(cleaned) > limit:
        raise _invalid(field, f"is longer than {limit} characters once normalised (NFC)", LIMIT_EXCEEDED)
    return cleaned


def clean_application(app: ApplicationIn) -> ApplicationIn:
    """The application with every text cleaned; raises a 422 Problem naming the field of a name
    that is empty once cleaned, of a refused email address, or of text over its limit once
    normalised."""
    candidate = app.candidate
    names = {}
    for field in ("first_name", "last_name"):
        names[field] = _within(f"candidate.{field}", clean_line(getattr(candidate, field)), MAX_LINE_CHARS)
        if not names[field]:
            raise _invalid(
                f"candidate.{field}",
                "is empty once control and invisible characters are removed",
                "PLATFORM.INPUT_INVALID",
            )
    try:
        email = _within("candidate.email_address", clean_email(candidate.email_address), MAX_EMAIL_CHARS)
    except EmailRefused as exc:
        raise _invalid("candidate.email_address", str(exc), "PLATFORM.INPUT_INVALID") from None
    location = candidate.location
    if location is not None:
        location = msgspec.structs.replace(
            location,
            city=_optional(location.city, "candidate.location.city"),
            zip_code=_optional(location.zip_code, "candidate.location.zip_code", MAX_ZIP_CHARS),
        )
    candidate = msgspec.structs.replace(
        candidate,
        email_address=email,
        phone_number=_optional(candidate.phone_number, "candidate.phone_number"),
        company=_optional(candidate.company, "candidate.company"),
        location=location,
        **names,
    )
    answers = [_clean_answer(i, answer) for i, answer in enumerate(app.screening_question_answers)]
    source = app.source
    if source is not None and source.name is not None:
        source = msgspec.structs.replace(source, name=_optional(source.name, "source.name"))
    return msgspec.structs.replace(
        app,
        candidate=candidate,
        screening_question_answers=answers,
        source=source,
        remote_fields=_clean_value(app.remote_fields),
    )


def _clean_answer(index: int, answer: ScreeningAnswer) -> ScreeningAnswer:
    value, field = answer.answer, f"screening_question_answers[{index}].answer"
    if isinstance(value, str):
        return ScreeningAnswer(answer.question_id, _within(field, clean_text(value), MAX_ANSWER_CHARS))
    if isinstance(value, list):
        items = [_within(f"{field}[{i}]", clean_line(item), MAX_ANSWER_ITEM_CHARS) for i, item in enumerate(value)]
        return ScreeningAnswer(answer.question_id, items)
    if isinstance(value, FileAnswer):
        return answer  # its name is made safe with the file (app/core/files.py safe_name)
    return answer


def _invalid(field: str, message: str, code: str) -> Problem:
    return Problem(422, "Invalid application", f"{field}: {message}", [FieldError(field, message)], code)
