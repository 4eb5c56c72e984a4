"""Payloads are deflated before sealing when that makes them smaller (bench P5, issue 20), and a
payload stored before that is read as it is."""

from __future__ import annotations

import msgspec

from app.core.model import Candidate, JobRef, Origin, StoredApplication, stored_decoder, stored_encoder
from app.delivery.store import PACKED, pack_payload, unpack_payload


def _payload(note: str) -> bytes:
    return stored_encoder.encode(
        StoredApplication(
            connection_id="acme",
            candidate=Candidate(first_name="Zoë", last_name="Núñez", email_address="zoe@example.org"),
            application=JobRef(job_id="2001"),
            origin=Origin(channel="api", received_at=1.0),
            remote_fields={"factorial": {"note": note}},
        )
    )


def test_a_payload_is_stored_deflated_and_read_back_whole() -> None:
    raw = _payload("Applied through the careers page; " * 28)
    packed = pack_payload(raw)
    assert packed[:1] == PACKED and len(packed) < len(raw) // 2
    assert unpack_payload(packed) == raw
    assert stored_decoder.decode(unpack_payload(packed)).candidate.first_name == "Zoë"


def test_a_payload_stored_before_packing_is_read_as_it_is() -> None:
    raw = _payload("x")
    assert raw[:1] != PACKED  # a msgpack map: what every payload stored before starts with
    assert unpack_payload(raw) == raw


def test_a_payload_deflate_cannot_shrink_stays_as_it_is() -> None:
    raw = msgspec.msgpack.encode({"k": bytes(range(256)).hex()[:40]})
    assert pack_payload(raw) == raw
