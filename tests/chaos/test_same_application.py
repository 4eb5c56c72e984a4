"""The same application sent five times at once: one delivery, one candidate in the ATS."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.chaos.common import Tally, application, count_arrivals, wait_delivered
from tests.support.builders import connection_table
from tests.support.emulators import Emulator


async def test_same_application_five_times_concurrently(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    await relay.start_worker()
    await relay.start_worker()
    tally = Tally()
    # Same Idempotency-Key (explicit), and no key at all (the derived connection+job+email key).
    cases = [
        ("with-key", {"key": "same-app-1"}, application(1, run="same")),
        ("derived-key", {}, application(2, run="same")),
    ]
    ids: dict[str, set[str]] = {}
    for name, kwargs, body in cases:
        responses = await asyncio.gather(*(relay.post(body, **kwargs) for _ in range(5)))
        tally.sent += len(responses)
        assert {r.status_code for r in responses} == {202}, [r.text for r in responses]
        tally.accepted += len(responses)
        ids[name] = {r.json()["id"] for r in responses}
        assert sorted(r.json()["duplicate"] for r in responses) == [False, True, True, True, True]
    assert all(len(v) == 1 for v in ids.values()), ids

    assert await wait_delivered(relay, 2, timeout_s=20) == 2
    await asyncio.sleep(0.5)  # would-be duplicate runs had their chance
    count_arrivals(factorial.records(), [b["candidate"]["email_address"] for _, _, b in cases], tally)
    tally.report("same application x5 concurrently")
    assert (tally.delivered, tally.lost, tally.duplicated) == (2, 0, 0)
    assert len(factorial.records()["candidates"]) == 2
