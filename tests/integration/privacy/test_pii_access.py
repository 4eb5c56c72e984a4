"""Access to candidate data: GET /v1/deliveries/{id} shows the candidate only to a token with the
`pii` scope and only when asked (`include=candidate`), and each view is audited."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.privacy import audit
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.privacy import DPO, READER, Person, bearer


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay({"acme": connection_table("factorial", factorial.url)}, extra_tokens=[READER, DPO])


async def test_candidate_data_only_with_the_pii_scope_and_each_view_is_audited(relay: Relay) -> None:
    ana = Person()
    delivery_id = (await relay.post(ana.application())).json()["id"]
    url = f"/v1/deliveries/{delivery_id}"
    plain = await relay.client.get(url, headers=bearer(READER))
    assert plain.status_code == 200 and "candidate" not in plain.json() and ana.email not in plain.text
    refused = await relay.client.get(url, params={"include": "candidate"}, headers=bearer(READER))
    assert refused.status_code == 403 and "pii" in refused.json()["detail"]
    assert await audit.read(relay.redis) == []  # nothing shown, nothing recorded

    shown = await relay.client.get(url, params={"include": "candidate"}, headers=bearer(DPO))
    assert shown.status_code == 200
    assert shown.json()["candidate"] == {"first_name": ana.first, "last_name": ana.last, "email_address": ana.email}
    [entry] = await audit.read(relay.redis)
    assert (entry.actor, entry.action, entry.target) == ("dpo", "view_detail", delivery_id)
    assert entry.at == pytest.approx(time.time(), abs=10)
    bad = await relay.client.get(url, params={"include": "everything"}, headers=bearer(DPO))
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "include"
