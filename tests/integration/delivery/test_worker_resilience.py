"""The worker under trouble the chaos suite found: Redis restarting, runs overrunning the job
timeout, and wake-ups that must be immediate."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import pytest
import redis as sync_redis

from app.redis.embedded import EmbeddedRedis
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay


def body(i: int) -> dict[str, Any]:
    return {
        "connection_id": "acme",
        "application": {"job_id": "2001"},
        "candidate": {"first_name": "Rae", "last_name": f"Silent {i}", "email_address": f"rae-{i}@example.org"},
    }


async def test_worker_outlives_a_redis_restart(tmp_path: Path, factorial: Emulator) -> None:
    server = EmbeddedRedis(tmp_path / "redis")
    server.start()
    relay: Relay | None = None
    try:
        relay = Relay(server.url, {"acme": connection_table("factorial", factorial.url)}, tmp_path=tmp_path)
        await relay.start_worker()
        first = (await relay.post(body(1))).json()["id"]
        await relay.wait_for(first, "delivered")
        await asyncio.to_thread(server.restart)  # arq's poll loop raised here and the worker ended
        await asyncio.sleep(1.0)  # the worker meets the dead connections
        _, task, _ = relay._workers[0]
        assert not task.done(), task.exception() if task.done() else None
        second = (await relay.post(body(2))).json()["id"]
        await relay.wait_for(second, "delivered", timeout=20)
    finally:
        if relay is not None:
            await relay.close()
        server.stop()


async def test_a_run_that_overruns_the_job_timeout_is_run_again_not_dropped(
    make_relay: Any, factorial: Emulator, redis_url: str
) -> None:
    relay: Relay = make_relay({"acme": connection_table("factorial", factorial.url)}, job_timeout_s=1.0)
    # The application create takes 300 ms; meanwhile Redis refuses writes for 2.5 s, so the run
    # cannot record its step before arq's timeout. arq used to cancel and drop the job, leaving the
    # delivery `delivering` for ever.
    factorial.faults(latency_ms=300, path_regex="/ats/applications$", methods=["POST"])
    await relay.start_worker()
    delivery_id = (await relay.post(body(3))).json()["id"]
    await relay.wait_for(delivery_id, "delivering", until=lambda r: "candidate" in r["checkpoints"], timeout=10)
    admin = sync_redis.Redis.from_url(redis_url)
    admin.execute_command("CLIENT", "PAUSE", "2500", "WRITE")
    admin.close()
    factorial_done = await relay.wait_for(delivery_id, "delivered", timeout=30)
    assert any(a["outcome"] == "crash" for a in factorial_done["attempts"])  # the overrun, recorded on re-run
    assert len(factorial.records()["applications"]) == 1


async def test_an_accepted_application_is_picked_up_at_once(make_relay: Any, factorial: Emulator) -> None:
    """arq's loop slept out the rest of its 0.5 s poll after the wake-up: pickup took 0-500 ms."""
    relay: Relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    await relay.start_worker()
    await asyncio.sleep(0.3)
    pickups = []
    for i in range(10):
        await asyncio.sleep(0.05 + 0.037 * i)  # land at different points of any poll cycle
        accepted_at = time.time()
        delivery_id = (await relay.post(body(10 + i))).json()["id"]
        record = await relay.wait_for(delivery_id, "delivered")
        pickups.append(record["attempts"][0]["started_at"] - accepted_at)
    assert statistics.median(pickups) < 0.15, pickups


async def test_a_bug_in_a_run_keeps_the_job_instead_of_losing_the_delivery(
    make_relay: Any, factorial: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected exception in the engine failed the arq job, which arq then dropped: the
    delivery stayed queued or delivering for ever (found by the chaos suite, a rename gone wrong)."""
    from app import worker as worker_module
    from app.delivery.engine import DeliveryEngine

    monkeypatch.setattr(worker_module, "CRASH_RETRY_S", 0.2)
    original, calls = DeliveryEngine._finish, 0

    async def broken_once(self: DeliveryEngine, *args: Any, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise AttributeError("a bug")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(DeliveryEngine, "_finish", broken_once)
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    await relay.start_worker()
    delivery_id = (await relay.post(body(7))).json()["id"]
    record = await relay.wait_for(delivery_id, "delivered", timeout=20)
    assert calls == 2 and [a["outcome"] for a in record["attempts"]].count("crash") == 1, record["attempts"]
    assert len(factorial.records()["candidates"]) == 1 and len(factorial.records()["applications"]) == 1
