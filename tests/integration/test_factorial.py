"""End to end: canonical intake → Redis → arq worker → Factorial emulator, all over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import pytest

from tests.support.builders import PDF_BYTES, application, b64, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay({"acme": connection_table("factorial", factorial.url)})


async def test_application_with_cv_and_every_answer_type_arrives(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    response = await relay.post(application())
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/v1/deliveries/{response.json()['id']}"
    delivery = await relay.wait_for(response.json()["id"], "delivered")

    records = factorial.records()
    [candidate] = records["candidates"]
    assert (candidate["first_name"], candidate["last_name"]) == ("Zoë", "Van der Berg-Ñúñez")
    assert candidate["email"] == "zoe.vdb@example.org"
    assert candidate["phone_number"] == "+34 612 345 678"
    assert candidate["gender"] == "female"
    assert candidate["consent_given_at"]
    [app] = records["applications"]
    assert app["ats_job_posting_id"] == "2001" and app["ats_candidate_id"] == candidate["id"]
    assert app["source_id"] == "4001"  # LinkedIn, matched by label
    answers = {a["ats_question_id"]: a for a in records["answers"]}
    assert answers["3001"]["value"] == "Because relays should never lose a CV."
    assert answers["3001"]["original_question_type"] == "long_text"
    assert answers["3002"]["value"] == "55000"
    assert answers["3003"]["value"] == "Yes"
    assert answers["3004"]["value"] == "Python, Rust"
    assert "3005" not in answers  # file questions cannot be written to Factorial: warned
    [cv] = records["files"]
    assert cv["sha256"] == hashlib.sha256(PDF_BYTES).hexdigest()
    assert cv["filename"] == "Zoë CV.pdf" and cv["ats_application_id"] == app["id"]

    assert delivery["checkpoints"]["candidate"] == candidate["id"]
    assert delivery["checkpoints"]["application"] == app["id"]
    codes = {w["code"] for w in delivery["warnings"]}
    assert {"attachment_not_supported", "answer_not_supported"} <= codes
    assert delivery["files_purged"] is True  # bytes dropped once the ATS confirmed them
    assert not await relay.redis.keys("ar:f:*")


async def test_same_idempotency_key_five_times_gives_one_delivery(relay: Relay, factorial: Emulator) -> None:
    responses = await asyncio.gather(*(relay.post(application(), key="board-app-42") for _ in range(5)))
    assert {r.status_code for r in responses} == {202}
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    assert sorted(r.json()["duplicate"] for r in responses) == [False, True, True, True, True]
    assert await relay.redis.zcard("ar:ix:all") == 1
    assert await relay.queued_jobs() == 1
    await relay.start_worker()
    await relay.wait_for(ids.pop(), "delivered")
    again = await relay.post(application(), key="board-app-42")
    assert again.status_code == 202 and again.json()["status"] == "delivered" and again.json()["duplicate"]
    assert len(factorial.records()["candidates"]) == 1
    assert len(factorial.records()["applications"]) == 1


async def test_without_key_the_same_candidate_and_job_is_one_delivery(relay: Relay) -> None:
    first = await relay.post(application())
    shouting = {**application()["candidate"], "email_address": "ZOE.VDB@example.org"}
    second = await relay.post(application(candidate=shouting))
    assert first.json()["id"] == second.json()["id"]


async def test_transient_failures_then_retry_after_follow_the_policy(relay: Relay, factorial: Emulator) -> None:
    # intake's read of the job, cached before the faults (they are for the delivery's writes)
    assert (await relay.client.get("/v1/connections/acme/jobs/2001", headers=relay.admin)).status_code == 200
    factorial.faults(script=["error", "error", "error", "rate_limit"], retry_after=7200, error_status=503)
    await relay.start_worker()
    delivery_id = (await relay.post(application(attachments=[], screening_question_answers=[]))).json()["id"]
    expected = [(15, "schedule"), (60, "schedule"), (300, "schedule"), (7200, "Retry-After")]
    for attempt, (base, reason) in enumerate(expected, start=1):
        record = await relay.wait_for(
            delivery_id, "retry_scheduled", until=lambda r, n=attempt: r["failed_attempts"] == n
        )
        scheduled = [a for a in record["attempts"] if a["outcome"] == "transient"]
        assert len(scheduled) == attempt
        last = scheduled[-1]
        delay = last["next_attempt_at"] - last["finished_at"]
        if reason == "Retry-After":
            assert delay == pytest.approx(7200, abs=1) and last["retry_reason"].startswith("Retry-After")
            assert last["http_status"] == 429
        else:
            assert base * 0.8 - 1 <= delay <= base * 1.2 + 1, (attempt, delay)
            assert last["http_status"] == 503
        await relay.fast_forward(delay + 1)
    record = await relay.wait_for(delivery_id, "delivered")
    assert record["failed_attempts"] == 4
    assert len(factorial.records()["candidates"]) == 1


async def test_timeouts_and_429_wait_at_least_a_minute(relay: Relay, factorial: Emulator) -> None:
    # intake's read of the job, cached before the faults (they are for the delivery's writes)
    assert (await relay.client.get("/v1/connections/acme/jobs/2001", headers=relay.admin)).status_code == 200
    factorial.faults(script=["rate_limit"], retry_after=1)
    await relay.start_worker()
    response = await relay.post(application(attachments=[]))
    assert response.status_code == 202, response.text
    delivery_id = response.json()["id"]
    record = await relay.wait_for(delivery_id, "retry_scheduled")
    last = record["attempts"][-1]
    assert last["next_attempt_at"] - last["finished_at"] == pytest.approx(60, abs=1)


async def test_422_from_factorial_is_dead_lettered_at_once_with_its_reason(relay: Relay, factorial: Emulator) -> None:
    # An archived posting is refused at intake now (ATS.JOB_CLOSED, from the catalog's read) ...
    closed = await relay.post(application(application={"job_id": "2003"}))
    assert closed.status_code == 422 and closed.json()["code"] == "ATS.JOB_CLOSED", closed.text
    # ... so a 422 of Factorial's own is one on a write the relay could not foresee.
    factorial.faults(script=["error"], error_status=422, path_regex="/ats/applications$", methods=["POST"])
    await relay.start_worker()
    delivery_id = (await relay.post(application())).json()["id"]
    record = await relay.wait_for(delivery_id, "failed")
    assert record["last_error"]["http_status"] == 422 and record["last_error"]["code"] == "REMOTE.INPUT_INVALID"
    assert record["last_error"]["step"] == "application"
    assert record["failed_attempts"] == 0 and record["runs"] == 1
    assert await relay.redis.zscore("ar:ix:st:failed", delivery_id) is not None
    assert factorial.records()["applications"] == []


async def test_drop_after_create_does_not_duplicate(relay: Relay, factorial: Emulator) -> None:
    """The ATS stores the candidate but the answer is lost: the re-run finds it by email."""
    factorial.faults(script=["drop_after"], path_regex="/ats/candidates$", methods=["POST"])
    await relay.start_worker()
    response = await relay.post(application(attachments=[]))
    assert response.status_code == 202, response.text
    delivery_id = response.json()["id"]
    record = await relay.wait_for(delivery_id, "retry_scheduled")
    assert record["attempts"][-1]["step"] == "candidate"
    await relay.fast_forward(3600)
    await relay.wait_for(delivery_id, "delivered")
    records = factorial.records()
    assert len(records["candidates"]) == 1 and len(records["applications"]) == 1


async def test_cv_upload_dropped_after_storing_is_not_sent_twice(relay: Relay, factorial: Emulator) -> None:
    factorial.faults(script=["drop_after"], path_regex="/ats/messages$", methods=["POST"])
    await relay.start_worker()
    delivery_id = (await relay.post(application())).json()["id"]
    record = await relay.wait_for(delivery_id, "retry_scheduled")
    assert record["checkpoints"]["application"]  # the application was completed first
    await relay.fast_forward(3600)
    await relay.wait_for(delivery_id, "delivered")
    assert len(factorial.records()["files"]) == 1


async def test_add_attachment_to_application_action(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    delivery_id = (await relay.post(application(attachments=[]))).json()["id"]
    await relay.wait_for(delivery_id, "delivered")
    body = {"attachment": {"name": "cv-v2.pdf", "type": "CV", "data": b64(PDF_BYTES + b"v2")}}
    response = await relay.client.post(f"/v1/deliveries/{delivery_id}/attachments", json=body, headers=relay.admin)
    assert response.status_code == 202, response.text
    action = await relay.wait_for(response.json()["id"], "delivered")
    assert action["kind"] == "action" and action["parent_id"] == delivery_id
    [file] = factorial.records()["files"]
    assert file["sha256"] == hashlib.sha256(PDF_BYTES + b"v2").hexdigest()
    refused = await relay.client.post(
        f"/v1/deliveries/{delivery_id}/attachments",
        headers=relay.admin,
        json={"attachment": {**body["attachment"], "type": "COVER_LETTER"}},
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "attachment.type"


async def test_retry_of_dead_letter_resumes_from_checkpoint(relay: Relay, factorial: Emulator) -> None:
    factorial.faults(script=["error"], error_status=400, path_regex="/ats/answers$", methods=["POST"])
    await relay.start_worker()
    delivery_id = (await relay.post(application(attachments=[]))).json()["id"]
    failed = await relay.wait_for(delivery_id, "failed")
    assert failed["last_error"]["step"] == "answers"
    response = await relay.client.post(f"/v1/deliveries/{delivery_id}/retry", headers=relay.admin)
    assert response.status_code == 202 and response.json()["changed"] is True
    await relay.wait_for(delivery_id, "delivered")
    again = await relay.client.post(f"/v1/deliveries/{delivery_id}/retry", headers=relay.admin)
    assert again.status_code == 200 and again.json()["changed"] is False
    records = factorial.records()
    assert len(records["candidates"]) == 1 and len(records["applications"]) == 1
    assert len(records["answers"]) == 4


async def test_wrong_api_key_pauses_the_connection_without_spending_attempts(
    make_relay: Any, factorial: Emulator
) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url, _secret="wrong-key")})
    await relay.start_worker()
    delivery_id = (await relay.post(application(attachments=[]))).json()["id"]
    record = await relay.wait_for(delivery_id, "paused")
    assert record["failed_attempts"] == 0 and record["last_error"]["http_status"] == 401
    assert await relay.redis.get("ar:paused:acme")


async def test_legacy_cv_part_upload(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url, cv_upload="legacy_cv_part")})
    await relay.start_worker()
    delivery_id = (await relay.post(application())).json()["id"]
    await relay.wait_for(delivery_id, "delivered")
    [file] = factorial.records()["files"]
    assert file["via"] == "legacy_cv" and file["sha256"] == hashlib.sha256(PDF_BYTES).hexdigest()
    [app] = factorial.records()["applications"]
    assert app["cv"]["byte_size"] == len(PDF_BYTES)


async def test_cv_as_a_signed_link_in_the_cover_letter(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay(
        {"acme": connection_table("factorial", factorial.url, cv_upload="link", cv_link_ttl_days=2)},
        link_secret="link-secret-for-tests",
        public_url="http://relay.example",
    )
    await relay.start_worker()
    delivery_id = (await relay.post(application())).json()["id"]
    record = await relay.wait_for(delivery_id, "delivered")
    assert factorial.records()["files"] == []  # nothing uploaded: the CV is a link
    [app] = factorial.records()["applications"]
    url = app["cover_letter"].split(": ", 1)[1].split()[0]
    assert url.startswith("http://relay.example/v1/files/") and "valid for 2 days" in app["cover_letter"]
    assert record["files_purged"] is False  # kept while the link lives
    path = url.removeprefix("http://relay.example")
    download = await relay.client.get(path)  # the token is the credential
    assert download.status_code == 200 and download.content == PDF_BYTES
    assert download.headers["content-type"] == "application/pdf"
    assert "Zo%C3%AB%20CV.pdf" in download.headers["content-disposition"]
    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert (await relay.client.get(tampered)).status_code == 404
