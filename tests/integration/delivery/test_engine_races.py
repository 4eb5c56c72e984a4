"""Jobs that must not run a delivery: superseded ones, and ones that find the lease taken."""

from __future__ import annotations

from typing import Any

import pytest
from arq import Retry

from app.delivery.engine import DeliveryEngine
from app.delivery.record import Status
from app.delivery.transitions import Move
from app.worker import build_engine, deliver
from tests.support.builders import application, connection_table
from tests.support.emulators import Emulator


async def test_superseded_and_busy_jobs(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    delivery_id = (await relay.post(application(attachments=[]))).json()["id"]
    runtime = relay.web_runtime.__class__(relay.settings)
    try:
        await _superseded_and_busy(build_engine(runtime), delivery_id, factorial)
    finally:
        await runtime.close()  # its Redis and HTTP clients, not left to the garbage collector


async def _superseded_and_busy(engine: DeliveryEngine, delivery_id: str, factorial: Emulator) -> None:
    state = await engine.deps.store.get(delivery_id)
    assert state is not None and state.job == f"{delivery_id}:0"

    assert await engine.run(delivery_id, job_id=f"{delivery_id}:old") == "stale"
    token = await engine.deps.store.acquire_lease(delivery_id, 30)
    assert token is not None
    with pytest.raises(Retry):  # the current job comes back later instead of being lost
        await deliver({"engine": engine, "job_id": state.job, "job_try": 1}, delivery_id)
    await engine.deps.store.release_lease(delivery_id, token)
    assert await engine.run(delivery_id, job_id=state.job) == "delivered"
    assert await engine.run(delivery_id, job_id=state.job) == "stale"  # finished: no pending job
    assert len(factorial.records()["candidates"]) == 1


async def test_only_consecutive_crashes_dead_letter(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    delivery_id = (await relay.post(application(attachments=[]))).json()["id"]
    runtime = relay.web_runtime.__class__(relay.settings)
    try:
        await _consecutive_crashes(relay, build_engine(runtime), delivery_id)
    finally:
        await runtime.close()


async def _consecutive_crashes(relay: Any, engine: DeliveryEngine, delivery_id: str) -> None:
    from app.delivery.record import Attempt

    store = engine.deps.store
    state = await store.get(delivery_id)
    assert state is not None
    state.status = "delivering"  # a run died once; arq's job_try is high from lease/Redis re-queues
    await store.save(state, Move(Status.QUEUED, Status.DELIVERING))
    assert await engine.run(delivery_id, job_id=state.job, job_try=9) == "delivered"

    second = (
        await relay.post(
            application(
                attachments=[], candidate={"first_name": "Ben", "last_name": "Ode", "email_address": "ben@example.org"}
            )
        )
    ).json()["id"]
    state = await store.get(second)
    assert state is not None
    state.attempts = [Attempt(number=i, started_at=0, finished_at=0, outcome="crash") for i in range(4)]
    state.status = "delivering"
    await store.save(state, Move(Status.QUEUED, Status.DELIVERING))
    assert await engine.run(second, job_id=state.job, job_try=1) == "failed"
    failed = await store.get(second)
    assert failed is not None and failed.last_error is not None and failed.last_error.kind == "crash"
