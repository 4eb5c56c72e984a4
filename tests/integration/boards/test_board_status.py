"""Status back to the boards, end to end: HelloWork and Indeed applications go through the relay
and a real worker into the Factorial emulator; their status changes there are polled and reported
to the HelloWork and Indeed emulators over HTTP, in order, retried, and only ids leave for Indeed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from app.delivery.record import Delivery, Status
from app.runtime import Runtime
from app.tracking import boards, poll
from app.worker import cron_jobs
from tests.support.boards import HELLOWORK_KEY, hellowork_payload, post_hellowork
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.inbound import INDEED_SECRET, indeed_payload, post_indeed


def board_connection(factorial: Emulator, hellowork: Emulator, indeed: Emulator, **extra: Any) -> dict[str, Any]:
    return connection_table(
        "factorial",
        factorial.url,
        hellowork_secret_env="TEST_HELLOWORK_KEY",
        hellowork_status_hosts=[f"127.0.0.1:{hellowork.server.port}"],
        fetch_allow_http=True,  # test-only: the emulators speak http on loopback
        indeed_secret_env="TEST_INDEED_SECRET",
        indeed_client_id_env="TEST_INDEED_CLIENT_ID",
        indeed_client_secret_env="TEST_INDEED_CLIENT_SECRET",
        indeed_token_url=f"{indeed.url}/oauth/v2/tokens",
        indeed_disposition_url=f"{indeed.url}/graphql",
        indeed_ats_name="applyrelay-test",
        indeed_status_map={"Screening": "SCREEN"},
        retry_schedule=[15, 60],
        **extra,
    )


@pytest.fixture
async def relay(
    make_relay: Callable[..., Relay],
    factorial: Emulator,
    hellowork: Emulator,
    indeed: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Relay]:
    monkeypatch.setenv("TEST_HELLOWORK_KEY", HELLOWORK_KEY)
    monkeypatch.setenv("TEST_INDEED_SECRET", INDEED_SECRET)
    monkeypatch.setenv("TEST_INDEED_CLIENT_ID", "sandbox-client")
    monkeypatch.setenv("TEST_INDEED_CLIENT_SECRET", "sandbox")
    relay = make_relay({"acme": board_connection(factorial, hellowork, indeed)})
    await relay.start_worker()
    yield relay


@pytest.fixture
async def runtime(relay: Relay) -> AsyncIterator[Runtime]:
    """The worker side, on the test's loop, to drive the poll and the dispatch with a clock."""
    runtime = Runtime(relay.settings)
    yield runtime
    await runtime.close()


def move(factorial: Emulator, application_id: str, phase: str) -> None:
    with httpx.Client(base_url=f"{factorial.url}/api/2026-07-01/resources/", headers={"x-api-key": "sandbox"}) as http:
        http.post(
            "ats/applications/move_to_phase", json={"id": application_id, "ats_application_phase_id": phase}
        ).raise_for_status()


async def eventually(check: Callable[[], Any], within_s: float = 15.0) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("not reached")
        await asyncio.sleep(0.05)


async def poll_and_report(runtime: Runtime, now: float) -> None:
    await poll.sync_once(runtime, now=now)
    await boards.dispatch_due(runtime.redis, runtime.config, runtime.http, sealer=runtime.sealer, now=now)


async def test_hellowork_hears_each_status_in_order(
    relay: Relay, runtime: Runtime, factorial: Emulator, hellowork: Emulator
) -> None:
    status_url = f"{hellowork.url}/v1/applications/hw-77/status"
    response = await post_hellowork(relay, hellowork_payload("hw-77", statusApiUrl=status_url))
    assert response.status_code == 202, response.text
    delivery = await relay.wait_for(response.json()["id"], "delivered")
    application_id = delivery["checkpoints"]["application"]

    now = time.time()
    await poll_and_report(runtime, now)  # on delivery: the first status seen
    move(factorial, application_id, "200102")
    interval = runtime.settings.status_sync_interval_s + 1
    await poll_and_report(runtime, now + interval)
    hellowork.faults(script=["error"])  # HelloWork down for one attempt: retried on the policy
    move(factorial, application_id, "200105")
    await poll_and_report(runtime, now + 2 * interval)
    await eventually(lambda: hellowork.records()["faults_injected"] == {"error": 1})
    await boards.dispatch_due(
        runtime.redis, runtime.config, runtime.http, sealer=runtime.sealer, now=now + 2 * interval + 20
    )

    await eventually(lambda: len(hellowork.records()["statuses"]) == 3)
    statuses = hellowork.records()["statuses"]
    assert [s["status"] for s in statuses] == ["New", "Screening", "Hired"]
    assert all(s["applicationId"] == "hw-77" and s["jobId"] == "2001" for s in statuses)
    assert statuses[0]["source"] == {"name": "HelloWork", "product": "ats-connect"}
    assert statuses[0]["created"].endswith("Z") and statuses[0]["eventDate"] <= statuses[2]["eventDate"]
    assert hellowork.records()["refused"] == []  # every body had HelloWork's documented shape

    reports = await boards.reports_of(runtime.redis, delivery["id"])
    assert [(r.status, r.attempts) for r in reports] == [("sent", 1), ("sent", 1), ("sent", 2)]
    api = (await relay.client.get(f"/v1/deliveries/{delivery['id']}/board-reports", headers=relay.admin)).json()
    assert [r["body"]["status"] for r in api["data"]] == ["New", "Screening", "Hired"]
    page = await relay.client.get(f"/dashboard/deliveries/{delivery['id']}", headers=relay.admin)
    assert page.status_code == 200 and 'id="board-reports"' in page.text
    section = page.text.split('id="board-reports"', 1)[1].split("</section>", 1)[0]
    assert [part.split("</b>", 1)[0] for part in section.split("<b>")[1:]] == ["New", "Screening", "Hired"]
    assert "2 attempts" in section and "Élodie" not in section  # what was reported, and when; no PII


async def test_indeed_gets_new_then_hired_and_nothing_personal(
    relay: Relay, runtime: Runtime, factorial: Emulator, indeed: Emulator
) -> None:
    response = await post_indeed(relay, indeed_payload(id="ia-" + "1" * 61))
    assert response.status_code == 202, response.text
    delivery = await relay.wait_for(response.json()["id"], "delivered")
    now = time.time()
    await poll_and_report(runtime, now)
    await eventually(lambda: [d["dispositionStatus"] for d in indeed.records()["dispositions"]] == ["NEW"])
    move(factorial, delivery["checkpoints"]["application"], "200102")
    await poll_and_report(runtime, now + runtime.settings.status_sync_interval_s + 1)
    move(factorial, delivery["checkpoints"]["application"], "200105")
    await poll_and_report(runtime, now + 2 * runtime.settings.status_sync_interval_s + 2)

    await eventually(lambda: len(indeed.records()["dispositions"]) == 3)
    records = indeed.records()
    sent = records["dispositions"]
    page = await relay.client.get(f"/dashboard/deliveries/{delivery['id']}", headers=relay.admin)
    assert "Reported to indeed" in page.text and "<b>HIRED</b>" in page.text
    assert [(d["dispositionStatus"], d["rawDispositionStatus"]) for d in sent] == [
        ("NEW", "New"),
        ("SCREEN", "Screening"),  # indeed_status_map
        ("HIRED", "Hired"),  # the default for a hired outcome
    ]
    assert all(d["identifiedBy"] == {"indeedApplyID": "ia-" + "1" * 61} for d in sent)
    assert all(d["atsName"] == "applyrelay-test" for d in sent)
    assert records["pii_refused"] == [] and records["refused"] == []  # the PII check passed every time
    assert records["tokens_issued"] == 1  # the token is cached between batches
    cached = await runtime.redis.get("ar:indeed:token:acme")
    assert cached is not None and runtime.sealer.open(cached)  # sealed at rest
    text = str(sent)
    assert "zoe" not in text.lower() and "612 345" not in text and "Berg" not in text


@pytest.mark.parametrize(("ats_status", "dropped"), [(409, "DROPPED_DUPLICATE"), (410, "DROPPED_JOB_EXPIRED")])
async def test_a_202_then_dead_lettered_is_dropped(
    relay: Relay, runtime: Runtime, factorial: Emulator, indeed: Emulator, ats_status: int, dropped: str
) -> None:
    """The ATS refuses the application after the relay's 202: a duplicate (409), a job gone (410)."""
    factorial.faults(error_status=ats_status, path_regex="/ats/applications$", methods=["POST"], script=["error"])
    response = await post_indeed(relay, indeed_payload(id="ia-dup"))
    assert response.status_code == 202, response.text
    failed = await relay.wait_for(response.json()["id"], "failed")
    assert failed["last_error"]["http_status"] == ats_status
    for _ in range(2):  # the worker's cron scans too: whoever scans, it is queued once
        await boards.scan_dead_letters(runtime, time.time())
    [queued] = await boards.reports_of(runtime.redis, failed["id"])
    assert queued.body["dispositionStatus"] == dropped
    await boards.dispatch_due(runtime.redis, runtime.config, runtime.http, sealer=runtime.sealer)
    [sent] = await eventually(lambda: indeed.records()["dispositions"])
    assert sent["dispositionStatus"] == dropped and sent["identifiedBy"] == {"indeedApplyID": "ia-dup"}


def fake_delivery(n: int) -> Delivery:
    now = time.time()
    return Delivery(
        id=f"d-{n}",
        connection_id="acme",
        connector="factorial",
        status=Status.DELIVERED,
        created_at=now,
        updated_at=now,
        idempotency_key_hash="x",
        channel="indeed",
        board="indeed",
        board_application_id=f"apply-{n:03d}",
        job_id="2001",
    )


async def test_batches_of_25_by_change_time_and_one_refresh_when_the_token_expires(
    relay: Relay, runtime: Runtime, indeed: Emulator
) -> None:
    connection = runtime.config.connections["acme"]
    now = time.time()
    for n in reversed(range(30)):  # queued newest first: sent oldest first
        body = boards.disposition(connection, f"apply-{n:03d}", "NEW", "New", now + n)
        await boards.enqueue(runtime.redis, "indeed", fake_delivery(n), body, now + n, now)
    indeed.http.post(
        "/_sandbox/indeed/settings", json={"expire_after_requests": 1, "fail_ids": {"apply-007": "Unknown ID"}}
    )
    outcomes = await boards.dispatch_due(
        runtime.redis, runtime.config, runtime.http, sealer=runtime.sealer, now=now + 1
    )
    assert outcomes == {"sent": 29, "refused": 1}
    records = indeed.records()
    assert [r["count"] for r in records["batches"]] == [25, 5]
    assert [d["identifiedBy"]["indeedApplyID"] for d in records["dispositions"]] == [
        f"apply-{n:03d}" for n in range(30) if n != 7
    ]
    assert records["tokens_issued"] == 2 and records["unauthorized"] == 1  # refreshed once, mid-batch
    [refused] = [r for r in await boards.reports_of(runtime.redis, "d-7")]
    assert refused.status == "failed" and refused.rationale == "Unknown ID"  # failedDispositions, kept


def test_the_worker_reports_to_boards_on_its_schedule(relay: Relay) -> None:
    names = {job.name for job in cron_jobs(relay.settings)}
    assert {"sync_application_status", "report_to_boards", "dispatch_status_callbacks"} <= names
