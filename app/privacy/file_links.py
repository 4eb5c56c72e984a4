"""Signed, expiring download links to a stored attachment, for ATSs that take a CV as a link.

A token is ``base64url(msgpack([delivery_id, index, expires_at])) + "." + base64url(HMAC-SHA256)``
under `APPLYRELAY_LINK_SECRET`; the relay serves it at ``GET /v1/files/{token}`` until it expires
(and the file is kept that long). Nothing in a token is secret, nothing in it is personal.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import msgspec


class BadLink(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, delivery_id: str, index: int, expires_at: float) -> str:
    payload = msgspec.msgpack.encode([delivery_id, index, int(expires_at)])
    mac = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(secret: str, token: str, *, now: float | None = None) -> tuple[str, int]:
    """(delivery id, file index) of a valid, unexpired token; BadLink otherwise."""
    try:
        payload_text, mac_text = token.split(".", 1)
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (ValueError, TypeError):
        raise BadLink("malformed link") from None
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise BadLink("bad signature")
    try:
        delivery_id, index, expires_at = msgspec.msgpack.decode(payload, type=tuple[str, int, int])
    except msgspec.DecodeError:
        raise BadLink("malformed link") from None
    if expires_at < (now if now is not None else time.time()):
        raise BadLink("expired")
    return delivery_id, index
