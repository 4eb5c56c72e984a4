"""The connect page's CSRF token (docs/connections.md, "Connect links and the connect page"): an
HMAC, under a key derived from the data key, of the link's token hash and a nonce the browser holds
in a SameSite=Strict cookie scoped to the link's path. A form posted from another site lacks the
cookie; one copied from another link or browser does not match. Checked in constant time, against
every data key, so a key rotation does not void the pages open at that moment."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

_PURPOSE = b"applyrelay connect-page csrf v1"
_FALLBACK = secrets.token_bytes(32)  # no data key (development): valid for this process only


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def _key(data_key: bytes) -> bytes:
    return hmac.new(data_key, _PURPOSE, hashlib.sha256).digest()


def sign(data_keys: Sequence[bytes], link_hash: str, nonce: str) -> str:
    key = _key(data_keys[0]) if data_keys else _FALLBACK
    return hmac.new(key, f"{link_hash}:{nonce}".encode(), hashlib.sha256).hexdigest()


def check(data_keys: Sequence[bytes], link_hash: str, nonce: str, presented: str) -> bool:
    if not nonce or not presented or len(presented) > 128 or len(nonce) > 128:
        return False
    keys = [_key(k) for k in data_keys] or [_FALLBACK]
    message = f"{link_hash}:{nonce}".encode()
    ok = False
    for key in keys:  # every key compared, whichever matches
        expected = hmac.new(key, message, hashlib.sha256).hexdigest()
        ok |= hmac.compare_digest(expected.encode(), presented.encode("utf-8", "replace"))
    return ok
