"""Bounded retention: confirmed files dropped at once, delivered payloads after 7 days, dead
letters after 30, by the arq cron job, counted for /metrics (controlled clock, no sleeping)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from app.blobs.store import file_blob_name
from app.privacy import retention
from app.privacy.retention import RetentionPolicy, sweep
from app.redis.keys import PURGED_METRIC, file_key
from app.runtime import Runtime
from app.worker import CRON_JOBS, create_worker
from tests.support.builders import DOCX_BYTES, PDF_BYTES, b64, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.privacy import Person, dead_letter

DAY = 86400.0
POLICY = RetentionPolicy()  # the defaults: 7 days delivered, 30 days dead letters


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay({"acme": connection_table("factorial", factorial.url)})


async def held(relay: Relay, delivery_id: str) -> list[bytes]:
    """What is stored of a delivery's candidate data: its Redis keys, and each file in its blob
    (named by the file key it would have had: app/delivery/store.py keeps none)."""
    keys = {k async for k in relay.redis.scan_iter(match=f"ar:[pf]:{delivery_id}*")}
    blobs = set(await relay.blobs_held())
    keys |= {file_key(delivery_id, n).encode() for n in range(8) if file_blob_name(delivery_id, n) in blobs}
    return sorted(keys)


async def updated_at(relay: Relay, delivery_id: str) -> float:
    return float(await relay.redis.zscore(f"ar:ix:st:{(await relay.delivery(delivery_id))['status']}", delivery_id))


async def test_retention_purges_exactly_what_is_due(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    first = (await relay.post(Person().application())).json()["id"]
    await relay.wait_for(first, "delivered")
    second = (await relay.post(Person().application())).json()["id"]
    await relay.wait_for(second, "delivered")
    dead = await dead_letter(relay, factorial, Person())
    await relay.wait_for(dead, "failed")
    factorial.faults(error_rate=1.0, error_status=503)
    retrying = (await relay.post(Person().application())).json()["id"]
    await relay.wait_for(retrying, "retry_scheduled")
    queued_at = time.time()
    t1, t2, t_dead = [await updated_at(relay, i) for i in (first, second, dead)]
    assert t1 < t2 < t_dead
    assert [len(await held(relay, i)) for i in (first, second)] == [1, 1]  # files already gone, payload kept

    store = relay.store
    assert await sweep(store, POLICY, t1 + 7 * DAY - 1) == {"delivered": 0, "dead_letter": 0}
    assert await sweep(store, POLICY, (t1 + t2) / 2 + 7 * DAY) == {"delivered": 1, "dead_letter": 0}
    assert await held(relay, first) == [] and await held(relay, second)
    record = await relay.delivery(first)
    assert record["status"] == "delivered" and record["payload_purged"] and record["checkpoints"]["application"]
    assert await sweep(store, POLICY, t2 + 7 * DAY) == {"delivered": 1, "dead_letter": 0}
    assert await sweep(store, POLICY, t_dead + 30 * DAY - 1) == {"delivered": 0, "dead_letter": 0}
    assert await held(relay, dead)
    assert await sweep(store, POLICY, t_dead + 30 * DAY) == {"delivered": 0, "dead_letter": 1}
    assert await held(relay, dead) == []
    # a delivery still being retried is never touched, however old; a repeat sweep finds nothing new
    assert await sweep(store, POLICY, queued_at + 365 * DAY) == {"delivered": 0, "dead_letter": 0}
    assert len(await held(relay, retrying)) == 2
    assert await relay.redis.hgetall(PURGED_METRIC) == {b"delivered": b"2", b"dead_letter": b"1"}
    metrics = (await relay.client.get("/metrics", headers=relay.admin)).text
    assert 'applyrelay_records_purged_total{reason="delivered"} 2.0' in metrics
    assert 'applyrelay_records_purged_total{reason="dead_letter"} 1.0' in metrics
    assert 'applyrelay_records_purged_total{reason="erasure"} 0.0' in metrics
    # a retried dead letter purged by retention cannot be retried any more: the API says so
    response = await relay.client.post(f"/v1/deliveries/{dead}/retry", headers=relay.admin)
    assert response.status_code == 409


async def test_configured_retention_and_a_late_dead_letter(relay: Relay, factorial: Emulator) -> None:
    """A dead letter retried (so its last change is recent) is kept 30 days from that change."""
    short = RetentionPolicy(keep_delivered_s=60, keep_dead_letters_s=3600)
    await relay.start_worker()
    dead = await dead_letter(relay, factorial, Person())
    await relay.wait_for(dead, "failed")
    t_dead = await updated_at(relay, dead)
    assert await sweep(relay.store, short, t_dead + 3599) == {"delivered": 0, "dead_letter": 0}
    await relay.client.post(f"/v1/deliveries/{dead}/retry", headers=relay.admin)
    await relay.wait_for(dead, "failed", until=lambda r: r["runs"] == 2)
    t_again = await updated_at(relay, dead)
    assert t_again > t_dead
    halfway = (t_dead + t_again) / 2 + 3600  # due if counted from the first failure, not from the last
    assert await sweep(relay.store, short, halfway) == {"delivered": 0, "dead_letter": 0}
    assert await held(relay, dead)
    assert await sweep(relay.store, short, t_again + 3600) == {"delivered": 0, "dead_letter": 1}


async def test_the_cron_job_runs_in_the_worker_with_its_clock(relay: Relay) -> None:
    assert retention.cron_job in CRON_JOBS
    await relay.start_worker()
    delivered = (await relay.post(Person().application())).json()["id"]
    await relay.wait_for(delivered, "delivered")
    assert await held(relay, delivered)
    _, first_worker, _ = relay._workers[-1]  # stopped, so that the next worker is the one to run the job
    first_worker.cancel()
    await asyncio.gather(first_worker, return_exceptions=True)
    # a worker whose clock is 8 days ahead: the job runs at start-up and purges the payload
    runtime = Runtime(relay.settings)
    runtime.clock = lambda: time.time() + 8 * DAY  # type: ignore[attr-defined]
    worker = create_worker(relay.settings, runtime=runtime)
    worker.handle_signals = False
    task = asyncio.create_task(worker.async_run())
    try:
        for _ in range(300):
            if not await held(relay, delivered):
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runtime.close()
    assert await held(relay, delivered) == []
    assert await relay.redis.hget(PURGED_METRIC, "delivered") == b"1"


# -- files are dropped as soon as the ATS confirmed them ------------------------------------------


async def test_each_confirmed_file_is_dropped_before_the_delivery_ends(make_relay: Any, otys: Emulator) -> None:
    otys.http.post("/_sandbox/otys/upload-faults", json={"extensions": [".docx"]}).raise_for_status()
    relay = make_relay({"acme-otys": connection_table("otys", otys.url)})
    docx = DOCX_BYTES
    person = Person()
    body = {
        "connection_id": "acme-otys",
        "candidate": {"first_name": person.first, "last_name": person.last, "email_address": person.email},
        "application": {"job_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90"},
        "attachments": [
            {"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(PDF_BYTES)},
            {"name": "letter.docx", "type": "COVER_LETTER", "data": b64(docx)},
        ],
    }
    delivery_id = (await relay.post(body)).json()["id"]
    await relay.start_worker()
    record = await relay.wait_for(delivery_id, "failed")
    assert [a.get("confirmed", False) for a in record["attachments"]] == [True, False]
    # the CV is in the ATS: its bytes are gone; the refused letter is kept for "retry attachments"
    assert await held(relay, delivery_id) == [f"ar:f:{delivery_id}:1".encode(), f"ar:p:{delivery_id}".encode()]
    otys.http.delete("/_sandbox/otys/upload-faults").raise_for_status()
    assert (
        await relay.client.post(f"/v1/deliveries/{delivery_id}/retry-attachments", headers=relay.admin)
    ).status_code == 202
    await relay.wait_for(delivery_id, "delivered")
    assert await held(relay, delivery_id) == [f"ar:p:{delivery_id}".encode()]


async def test_a_sweep_out_of_time_resumes_where_it_stopped(relay: Relay) -> None:
    await relay.start_worker()
    ids = []
    for _ in range(3):
        ids.append((await relay.post(Person().application(cv=False))).json()["id"])
        await relay.wait_for(ids[-1], "delivered")
    late = max([await updated_at(relay, i) for i in ids]) + 8 * DAY
    assert await sweep(relay.store, POLICY, late, budget_s=0) == {"delivered": 0, "dead_letter": 0}
    assert all([await held(relay, i) for i in ids])
    assert await sweep(relay.store, POLICY, late) == {"delivered": 3, "dead_letter": 0}
    assert not any([await held(relay, i) for i in ids])


def test_scheduled_jobs_do_not_delay_crash_recovery(relay: Relay) -> None:
    """arq leases every job for the longest function timeout + 10 s: a cron job with a longer
    timeout than the deliveries' would hold a killed worker's deliveries that much longer."""
    worker = create_worker(relay.settings, burst=True)
    assert worker.in_progress_timeout_s == relay.settings.job_timeout_s + 10


async def test_a_live_signed_link_keeps_its_file_until_it_expires(make_relay: Any, factorial: Emulator) -> None:
    """Factorial `cv_upload = link`: the ATS holds a link to the relay's copy, so the copy stays
    (through its checkpoint and past the 7 days) until the link expires, then goes."""
    relay = make_relay(
        {"acme": connection_table("factorial", factorial.url, cv_upload="link", cv_link_ttl_days=10)},
        link_secret="link-secret-for-tests",
        public_url="http://relay.example",
    )
    await relay.start_worker()
    delivery_id = (await relay.post(Person().application())).json()["id"]
    record = await relay.wait_for(delivery_id, "delivered")
    assert record["keep_files_until"] and len(await held(relay, delivery_id)) == 2
    t = await updated_at(relay, delivery_id)
    assert await sweep(relay.store, POLICY, t + 8 * DAY) == {"delivered": 0, "dead_letter": 0}
    assert len(await held(relay, delivery_id)) == 2
    assert await sweep(relay.store, POLICY, record["keep_files_until"] + 1) == {"delivered": 1, "dead_letter": 0}
    assert await held(relay, delivery_id) == []
