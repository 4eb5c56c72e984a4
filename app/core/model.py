"""The canonical application: Kombo's create-application shape, as msgspec Structs
(docs/architecture.md, "The canonical model").

Two forms exist. `ApplicationIn` is what clients post (attachments carry base64 `data` or a
`data_url`). `StoredApplication` is what the relay keeps and connectors read: attachment bytes are
moved out to their own Redis keys and replaced by an `AttachmentRef` (name, type, sha256, size),
so a connector loads a file only when it uploads it.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from typing import Annotated, Any, Literal

import email_validator
import msgspec
from msgspec import Meta, Struct

# A first, pragmatic address check while parsing: one @, a dot in the domain (internationalised
# labels too), no spaces. email-validator checks it fully once decoded (app/core/text.py).
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
EMAIL_PATTERN = rf"^[^@\s<>()\[\]\\,;:\"]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$"

# Lengths in characters, as stored: app/core/text.py checks them again once text is cleaned (NFC
# can lengthen a string: U+0958 is two characters once normalised, U+1D160 three).
MAX_LINE_CHARS = 200  # a name, a company, a city, a source's name
MAX_ZIP_CHARS = 20
MAX_EMAIL_CHARS = 254  # RFC 5321's path limit, less the angle brackets

NonEmpty = Annotated[str, Meta(min_length=1, max_length=MAX_LINE_CHARS)]
Email = Annotated[str, Meta(pattern=EMAIL_PATTERN, max_length=MAX_EMAIL_CHARS)]
Phone = Annotated[str, Meta(pattern=r"^[+0-9 ().\-/]{3,40}$")]
CountryCode = Annotated[str, Meta(pattern=r"^[A-Z]{2}$")]
Id = Annotated[str, Meta(min_length=1, max_length=200)]

IsoDateOrDateTime = Annotated[
    str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")
]

Gender = Literal["MALE", "FEMALE", "OTHER"]
AttachmentType = Literal["CV", "COVER_LETTER", "OTHER"]


class Location(Struct, forbid_unknown_fields=True, omit_defaults=True):
    city: Annotated[str, Meta(max_length=MAX_LINE_CHARS)] | None = None
    country: CountryCode | None = None
    zip_code: Annotated[str, Meta(max_length=MAX_ZIP_CHARS)] | None = None


class Candidate(Struct, forbid_unknown_fields=True, omit_defaults=True):
    first_name: NonEmpty
    last_name: NonEmpty
    email_address: Email
    phone_number: Phone | None = None
    company: Annotated[str, Meta(max_length=MAX_LINE_CHARS)] | None = None
    location: Location | None = None
    gender: Gender | None = None
    availability_date: dt.date | None = None


class JobRef(Struct, forbid_unknown_fields=True, omit_defaults=True):
    job_id: Id
    stage_id: Id | None = None


class FileAnswer(Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=255)]
    content_type: str | None = None
    data: bytes | None = None  # base64 in JSON, decoded by msgspec (see AttachmentIn.data)
    data_url: str | None = None


# Hard caps on what one application may carry, checked as it is parsed (docs/operations.md,
# "Bounded work"): the ATSs have tens of questions, so a few hundred answers is generous, and
# every later pass over them (checks, mapping, warnings, the steps) stays short.
MAX_ANSWERS = 300
MAX_ANSWER_CHARS = 20_000  # one text answer
MAX_ANSWER_ITEMS = 100  # options of one multiple-choice answer
MAX_ANSWER_ITEM_CHARS = 1_000  # one option id
MAX_REMOTE_FIELDS = 100  # top-level keys of remote_fields
MAX_REMOTE_FIELDS_BYTES = 64_000  # remote_fields as JSON, nested values included (checked at intake)
MAX_REMOTE_FIELDS_DEPTH = 32  # levels of arrays and objects inside remote_fields (checked at intake)
# Integers a stored record can hold: msgpack's (and most ATSs' JSON parsers') 64 bits.
INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
LIMIT_EXCEEDED = "PLATFORM.LIMIT_EXCEEDED"  # the Problem code of a refusal over one of these caps

AnswerText = Annotated[str, Meta(max_length=MAX_ANSWER_CHARS)]
AnswerItems = Annotated[list[Annotated[str, Meta(max_length=MAX_ANSWER_ITEM_CHARS)]], Meta(max_length=MAX_ANSWER_ITEMS)]
AnswerInt = Annotated[int, Meta(ge=INT64_MIN, le=INT64_MAX)]
AnswerValue = AnswerText | bool | AnswerInt | float | AnswerItems | FileAnswer


class ScreeningAnswer(Struct, forbid_unknown_fields=True):
    question_id: Id
    answer: AnswerValue


class AttachmentIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=255)]
    type: AttachmentType
    content_type: Annotated[str, Meta(max_length=200)] | None = None
    # base64 in JSON; msgspec decodes it while parsing, in C, into the only copy intake keeps
    # (CPython's binascii took 26 % of intake CPU). Sloppier base64 (whitespace, data: URLs,
    # url-safe, no padding) fails that decode and is retried leniently: app/intake/accept.py.
    data: bytes | None = None
    data_url: Annotated[str, Meta(max_length=2048)] | None = None


class Source(Struct, forbid_unknown_fields=True, omit_defaults=True):
    id: Id | None = None
    name: Annotated[str, Meta(min_length=1, max_length=MAX_LINE_CHARS)] | None = None
    unified_key: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class GdprConsent(Struct, forbid_unknown_fields=True, omit_defaults=True):
    given: bool
    # ISO 8601 date or date-time (msgspec cannot hold both types in one union)
    expires_at: IsoDateOrDateTime | None = None


class ApplicationIn(Struct, forbid_unknown_fields=True, omit_defaults=True):
    """POST /v1/applications body."""

    connection_id: Id
    candidate: Candidate
    application: JobRef
    screening_question_answers: Annotated[list[ScreeningAnswer], Meta(max_length=MAX_ANSWERS)] = []
    attachments: Annotated[list[AttachmentIn], Meta(max_length=20)] = []
    source: Source | None = None
    gdpr_consent: GdprConsent | None = None
    remote_fields: Annotated[dict[str, Any], Meta(max_length=MAX_REMOTE_FIELDS)] = {}


class Origin(Struct, omit_defaults=True):
    """Where an application came from: the inbound route, the board's own id, when."""

    channel: str  # api | indeed | webhook | form
    received_at: float
    board: str | None = None
    board_application_id: str | None = None


class AttachmentRef(Struct, omit_defaults=True):
    """A stored attachment: bytes live under the delivery's file key `index`."""

    index: int
    name: str
    type: str
    content_type: str | None = None
    sha256: str | None = None  # None until a data_url file has been fetched
    size: int | None = None
    data_url: str | None = None


class StoredAnswer(Struct, omit_defaults=True):
    question_id: str
    answer: str | bool | int | float | list[str] | AttachmentRef


class StoredApplication(Struct, omit_defaults=True):
    connection_id: str
    candidate: Candidate
    application: JobRef
    origin: Origin
    screening_question_answers: list[StoredAnswer] = []
    attachments: list[AttachmentRef] = []
    source: Source | None = None
    gdpr_consent: GdprConsent | None = None
    remote_fields: dict[str, Any] = {}


stored_encoder = msgspec.msgpack.Encoder()
stored_decoder = msgspec.msgpack.Decoder(StoredApplication)


def stored_as_data(raw: bytes) -> dict[str, Any]:
    """A stored application as plain data, for the reads that only show it (the operator's
    views, a subject's export, a file link): checked against the model where it decodes, else as
    it was stored. A record kept under other limits (an older release's, text NFC lengthened
    before intake checked it) is still shown and exported, never a 500."""
    try:
        data: Any = msgspec.to_builtins(stored_decoder.decode(raw))
    except msgspec.ValidationError:
        data = msgspec.msgpack.decode(raw)
    return data if isinstance(data, dict) else {}


def normalise_email(email: str) -> str:
    """The one canonical form of an address: the idempotency key and the erasure index both use
    it, so they can never disagree on whether two addresses are the same candidate's. The local
    part NFC and case-folded, the domain IDNA-encoded (``Zoë@Bücher.de`` and
    ``zoë@xn--bcher-kva.de`` are one key); for an ASCII address, ``strip().casefold()`` as before.
    An address email-validator refuses is never stored (intake refuses it): its form only has to
    be stable.

    An ASCII address without an IDNA label (``xn--``) is that form already once case-folded:
    email-validator keeps such a local part as it is and lower-cases such a domain, and a refused
    address is case-folded too. Intake asks for the key (the erasure index, a derived
    idempotency key) after validating the address itself: the fast path spares it a second
    validation: 3 % of its instructions a request (bench/RESULTS.md, fourth pass)."""
    stripped = email.strip()
    if stripped.isascii() and "xn--" not in stripped.lower():
        return stripped.casefold()
    return email_validator_key(stripped)


def email_validator_key(email: str) -> str:
    """`normalise_email` as email-validator reads the address: what its ASCII fast path must equal."""
    address = unicodedata.normalize("NFC", email.strip())
    try:
        valid = email_validator.validate_email(address, check_deliverability=False)
    except email_validator.EmailNotValidError:
        return address.casefold()
    return f"{valid.local_part.casefold()}@{valid.ascii_domain.lower()}"
