"""Keeping candidates' data out of what the relay records about them (errors, warnings, logs).

ATS error messages sometimes echo what they were sent ("email ana@x is taken"); connectors pass
them on for the operator, and the engine scrubs every recorded message against the values of
the application it was delivering, plus anything shaped like an email address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from app.core.model import AttachmentRef, StoredApplication

EMAIL_RE = re.compile(r"[^\s@\"'<>]+@[^\s@\"'<>]+")
PHONE_RE = re.compile(r"\+?\d[\d .\-()]{5,}\d")


def scrub(text: str, values: Iterable[str], *, numbers: bool = False, limit: int = 500) -> str:
    """`text` with each of `values` (case-insensitive) and every email address redacted;
    with `numbers`, long digit runs (phone-like) too."""
    text = EMAIL_RE.sub("<email>", text)  # first: values inside an address would break it up
    # A value longer than the text cannot be in it: skipping those keeps a warning's scrub short
    # whatever the application's size (each was once compiled as a regex, per warning).
    for value in sorted({v for v in values if v and 3 <= len(v) <= len(text)}, key=len, reverse=True):
        text = re.sub(re.escape(value), "<redacted>", text, flags=re.IGNORECASE)
    if numbers:
        text = PHONE_RE.sub("<number>", text)
    return text[:limit]


def personal_values(application: StoredApplication | None) -> tuple[str, ...]:
    """Every free-text value of an application that could identify or describe its candidate."""
    if application is None:
        return ()
    c = application.candidate
    values = [
        c.first_name,
        c.last_name,
        f"{c.first_name} {c.last_name}",
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
