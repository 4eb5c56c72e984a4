"""app/privacy/crypto.py: sealing in pieces gives the layout `seal` gives (what the blob store keeps)."""

from __future__ import annotations

import os

import pytest

from app.privacy import crypto
from app.privacy.crypto import AesGcmSealer, SealError, parse_keys


@pytest.mark.parametrize("size", [0, 1, 1 << 20, (3 << 20) + 17])
def test_sealing_in_pieces_is_the_same_layout(size: int) -> None:
    sealer = AesGcmSealer(parse_keys(crypto.new_key()))
    data = os.urandom(size)
    sealed = b"".join(sealer.seal_chunks(data, chunk=1 << 20))
    assert len(sealed) == len(sealer.seal(data)) and sealed[:1] == b"\x01" and sealer.is_current(sealed)
    assert sealer.open(sealed) == data
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(SealError):
        sealer.open(bytes(tampered))
