"""A stored connection a process cannot build (docs/connections.md: a newer relay's setting
during a rolling upgrade, a value this version refuses) is no unknown connection: intake answers
503 PLATFORM.UNAVAILABLE with Retry-After rather than 404, and a worker leaves its deliveries
queued (no attempt spent, the reason in last_error) until the connection loads again, then
delivers them; before, they were dead-lettered as "no longer configured"."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from app.connections.service import NewConnection
from app.runtime import Runtime
from tests.support.builders import application
from tests.support.emulators import Emulator


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.1)


async def test_deliveries_wait_for_a_stored_connection_this_process_cannot_build(
    make_relay: Any, factorial: Emulator
) -> None:
    relay = make_relay({})
    maker = Runtime(relay.settings)  # another process: it writes the records the others load
    try:
        new = NewConnection(
            id="acme-rt", connector="factorial", base_url=factorial.url, credentials={"api_key": "sandbox"}
        )
        await maker.connections.create(new, "admin")
        accepted: list[str] = []

        async def taken() -> bool:
            response = await relay.post(application(connection_id="acme-rt", attachments=[]))
            if response.status_code == 202:
                accepted.append(response.json()["id"])
            return bool(accepted)

        await eventually(taken)  # the web's registry has polled the new connection
        [delivery_id] = accepted

        record = await maker.connection_store.get("acme-rt")
        assert record is not None
        good_settings = dict(record.settings)
        record.settings["a_setting_of_a_newer_relay"] = 1  # what this version refuses to build
        await maker.connection_store.update(record)

        async def refused_for_now() -> bool:
            response = await relay.post(application(connection_id="acme-rt", attachments=[]))
            assert response.status_code in (202, 503), response.text
            return response.status_code == 503 and response.headers["retry-after"] == "60"

        await eventually(refused_for_now)
        response = await relay.post(application(connection_id="acme-rt", attachments=[]))
        assert response.json()["code"] == "PLATFORM.UNAVAILABLE"
        assert "a_setting_of_a_newer_relay" not in response.text  # a board is told nothing of the settings
        jobs = await relay.client.get("/v1/connections/acme-rt/jobs", headers=relay.admin)
        assert jobs.status_code == 503 and jobs.json()["code"] == "PLATFORM.UNAVAILABLE"  # the catalog's reads too

        await relay.start_worker()

        async def waiting() -> bool:
            delivery = await relay.delivery(delivery_id)
            return (delivery.get("last_error") or {}).get("code") == "PLATFORM.UNAVAILABLE"

        await eventually(waiting)
        delivery = await relay.delivery(delivery_id)
        assert delivery["status"] == "queued" and delivery["failed_attempts"] == 0
        assert "a_setting_of_a_newer_relay" in delivery["last_error"]["message"]  # the operator sees why
        assert factorial.records()["candidates"] == []

        record.settings = good_settings  # mended (or an upgraded worker took over)
        await maker.connection_store.update(record)
        await asyncio.sleep(1.5)  # the worker's registry polls each second
        await relay.run_due_jobs()
        delivered = await relay.wait_for(delivery_id, "delivered", timeout=30)
        assert delivered["failed_attempts"] == 0
        assert len(factorial.records()["candidates"]) == 1
    finally:
        await maker.close()
