"""Encryption at rest and keyed pseudonyms for candidate data.

Sealed blob layout (everything the store keeps about a candidate: payloads and files):

    b"\\x01" | key id (4 bytes) | nonce (12 random bytes) | AES-256-GCM ciphertext + 16-byte tag

The key id is the first 4 bytes of SHA-256("applyrelay key id" + key): it names the key without
revealing it, so a reader holding several keys (`APPLYRELAY_DATA_KEY=new,old`) opens each blob with
the key that sealed it, and new writes always use the first key. A 96-bit random nonce per blob
keeps the GCM nonce-reuse risk negligible for far more blobs than a relay ever holds under one key.

Keyed pseudonyms (the email index that erasure needs, erasure tombstones) are HMAC-SHA256 under an
*index key*. That key must never change (a changed key orphans every tombstone), so it is not
derived from the data keys, which rotate: it is a random key generated once, stored in Redis
*sealed under the data key* (`ar:keys:index`), and re-sealed by `applyrelay keys rotate` like any
record. Without the data key it is unreadable, like the data it indexes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Iterator, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

from app.core.model import normalise_email
from app.redis.keys import INDEX_KEY

VERSION = b"\x01"
KID_LEN = 4
NONCE_LEN = 12
HEADER_LEN = 1 + KID_LEN + NONCE_LEN
KEY_ENV = "APPLYRELAY_DATA_KEY"


class KeyConfigError(ValueError):
    """A key in APPLYRELAY_DATA_KEY is malformed (the message names which, never its value)."""


class SealError(Exception):
    """A stored blob cannot be opened: unknown key id, not sealed, or tampered with."""


def new_key() -> str:
    """A fresh data key as it goes into APPLYRELAY_DATA_KEY (base64url, 32 random bytes)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def parse_keys(text: str, env_name: str = KEY_ENV) -> list[bytes]:
    """`key1,key2,...` → raw 32-byte keys, first one first (the one new writes use)."""
    keys: list[bytes] = []
    for i, item in enumerate(t.strip() for t in text.split(",")):
        if not item:
            continue
        try:
            raw = base64.urlsafe_b64decode(item + "=" * (-len(item) % 4))
        except (binascii.Error, ValueError):
            raise KeyConfigError(f"{env_name}[{i}]: not base64url (make one with `applyrelay keys new`)") from None
        if len(raw) != 32:
            raise KeyConfigError(
                f"{env_name}[{i}]: must decode to 32 bytes, got {len(raw)} (make one with `applyrelay keys new`)"
            )
        keys.append(raw)
    if len({key_id(k) for k in keys}) != len(keys):
        raise KeyConfigError(f"{env_name}: the same key is listed twice")
    return keys


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"applyrelay key id" + key).digest()[:KID_LEN]


class AesGcmSealer:
    """The store's `Sealer`: AES-256-GCM, first key for writes, the blob's key id for reads."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("AesGcmSealer needs at least one key")
        self._ciphers = {key_id(k): AESGCM(k) for k in keys}
        self._current_key = keys[0]
        self.current = key_id(keys[0])

    @property
    def key_ids(self) -> list[str]:
        return [k.hex() for k in self._ciphers]

    def seal(self, data: bytes) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        return VERSION + self.current + nonce + self._ciphers[self.current].encrypt(nonce, data, None)

    def seal_chunks(self, data: bytes, chunk: int = 1 << 20) -> Iterator[bytes]:
        """`seal(data)` in pieces, byte for byte the same layout (GCM's ciphertext, then its tag):
        a 20 MB file is written to the blob store without a second 20 MB copy (app/blobs)."""
        nonce = os.urandom(NONCE_LEN)
        encryptor = Cipher(algorithms.AES(self._current_key), modes.GCM(nonce)).encryptor()
        yield VERSION + self.current + nonce
        view = memoryview(data)
        for start in range(0, len(view), chunk):
            yield encryptor.update(view[start : start + chunk])
        yield encryptor.finalize() + encryptor.tag

    def seal_stream(self) -> SealStream:
        """`seal` for bytes that arrive in pieces (a form's file part, streamed to the blob store
        as it is parsed: app/delivery/staging.py); the same layout byte for byte."""
        return SealStream(VERSION + self.current, self._current_key)

    def blob_key_id(self, blob: bytes) -> bytes:
        if len(blob) < HEADER_LEN + 16 or blob[:1] != VERSION:
            raise SealError("the stored record is not sealed (written without encryption?)")
        return blob[1 : 1 + KID_LEN]

    def open(self, data: bytes) -> bytes:
        kid = self.blob_key_id(data)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SealError(
                f"sealed with key id {kid.hex()}, which is not in {KEY_ENV} (configured: {', '.join(self.key_ids)})"
            )
        view = memoryview(data)  # no copy of a 20 MB ciphertext for the slice
        try:
            return cipher.decrypt(bytes(view[1 + KID_LEN : HEADER_LEN]), view[HEADER_LEN:], None)
        except InvalidTag:
            raise SealError("the stored record failed authentication (tampered with or corrupted)") from None

    def is_current(self, blob: bytes) -> bool:
        return self.blob_key_id(blob) == self.current


class SealStream:
    """One sealed blob written piece by piece: `header()`, `update(piece)` per piece (as many bytes
    out as in), then `finish()` (GCM's tag)."""

    def __init__(self, prefix: bytes, key: bytes) -> None:
        self._nonce = os.urandom(NONCE_LEN)
        self._prefix = prefix
        self._encryptor = Cipher(algorithms.AES(key), modes.GCM(self._nonce)).encryptor()

    def header(self) -> bytes:
        return self._prefix + self._nonce

    def update(self, piece: bytes | memoryview) -> bytes:
        return self._encryptor.update(piece)

    def finish(self) -> bytes:
        return self._encryptor.finalize() + self._encryptor.tag


class Pseudonyms:
    """Keyed hashes of candidate identifiers (HMAC-SHA256 under the index key, loaded lazily)."""

    def __init__(self, redis: Redis, sealer: AesGcmSealer) -> None:
        self.redis = redis
        self.sealer = sealer
        self._key: bytes | None = None

    async def index_key(self) -> bytes:
        if self._key is None:
            # First start: one process wins the SET NX; every process then uses the stored key.
            await self.redis.set(INDEX_KEY, self.sealer.seal(secrets.token_bytes(32)), nx=True)
            raw = await self.redis.get(INDEX_KEY)
            if raw is None:  # pragma: no cover - deleted between the two calls
                raise SealError("the index key vanished while loading it")
            self._key = self.sealer.open(raw)
        return self._key

    async def email(self, email: str) -> str:
        return email_hash(await self.index_key(), email)


def email_hash(index_key: bytes, email: str) -> str:
    return hmac.new(index_key, b"email\0" + normalise_email(email).encode(), hashlib.sha256).hexdigest()
