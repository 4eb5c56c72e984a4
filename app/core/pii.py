"""Keeping candidates' data out of what the relay records about them (errors, warnings, logs).

ATS error messages sometimes echo what they were sent ("email ana@x is taken"); connectors pass
them on for the operator, and the engine scrubs every recorded message against the values of
the application it was delivering (names also in part and without accents, the phone in any
writing that ends with its digits), plus anything shaped like an email address.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from app.core.model import AttachmentRef, StoredApplication

EMAIL_RE = re.compile(r"[^\s@\"'<>]+@[^\s@\"'<>]+")
PHONE_RE = re.compile(r"\+?\d[\d .\-()]{5,}\d")


PHONE_TAIL = 7  # the digits two writings of one phone number share at the least ("0612 345 678", "+34612345678")


def scrub(text: str, values: Iterable[str], *, numbers: bool = False, limit: int = 500) -> str:
    """`text` with each of `values` (case-insensitive) and every email address redacted;
    a phone-like run whose last digits are those of a phone among `values` (a digits-only value
    of 7 or more: "0612 345 678" for "+34 612 345 678") too; with `numbers`, every phone-like run."""
    text = EMAIL_RE.sub("<email>", text)  # first: values inside an address would break it up
    values = {v for v in values if v and 3 <= len(v)}
    phones = {v[-PHONE_TAIL:] for v in values if v.isascii() and v.isdigit() and len(v) >= PHONE_TAIL}
    # A value longer than the text cannot be in it: skipping those keeps a warning's scrub short
    # whatever the application's size (each was once compiled as a regex, per warning).
    for value in sorted((v for v in values if len(v) <= len(text)), key=len, reverse=True):
        text = re.sub(re.escape(value), "<redacted>", text, flags=re.IGNORECASE)
    if numbers:
        text = PHONE_RE.sub("<number>", text)
    elif phones:
        text = PHONE_RE.sub(lambda m: "<number>" if re.sub(r"\D", "", m[0])[-PHONE_TAIL:] in phones else m[0], text)
    return text[:limit]


def _unaccented(text: str) -> str:
    """`text` without its combining marks ("Zoë" -> "Zoe", "Ñúñez" -> "Nunez"): an ATS may echo a
    name so, and it names the candidate all the same."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _name_forms(name: str) -> list[str]:
    """A name as an ATS may write part of it back: whole, each part of a double-barrelled one
    ("Van der Berg-Ñúñez" -> "Van der Berg", "Ñúñez"), each word of four letters or more, and
    each of those without accents."""
    forms = [name, *re.split(r"\s*-\s*", name), *(w for w in re.split(r"[\s-]+", name) if len(w) >= 4)]
    return [*forms, *(_unaccented(f) for f in forms)]


def personal_values(application: StoredApplication | None) -> tuple[str, ...]:
    """Every free-text value of an application that could identify or describe its candidate."""
    if application is None:
        return ()
    c = application.candidate
    values = [
        *_name_forms(c.first_name),
        *_name_forms(c.last_name),
        *_name_forms(f"{c.first_name} {c.last_name}"),
        c.email_address,
        c.email_address.split("@")[0],
        c.phone_number or "",
        c.company or "",
    ]
    if c.phone_number:
        values.append(re.sub(r"\D", "", c.phone_number))
    if c.location is not None:
        values += [c.location.city or "", c.location.zip_code or ""]
    for answer in application.screening_question_answers:
        value = answer.answer
        if isinstance(value, AttachmentRef):
            values.append(value.name)
        elif isinstance(value, list):
            values += [str(v) for v in value]
        elif isinstance(value, str):
            values.append(value)
    values += [a.name for a in application.attachments]  # names inside file names are caught above
    values += _strings(application.remote_fields)
    return tuple(v for v in values if v)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []
