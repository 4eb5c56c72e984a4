"""No delivery without a way forward (issue 22, point 1): every way we know to leave a waiting
delivery with neither a pending arq job nor a live lease, and the reaper repairing each one.

The invariant is checked by `Reaper.sweep` (the cron job's body); a worker's start runs it too."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import msgspec
import pytest
from arq.jobs import serialize_result
from arq.worker import JobExecutionFailed

from app.delivery import queue, reaper
from app.delivery.engine import DeliveryEngine
from app.delivery.reaper import REAPED_METRIC, Reaper
from app.delivery.record import delivery_decoder
from app.redis.keys import lease_key, state_key
from app.worker import cron_jobs
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay


def body(i: int) -> dict[str, Any]:
    return {
        "connection_id": "acme",
        "application": {"job_id": "2001"},
        "candidate": {"first_name": "Rui", "last_name": f"Stuck {i}", "email_address": f"rui-{i}@example.org"},
    }


async def pending_job(relay: Relay, delivery_id: str) -> tuple[str | None, bool]:
    """(the delivery's job id, whether arq holds it: record stored and scored in the queue)."""
    raw = await relay.redis.get(state_key(delivery_id))
    assert raw is not None
    job = delivery_decoder.decode(raw).job
    if job is None:
        return None, False
    stored = bool(await relay.redis.exists(queue.job_key(job)))
    return job, stored and await relay.redis.zscore(queue.QUEUE_NAME, job) is not None


async def reaped_metric(relay: Relay) -> dict[str, float]:
    text = (await relay.client.get("/metrics", headers=relay.admin)).text
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^applyrelay_deliveries_reaped_total\{reason="(\w+)"\} (\S+)$', text, re.M)
    }


async def test_arq_timeout_during_cpu_bound_work_drops_the_job_and_the_reaper_repairs_it(
    make_relay: Any, factorial: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that blocks the event loop past both deadlines (the worker's own and arq's backstop,
    as the quadratic warnings did for a minute) is cancelled by arq, which finishes the job as
    failed and deletes it: the delivery stays `delivering` with no job. The reaper re-enqueues it.

    Once the loop is free again both deadlines have passed and which one acts first is a matter
    of callback order; the backstop is set below the worker's deadline so that arq's always does."""
    from app import worker as worker_module

    monkeypatch.setattr(worker_module, "ARQ_BACKSTOP_S", -0.5)
    # this worker runs no reaper of its own (its cron would repair at second 30, whenever that falls)
    monkeypatch.setattr(worker_module, "CRON_JOBS", [c for c in worker_module.CRON_JOBS if c is not reaper.cron_job])
    original, calls = DeliveryEngine._run_steps, 0

    async def cpu_bound_once(self: DeliveryEngine, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            time.sleep(1.5)  # noqa: ASYNC251 - CPU-bound work: no await, no cancellation point
            await asyncio.sleep(0)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(DeliveryEngine, "_run_steps", cpu_bound_once)
    relay: Relay = make_relay({"acme": connection_table("factorial", factorial.url)}, job_timeout_s=1.0)
    await relay.start_worker()
    delivery_id = (await relay.post(body(1))).json()["id"]
    deadline = time.monotonic() + 15
    while True:  # arq gave the job up: no job, no lease, still delivering
        record = await relay.delivery(delivery_id)
        job, held = await pending_job(relay, delivery_id)
        if record["status"] == "delivering" and not held and not await relay.redis.exists(lease_key(delivery_id)):
            break
        assert record["status"] != "delivered", "arq kept the job: the case this test needs did not happen"
        assert time.monotonic() < deadline, (record["status"], job, held)
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)
    assert (await relay.delivery(delivery_id))["status"] == "delivering"  # stuck for good without the reaper

    swept = await Reaper(relay.redis).sweep()
    assert swept.repaired == [(delivery_id, "job_missing")]
    record = await relay.wait_for(delivery_id, "delivered", timeout=20)
    assert any(a["outcome"] == "crash" for a in record["attempts"])  # the lost run, counted as a crash
    assert len(factorial.records()["candidates"]) == 1 and len(factorial.records()["applications"]) == 1
    assert (await reaped_metric(relay))["job_missing"] == 1.0


async def test_a_dropped_job_is_repaired_when_a_worker_starts(make_relay: Any, factorial: Emulator) -> None:
    """The job record gone (evicted, expired, deleted by arq) and, separately, the job left out
    of arq's queue: a worker's start runs the reaper, which re-enqueues both."""
    relay: Relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    gone = (await relay.post(body(2))).json()["id"]
    unqueued = (await relay.post(body(3))).json()["id"]
    job, _ = await pending_job(relay, gone)
    assert job is not None
    await relay.redis.delete(queue.job_key(job))
    job, _ = await pending_job(relay, unqueued)
    assert job is not None
    await relay.redis.zrem(queue.QUEUE_NAME, job)

    await relay.start_worker()  # `reap` runs at start-up (and every minute)
    for delivery_id in (gone, unqueued):
        await relay.wait_for(delivery_id, "delivered", timeout=20)
    assert len(factorial.records()["applications"]) == 2
    assert await reaped_metric(relay) == {"no_job": 0.0, "job_missing": 1.0, "job_unqueued": 1.0}
    assert "reap" in [c.name for c in cron_jobs(relay.settings)]


@pytest.mark.slow
async def test_a_lease_expiring_with_the_job_gone_is_repaired_once_it_expires(
    make_relay: Any, factorial: Emulator
) -> None:
    """kill -9 of the worker mid-run, and the job lost too: the lease still says a run is going
    on, so the reaper waits; once it lapses the delivery is re-enqueued and resumes."""
    relay: Relay = make_relay({"acme": connection_table("factorial", factorial.url)}, job_timeout_s=1.0)
    factorial.faults(latency_ms=2500, path_regex="/ats/applications$", methods=["POST"])
    worker = relay.spawn_worker()
    delivery_id = (await relay.post(body(4))).json()["id"]
    await relay.wait_for(delivery_id, "delivering", until=lambda r: "candidate" in r["checkpoints"], timeout=20)
    relay.kill(worker)
    factorial.faults()
    job, _ = await pending_job(relay, delivery_id)
    assert job is not None
    await relay.redis.delete(queue.job_key(job))
    await relay.redis.zrem(queue.QUEUE_NAME, job)
    assert await relay.redis.exists(lease_key(delivery_id))

    reaper = Reaper(relay.redis)
    assert (await reaper.sweep()).repaired == []  # a live lease: a run may still be going on
    deadline = time.monotonic() + 15
    while await relay.redis.exists(lease_key(delivery_id)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    assert (await reaper.sweep()).repaired == [(delivery_id, "job_missing")]
    await relay.start_worker()
    record = await relay.wait_for(delivery_id, "delivered", timeout=20)
    assert any(a["outcome"] == "crash" for a in record["attempts"])
    assert len(factorial.records()["candidates"]) == 1 and len(factorial.records()["applications"]) == 1


async def test_sweeps_repair_each_violation_once_and_leave_healthy_deliveries_alone(
    make_relay: Any, factorial: Emulator
) -> None:
    """Any number of workers may sweep at once: each repair is a compare-and-set, so one wins.
    A queued delivery with its job, a retry scheduled for later and a finished one are not touched."""
    relay: Relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    healthy = [(await relay.post(body(10 + i))).json()["id"] for i in range(3)]
    broken = [(await relay.post(body(20 + i))).json()["id"] for i in range(5)]
    for delivery_id in broken:
        job, _ = await pending_job(relay, delivery_id)
        assert job is not None
        await relay.redis.delete(queue.job_key(job))
    # one waits for a retry an hour from now: its job is scored then, and it is healthy
    raw = await relay.redis.get(state_key(healthy[0]))
    assert raw is not None
    delivery = delivery_decoder.decode(raw)
    delivery.status, delivery.next_attempt_at = "retry_scheduled", time.time() + 3600  # type: ignore[assignment]
    await relay.redis.set(state_key(healthy[0]), msgspec.msgpack.encode(delivery))
    await relay.redis.zadd(queue.QUEUE_NAME, {delivery.job: (time.time() + 3600) * 1000})

    reapers = [Reaper(relay.redis) for _ in range(4)]
    results = await asyncio.gather(*(r.sweep() for r in reapers))
    repaired = [item for result in results for item in result.repaired]
    assert sorted(d for d, _ in repaired) == sorted(broken)  # each exactly once, whoever did it
    assert int((await relay.redis.hgetall(REAPED_METRIC))[b"job_missing"]) == len(broken)
    for delivery_id in broken + healthy:
        assert (await pending_job(relay, delivery_id))[1], delivery_id
    assert (await Reaper(relay.redis).sweep()).repaired == []  # nothing left to repair


async def test_a_waiting_delivery_that_names_no_job_is_given_one(make_relay: Any, factorial: Emulator) -> None:
    relay: Relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    delivery_id = (await relay.post(body(30))).json()["id"]
    raw = await relay.redis.get(state_key(delivery_id))
    assert raw is not None
    delivery = delivery_decoder.decode(raw)
    job, delivery.job = delivery.job, None
    await relay.redis.set(state_key(delivery_id), msgspec.msgpack.encode(delivery))
    assert job is not None
    await relay.redis.delete(queue.job_key(job))
    assert (await Reaper(relay.redis).sweep()).repaired == [(delivery_id, "no_job")]
    await relay.start_worker()
    await relay.wait_for(delivery_id, "delivered", timeout=20)


def test_arq_can_record_the_exception_it_gives_a_job_up_with() -> None:
    """arq serializes a given-up job's result, an exception (`JobExecutionFailed('job expired')`
    when a job's record is gone): msgpack could not encode it (`TypeError: Encoding objects of
    type JobExecutionFailed is unsupported`, in the report's log)."""
    data = serialize_result(
        "deliver",
        ("dlv_x",),
        {},
        2,
        0,
        False,
        JobExecutionFailed("job expired"),
        0,
        1,
        "dlv_x:1:deliver",
        queue.QUEUE_NAME,
        job_id="dlv_x:1",
        serializer=queue.job_serializer,
    )
    assert data is not None
    assert queue.job_deserializer(data)["r"] == "JobExecutionFailed: job expired"
