"""Two changes of one connection at once: a credentials rotation (its check against the ATS
slowed down) and a new inbound secret made while the ATS is asked. Neither is lost."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.connections import create
from tests.support.emulators import Emulator


async def test_a_secret_added_while_new_credentials_are_checked_is_kept(make_relay: Any, flatchr: Emulator) -> None:
    relay = make_relay({})
    body = {
        "id": "race",
        "connector": "flatchr",
        "base_url": flatchr.url,
        "credentials": {"api_key": "sandbox"},
        "settings": {"company_id": "Wy3EOp2NP3p1KMq8", "offerer_id": 75},
    }
    assert (await create(relay, body)).status_code == 201
    flatchr.faults(latency_ms=1500, methods=["GET"])  # the credentials check takes 1.5 s
    rotation = asyncio.create_task(
        relay.client.patch("/v1/connections/race", json={"credentials": {"api_key": "sandbox"}}, headers=relay.admin)
    )
    await asyncio.sleep(0.5)  # the rotation is waiting for the ATS
    added = await relay.client.post("/v1/connections/race/secrets/form", json={}, headers=relay.admin)
    assert added.status_code == 201, added.text
    assert (await rotation).status_code == 200
    flatchr.faults()
    listed = (await relay.client.get("/v1/connections/race/secrets", headers=relay.admin)).json()
    assert len(listed["kinds"]["form"]) == 1, listed  # the secret made during the rotation survived it
