"""A stored application outside the model's limits (kept by an older release, or text that NFC
lengthened before intake checked it: a probe stored first names of 400 characters that way) is
still shown and exported by the reads that only show it (app/core/model.py `stored_as_data`):
the operator's candidate view, the subject's export. Both answered 500."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from app.core.model import stored_decoder, stored_encoder
from app.delivery.store import pack_payload
from app.redis.keys import payload_key
from tests.support.builders import application, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.privacy import DPO, bearer


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay({"acme": connection_table("factorial", factorial.url)}, extra_tokens=[DPO])


async def test_a_record_over_the_models_limits_is_still_shown_and_exported(relay: Relay) -> None:
    response = await relay.post(application(connection_id="acme", attachments=[]))
    assert response.status_code == 202, response.text
    delivery_id = response.json()["id"]
    raw = await relay.store.load_payload(delivery_id)
    assert raw is not None
    stored = stored_decoder.decode(raw)
    long_name = "\u0915\u093c" * 200  # 400 characters: over the model's 200
    odd = msgspec.structs.replace(stored, candidate=msgspec.structs.replace(stored.candidate, first_name=long_name))
    await relay.redis.set(payload_key(delivery_id), relay.store.sealer.seal(pack_payload(stored_encoder.encode(odd))))
    with pytest.raises(msgspec.ValidationError):
        stored_decoder.decode(await relay.store.load_payload(delivery_id) or b"")  # the record is odd indeed

    shown = await relay.client.get(f"/v1/deliveries/{delivery_id}?include=candidate", headers=relay.admin)
    assert shown.status_code == 200, shown.text
    assert shown.json()["candidate"]["first_name"] == long_name
    email = stored.candidate.email_address
    export = await relay.client.post("/v1/subject-access", json={"email": email}, headers=bearer(DPO))
    assert export.status_code == 200, export.text
    [record] = export.json()["deliveries"]
    assert record["application"]["candidate"]["first_name"] == long_name
