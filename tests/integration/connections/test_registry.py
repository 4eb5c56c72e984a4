"""The foundation of connections made at runtime: made through the service against a live
emulator, stored sealed, seen by the web's and a worker's registry after a poll, delivered to."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from app.connections.service import NewConnection
from app.core.problems import Problem
from app.runtime import Runtime
from tests.support.builders import application
from tests.support.emulators import Emulator


async def test_a_connection_made_at_runtime_is_seen_by_web_and_worker_and_delivered_to(
    make_relay: Any, factorial: Emulator
) -> None:
    relay = make_relay({})
    await relay.start_worker()
    maker = Runtime(relay.settings)  # another process's runtime: what it stores, the others load
    try:
        new = NewConnection(
            id="acme-rt", connector="factorial", base_url=factorial.url, credentials={"api_key": "sandbox"}
        )
        created = await maker.connections.create(new, "admin")
        assert created.origin == "api" and created.credentials == "sandbox"
    finally:
        await maker.close()
    deadline = time.monotonic() + 5
    while True:  # the web's registry polls the version each second
        response = await relay.post(application(connection_id="acme-rt", attachments=[]))
        if response.status_code == 202 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert response.status_code == 202, response.text
    record = await relay.wait_for(response.json()["id"], "delivered")
    assert record["connection_id"] == "acme-rt"
    assert len(factorial.records()["candidates"]) == 1
    raw = b"".join([await relay.redis.dump(k) or b"" for k in await relay.redis.keys("ar:conn:*")])
    assert b"sandbox" not in raw  # the key is sealed


async def test_a_wrong_key_is_refused_at_creation_and_nothing_is_stored(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({})
    maker = Runtime(relay.settings)
    try:
        new = NewConnection(id="typo", connector="factorial", base_url=factorial.url, credentials={"api_key": "wrong"})
        with pytest.raises(Problem) as refused:
            await maker.connections.create(new, "admin")
    finally:
        await maker.close()
    assert refused.value.status == 422 and refused.value.code == "INTEGRATION.AUTHENTICATION_INVALID"
    assert await relay.redis.exists("ar:conn:r:typo") == 0
