"""Redis stopped and restarted (AOF) during intake and delivery: every 202 is delivered; while
Redis is down intake answers 503 with Retry-After — never a 500, never a hang."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.redis.embedded import EmbeddedRedis
from tests.chaos.common import Tally, application, count_arrivals, status_counts, stuck_report, wait_delivered
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay

pytestmark = pytest.mark.slow

APPLICATIONS = 300
OUTAGE_S = 3.0


async def test_redis_restart_during_intake_and_delivery(tmp_path: Path, factorial: Emulator) -> None:
    redis_server = EmbeddedRedis(tmp_path / "outage-redis")
    redis_server.start()
    try:
        relay = Relay(
            redis_server.url,
            {"acme": connection_table("factorial", factorial.url)},
            job_timeout_s=2.0,
            tmp_path=tmp_path,
        )
    except BaseException:
        redis_server.stop()
        raise
    workers = [relay.spawn_worker(), relay.spawn_worker()]
    tally = Tally()
    accepted: dict[int, str] = {}
    a_third_accepted = asyncio.Event()
    try:

        async def send(i: int) -> None:
            tally.sent += 1
            started = time.monotonic()
            try:
                response = await asyncio.wait_for(relay.post(application(i, run="outage"), key=f"outage-{i}"), 15)
            except TimeoutError:
                raise AssertionError("intake hung while Redis was away") from None
            assert time.monotonic() - started < 10, "intake took longer than 10 s to answer"
            if response.status_code == 202:
                tally.accepted += 1
                accepted[i] = response.json()["id"]
                if tally.accepted >= APPLICATIONS // 3:
                    a_third_accepted.set()
                return
            tally.refused[response.status_code] += 1
            assert response.status_code == 503, (response.status_code, response.text)
            assert response.headers.get("retry-after"), "a 503 must say when to come back"
            assert response.headers["content-type"].startswith("application/problem+json")

        async def intake() -> None:
            for i in range(APPLICATIONS):
                await send(i)
                await asyncio.sleep(0.01)

        async def outage_in_the_middle() -> None:
            await a_third_accepted.wait()
            redis_server.stop()  # SIGTERM: Redis writes its AOF out and exits
            await asyncio.sleep(OUTAGE_S)
            await asyncio.to_thread(redis_server.start)  # same port, same password, AOF replayed

        await asyncio.gather(intake(), outage_in_the_middle())
        assert tally.refused[503] > 0, "the outage was not observed by intake"
        # Clients come back after Retry-After: the refused ones are sent again.
        for i in [i for i in range(APPLICATIONS) if i not in accepted]:
            await send(i)
        delivered = await wait_delivered(relay, len(accepted), timeout_s=90)
        count_arrivals(factorial.records(), [f"outage-{i}@example.org" for i in accepted], tally)
        alive = sum(1 for w in workers if w.poll() is None)
        tally.report(
            f"redis restart ({OUTAGE_S:g} s outage; relay says delivered={delivered}; "
            f"workers alive={alive}/2; statuses={await status_counts(relay)})"
        )
        for line in await stuck_report(relay):
            print(f"[chaos]   unfinished: {line}", flush=True)
        assert 500 not in tally.refused
        assert len(accepted) == APPLICATIONS
        assert (tally.delivered, tally.lost, tally.duplicated) == (APPLICATIONS, 0, 0)
        assert alive == 2, "a worker died with the Redis outage"
    finally:
        await relay.close()
        redis_server.stop()
