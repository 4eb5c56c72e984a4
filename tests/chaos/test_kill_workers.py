"""1,000 applications while workers are killed with SIGKILL ten times: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import random
import subprocess
import time
from typing import Any

import pytest

from tests.chaos.common import Tally, application, count_arrivals, post_all, status_counts, wait_delivered
from tests.support.builders import connection_table
from tests.support.emulators import Emulator

pytestmark = pytest.mark.slow

APPLICATIONS = 1000
KILLS = 10


async def test_thousand_applications_through_ten_kill9(make_relay: Any, factorial: Emulator) -> None:
    # A short job timeout: a killed worker's job is re-run after arq's lease (timeout + 10 s).
    relay = make_relay({"acme": connection_table("factorial", factorial.url)}, job_timeout_s=5.0)
    workers: list[subprocess.Popen[bytes]] = [relay.spawn_worker(), relay.spawn_worker()]
    rng = random.Random(8)
    tally = Tally()
    bodies = [(f"kill9-{i}", application(i, run="kill9")) for i in range(APPLICATIONS)]

    async def killer() -> None:
        """Kill a random worker every so often while deliveries run; restart it at once."""
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(0.4, 1.2))
            index = rng.randrange(len(workers))
            relay.kill(workers[index])
            workers[index] = relay.spawn_worker()

    started = time.monotonic()
    kills = asyncio.create_task(killer())
    accepted = await post_all(relay, bodies, tally, concurrency=8)
    await kills
    delivered = await wait_delivered(relay, len(accepted), timeout_s=120)
    elapsed = time.monotonic() - started

    count_arrivals(factorial.records(), (b["candidate"]["email_address"] for _, b in bodies), tally)
    tally.report(
        f"kill -9 x{KILLS} ({elapsed:.0f} s, relay says delivered={delivered}, statuses={await status_counts(relay)})"
    )
    assert tally.accepted == APPLICATIONS
    assert delivered == APPLICATIONS
    assert (tally.lost, tally.duplicated) == (0, 0)
    assert tally.delivered == APPLICATIONS
