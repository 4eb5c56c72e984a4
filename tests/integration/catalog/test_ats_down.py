"""An ATS that hangs, with nothing cached: the first application waits intake's budget, the
next ones are accepted at once (their check deferred to the worker) instead of each waiting."""

from __future__ import annotations

import time
from typing import Any

from tests.support.builders import application, connection_table
from tests.support.emulators import Emulator


async def test_after_one_read_over_budget_intake_stops_waiting_for_the_ats(
    make_relay: Any, factorial: Emulator
) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    factorial.faults(latency_ms=6000, methods=["GET"])  # every read hangs past the 2 s budget
    took = []
    for n in range(3):
        body = application(candidate={"first_name": "Ana", "last_name": f"T{n}", "email_address": f"a{n}@example.org"})
        started = time.monotonic()
        response = await relay.post(body, key=f"down-{n}")
        took.append(time.monotonic() - started)
        assert response.status_code == 202, response.text
    assert took[0] >= 1.9  # the first one waited its budget
    assert max(took[1:]) < 1.0, took  # the others did not
    assert await relay.redis.exists("ar:cat-down:acme") == 1
