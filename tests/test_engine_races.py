"""Jobs that must not run a delivery: superseded ones, and ones that find the lease taken."""

from __future__ import annotations

from typing import Any

import pytest
from arq import Retry

from app.worker import build_engine, deliver
from tests.harness import Emulator, connection_table
from tests.test_factorial_e2e import application


async def test_superseded_and_busy_jobs(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    delivery_id = (await relay.post(application(attachments=[]))).json()["id"]
    engine = build_engine(relay.web_runtime.__class__(relay.settings))
    state = await engine.deps.store.get(delivery_id)
    assert state is not None and state.job == f"{delivery_id}:0"

    assert await engine.run(delivery_id, job_id=f"{delivery_id}:old") == "stale"
    token = await engine.deps.store.acquire(delivery_id, 30)
    assert token is not None
    with pytest.raises(Retry):  # the current job comes back later instead of being lost
        await deliver({"engine": engine, "job_id": state.job, "job_try": 1}, delivery_id)
    await engine.deps.store.release(delivery_id, token)
    assert await engine.run(delivery_id, job_id=state.job) == "delivered"
    assert await engine.run(delivery_id, job_id=state.job) == "stale"  # finished: no pending job
    assert len(factorial.records()["candidates"]) == 1
