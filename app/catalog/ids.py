"""Job ids as callers write them, and the catalog's own listing cursor (docs/catalog.md, "Ids and
cursors")."""

from __future__ import annotations

import base64
import binascii
import hashlib

import msgspec

from app.core.catalog import JobQuery
from app.core.problems import FieldError, Problem

REMOTE_PREFIX = "remote:"
INPUT_INVALID = "PLATFORM.INPUT_INVALID"
MAX_JOB_ID = 200


def parse_job_id(raw: str, *, field: str = "job_id") -> str:
    """The ATS's own job id from what a caller wrote: the id itself or Kombo's `remote:<id>`
    spelling (the relay has no ids of its own, so both name the same job). A blank id is a 422
    naming `field`."""
    text = raw.strip() if isinstance(raw, str) else ""
    if text.startswith(REMOTE_PREFIX):
        text = text[len(REMOTE_PREFIX) :].strip()
    if not text or len(text) > MAX_JOB_ID or any(ord(ch) < 32 for ch in text):
        message = f"must be the ATS's job id (or remote:<id>), 1 to {MAX_JOB_ID} printable characters"
        raise Problem(422, "Invalid request", f"{field}: {message}", [FieldError(field, message)], code=INPUT_INVALID)
    return text


class _Cursor(msgspec.Struct, array_like=True, frozen=True):
    version: int
    connector_cursor: str
    filters: str  # digest of the filters the listing was started with


def filters_digest(query: JobQuery) -> str:
    """The filters of a listing (not its page size or cursor), as a short digest: a cursor is only
    valid with the filters it was made for."""
    filters = (query.status, query.name_contains, query.updated_after.isoformat() if query.updated_after else None)
    return hashlib.sha256(msgspec.msgpack.encode(filters)).hexdigest()[:16]


def wrap_cursor(connector_cursor: str | None, query: JobQuery) -> str | None:
    """The connector's opaque cursor inside ours (URL-safe, no padding), bound to the filters."""
    if connector_cursor is None:
        return None
    packed = msgspec.msgpack.encode(_Cursor(1, connector_cursor, filters_digest(query)))
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def unwrap_cursor(cursor: str | None, query: JobQuery, *, field: str = "cursor") -> str | None:
    """The connector's cursor from ours; a 422 naming `field` for a cursor that is not ours or was
    made for other filters."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = msgspec.msgpack.decode(raw, type=_Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        decoded = None
    if decoded is None or decoded.version != 1:
        message = "is not a next_cursor this API gave"
    elif decoded.filters != filters_digest(query):
        message = "was made for other filters: repeat the first page's status, name_contains and updated_after"
    else:
        return decoded.connector_cursor
    raise Problem(422, "Invalid request", f"{field}: {message}", [FieldError(field, message)], code=INPUT_INVALID)
