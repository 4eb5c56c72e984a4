"""Flatchr end to end: canonical intake -> Redis -> arq worker -> engine -> connector -> emulator,
all over real HTTP and a real redis-server. Outcomes are read from the emulator's records."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any

import pytest

from connectors.sandbox.flatchr import COMPANY_ID
from tests.support.builders import PDF_BYTES, b64, connection_table
from tests.support.emulators import Emulator, EmulatorFactory
from tests.support.harness import Relay

PY_JOB = "Vq5r6pYxam9AmMvP"
Q_WHY, Q_LICENSE, Q_SINCE = "q7Hd2LmQx9aB3cTe", "q2Kp8ZrW4nYv6JsU", "q5Fg1HjK3lMn7PqR"
Q_CITY, Q_LANGS, Q_YEARS = "q9Wx4EcR6tYu2IoP", "q3As5DfG7hJk9LzX", "q8Cv1BnM3qWe5RtY"
Q_AVAILABLE, Q_GITHUB, Q_PORTFOLIO = "q4Ui6OpA8sDf0GhJ", "q6Kl8ZxC0vBn2MqW", "q1Er3TyU5iOp7AsD"
LETTER_BYTES = PDF_BYTES + b"% cover letter\n"


def flatchr_connection(emulator: Emulator, **settings: Any) -> dict[str, Any]:
    return connection_table("flatchr", emulator.url, company_id=COMPANY_ID, **settings)


def payload(
    connection_id: str = "acme",
    *,
    answers: list[dict[str, Any]] | None = None,
    attachments: list[dict[str, Any]] | None = None,
    email: str = "jeanne.martin@example.fr",
    **extra: Any,
) -> dict[str, Any]:
    if answers is None:
        answers = [{"question_id": Q_WHY, "answer": "L'équipe"}, {"question_id": Q_LICENSE, "answer": False}]
    if attachments is None:
        attachments = [cv()]
    return {
        "connection_id": connection_id,
        "candidate": {
            "first_name": "Jeanne",
            "last_name": "Martin",
            "email_address": email,
            "phone_number": "+33 6 12 34 56 78",
        },
        "application": {"job_id": PY_JOB},
        "screening_question_answers": answers,
        "attachments": attachments,
        **extra,
    }


def cv() -> dict[str, Any]:
    return {"name": "cv-jeanne.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(PDF_BYTES)}


def warning_codes(record: dict[str, Any]) -> list[str]:
    return [w["code"] for w in record["warnings"]]


async def deliver(
    relay: Relay, body: dict[str, Any], *, key: str | None = None, statuses: tuple[str, ...] = ("delivered",)
) -> dict[str, Any]:
    response = await relay.post(body, key=key)
    assert response.status_code == 202, response.text
    return await relay.wait_for(response.json()["id"], *statuses)


async def test_every_answer_type(make_relay: Callable[..., Relay], flatchr: Emulator) -> None:
    relay = make_relay({"acme": flatchr_connection(flatchr)})
    await relay.start_worker()
    answers = [
        {"question_id": Q_WHY, "answer": "Pour l'équipe"},
        {"question_id": Q_LICENSE, "answer": True},
        {"question_id": Q_SINCE, "answer": "2019-06-30"},
        {"question_id": Q_CITY, "answer": ["Lyon"]},
        {"question_id": Q_LANGS, "answer": ["Python", "SQL"]},
        {"question_id": Q_YEARS, "answer": 7},
        {"question_id": Q_AVAILABLE, "answer": "2026-03-01"},
        {"question_id": Q_GITHUB, "answer": "https://github.com/jmartin"},
        {
            "question_id": Q_PORTFOLIO,
            "answer": {"name": "portfolio.pdf", "content_type": "application/pdf", "data": b64(PDF_BYTES)},
        },
    ]
    record = await deliver(relay, payload(answers=answers))
    [applicant] = flatchr.records()["applicants"]
    assert {a["question_id"]: a["value"] for a in applicant["answers"]} == {
        Q_WHY: "Pour l'équipe",
        Q_LICENSE: "Oui",
        Q_SINCE: "2019-06-30",
        Q_CITY: "Lyon",
        Q_LANGS: "Python;SQL",
        Q_YEARS: "7",
        Q_AVAILABLE: "2026-03-01",
        Q_GITHUB: "https://github.com/jmartin",
    }
    assert record["checkpoints"]["application"] == applicant["id"]
    assert warning_codes(record) == ["answer_type_unsupported"]


async def test_cv_uploaded_cover_letter_warned(make_relay: Callable[..., Relay], flatchr: Emulator) -> None:
    relay = make_relay({"acme": flatchr_connection(flatchr)})
    await relay.start_worker()
    letter = {
        "name": "lettre.pdf",
        "type": "COVER_LETTER",
        "content_type": "application/pdf",
        "data": b64(LETTER_BYTES),
    }
    response = await relay.post(payload(attachments=[letter, cv()]))
    assert response.status_code == 202
    assert [w["code"] for w in response.json()["warnings"]] == ["attachment_not_supported"]
    record = await relay.wait_for(response.json()["id"], "delivered")
    [file] = flatchr.records()["files"]
    assert file["sha256"] == hashlib.sha256(PDF_BYTES).hexdigest() and file["name"] == "cv-jeanne.pdf"
    assert warning_codes(record) == ["attachment_not_supported"]
    assert [a["type"] for a in record["attachments"]] == ["CV"] and record["attachments"][0]["confirmed"]
    assert record["files_purged"] is True and not await relay.redis.keys("ar:f:*")


async def test_missing_cv_is_refused_at_intake(make_relay: Callable[..., Relay], flatchr: Emulator) -> None:
    relay = make_relay({"acme": flatchr_connection(flatchr)})
    response = await relay.post(payload(attachments=[]))
    assert response.status_code == 422 and "CV" in response.text
    assert await relay.queued_jobs() == 0


async def test_offerer_id_vs_source_id(make_relay: Callable[..., Relay], flatchr: Emulator) -> None:
    relay = make_relay(
        {
            "board": flatchr_connection(flatchr, offerer_id=75, source_by_origin={"api": "offerer_id"}),
            "custom": flatchr_connection(
                flatchr, offerer_id=75, source_id="src_partner_form", source_by_origin={"api": "source_id"}
            ),
        }
    )
    await relay.start_worker()
    await deliver(relay, payload("board"))
    await deliver(relay, payload("custom", email="paul@example.fr"))
    await deliver(relay, payload("custom", email="lea@example.fr", source={"id": "src_cooptation"}))
    rows = {a["candidate_id"]: a for a in flatchr.records()["applicants"]}
    by_email = {c["email"]: rows[c["id"]] for c in flatchr.records()["candidates"]}
    assert (by_email["jeanne.martin@example.fr"]["offerer_id"], by_email["jeanne.martin@example.fr"]["source_id"]) == (
        75,
        None,
    )
    assert (by_email["paul@example.fr"]["offerer_id"], by_email["paul@example.fr"]["source_id"]) == (
        None,
        "src_partner_form",
    )
    assert by_email["lea@example.fr"]["source_id"] == "src_cooptation"


async def test_duplicate_delivery_one_applicant(make_relay: Callable[..., Relay], flatchr: Emulator) -> None:
    relay = make_relay({"acme": flatchr_connection(flatchr)})
    await relay.start_worker()
    first, *repeats = await asyncio.gather(*(relay.post(payload(), key="board-42") for _ in range(4)))
    assert {r.json()["id"] for r in repeats} == {first.json()["id"]}
    assert sorted(r.json()["duplicate"] for r in (first, *repeats)) == [False, True, True, True]
    one = await relay.wait_for(first.json()["id"], "delivered")
    two = await deliver(relay, payload(), key="another-key")  # a second delivery of the same person
    data = flatchr.records()
    assert len(data["applicants"]) == 1 and data["create_calls"] == 1
    assert one["checkpoints"]["candidate"] == two["checkpoints"]["candidate"] == data["applicants"][0]["id"]


@pytest.mark.parametrize("fault", ["error", "rate_limit"])
async def test_transient_errors_are_retried_and_delivered_once(
    make_relay: Callable[..., Relay], flatchr: Emulator, fault: str
) -> None:
    relay = make_relay({"acme": flatchr_connection(flatchr)})
    flatchr.faults(script=[fault], path_regex="/vacancy/candidate/json$", error_status=503, retry_after=5)
    await relay.start_worker()
    response = await relay.post(payload())
    record = await relay.wait_for(response.json()["id"], "retry_scheduled")
    assert record["last_error"]["http_status"] == (503 if fault == "error" else 429)
    assert record["last_error"]["step"] == "create"
    last = record["attempts"][-1]
    delay = last["next_attempt_at"] - last["finished_at"]
    if fault == "error":
        assert 15 * 0.8 - 1 <= delay <= 15 * 1.2 + 1  # first step of the schedule
    else:
        assert delay == pytest.approx(60, abs=1)  # 429 waits at least a minute (Retry-After: 5)
    await relay.run_due_jobs()
    record = await relay.wait_for(response.json()["id"], "delivered")
    data = flatchr.records()
    assert len(data["applicants"]) == 1 and data["create_calls"] == 1
    assert [a["outcome"] for a in record["attempts"]][:1] == ["ok"]
    assert "transient" in [a["outcome"] for a in record["attempts"]]


async def test_dropped_create_is_looked_up_not_repeated(make_relay: Callable[..., Relay], flatchr: Emulator) -> None:
    relay = make_relay({"acme": flatchr_connection(flatchr)})
    flatchr.faults(script=["drop_after"], path_regex="/vacancy/candidate/json$")
    await relay.start_worker()
    response = await relay.post(payload())
    await relay.wait_for(response.json()["id"], "retry_scheduled")
    await relay.run_due_jobs()
    await relay.wait_for(response.json()["id"], "delivered")
    data = flatchr.records()
    assert len(data["applicants"]) == 1 and data["create_calls"] == 1


async def test_validation_error_is_dead_lettered_with_reason(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    relay = make_relay({"acme": flatchr_connection(flatchr)})
    # the conditional date question becomes required once the licence answer is "Oui": refused at
    # intake now, from the vacancy's questions (app/core/answers.py), before anything is queued
    body = payload(answers=[{"question_id": Q_WHY, "answer": "x"}, {"question_id": Q_LICENSE, "answer": True}])
    response = await relay.post(body)
    assert response.status_code == 422 and response.json()["code"] == "PLATFORM.INPUT_INVALID", response.text
    assert any(Q_SINCE in e["message"] and "required" in e["message"] for e in response.json()["errors"])
    assert "Jeanne" not in response.text and await relay.queued_jobs() == 0
    # Flatchr's own 400 on a create (what the relay could not foresee) is a dead letter with its reason
    flatchr.faults(script=["error"], error_status=400, methods=["POST"])
    await relay.start_worker()
    record = await deliver(relay, payload(), statuses=("failed",))
    error = record["last_error"]
    assert error["kind"] == "permanent" and error["http_status"] == 400 and error["code"] == "REMOTE.INPUT_INVALID"
    assert record["failed_attempts"] == 0 and record["runs"] == 1
    assert "Jeanne" not in str(record) and "jeanne.martin" not in str(record)
    assert flatchr.records()["applicants"] == []


async def test_wrong_key_pauses_the_connection(make_relay: Callable[..., Relay], flatchr: Emulator) -> None:
    relay = make_relay({"acme": {**flatchr_connection(flatchr), "_secret": "revoked"}})
    await relay.start_worker()
    record = await deliver(relay, payload(), statuses=("paused",))
    assert record["last_error"]["http_status"] == 401 and "revoked" not in str(record)
    assert record["failed_attempts"] == 0 and await relay.redis.get("ar:paused:acme")
    assert flatchr.records()["applicants"] == []


@pytest.mark.slow
async def test_kill_9_mid_delivery_resumes_without_duplicate(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    """The worker dies while Flatchr holds the create call (applicant already stored): the re-run
    finds the applicant by e-mail instead of creating it again."""
    relay = make_relay({"acme": flatchr_connection(flatchr)}, job_timeout_s=4.0)
    flatchr.faults(script=["timeout_after"], stall_s=2.5, path_regex="/vacancy/candidate/json$")
    process = relay.spawn_worker()
    response = await relay.post(payload())
    delivery_id = response.json()["id"]
    deadline = time.monotonic() + 20
    while flatchr.records()["create_calls"] == 0:
        assert time.monotonic() < deadline, "the worker never reached the create call"
        await asyncio.sleep(0.05)
    relay.kill(process)
    assert (await relay.delivery(delivery_id))["status"] == "delivering"
    flatchr.faults()
    relay.spawn_worker()
    record = await relay.wait_for(delivery_id, "delivered", timeout=60)
    data = flatchr.records()
    assert len(data["applicants"]) == 1 and data["create_calls"] == 1
    assert "crash" in [a["outcome"] for a in record["attempts"]]
    assert record["checkpoints"]["application"] == data["applicants"][0]["id"]


async def test_retry_of_dead_letter_resumes_from_checkpoint(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    relay = make_relay({"acme": flatchr_connection(flatchr, offerer_id=12)})
    flatchr.faults(script=["error"], error_status=400, path_regex="/vacancy/candidate/json$")
    await relay.start_worker()
    delivery_id = (await relay.post(payload())).json()["id"]
    failed = await relay.wait_for(delivery_id, "failed")
    assert failed["last_error"]["step"] == "create" and failed["checkpoints"] == {"source": "offerer_id:12"}
    response = await relay.client.post(f"/v1/deliveries/{delivery_id}/retry", headers=relay.admin)
    assert response.status_code == 202 and response.json()["changed"] is True
    record = await relay.wait_for(delivery_id, "delivered")
    [applicant] = flatchr.records()["applicants"]
    assert applicant["offerer_id"] == 12 and record["checkpoints"]["application"] == applicant["id"]


async def test_files_cannot_be_added_after_creation(make_relay: Callable[..., Relay], flatchr: Emulator) -> None:
    """Flatchr's current API has no upload route: an added file is refused, never silently lost."""
    relay = make_relay({"acme": flatchr_connection(flatchr)})
    await relay.start_worker()
    delivery_id = (await deliver(relay, payload()))["id"]
    body = {"attachment": {"name": "cv-v2.pdf", "type": "CV", "data": b64(PDF_BYTES + b"v2")}}
    response = await relay.client.post(f"/v1/deliveries/{delivery_id}/attachments", json=body, headers=relay.admin)
    if response.status_code == 202:  # the route queues it; the connector refuses the action
        action = await relay.wait_for(response.json()["id"], "failed")
        assert "not supported by flatchr" in action["last_error"]["message"]
    else:
        assert response.status_code == 422
    assert len(flatchr.records()["files"]) == 1


async def test_operator_reads_candidate_attachments(make_relay: Callable[..., Relay], flatchr: Emulator) -> None:
    relay = make_relay({"acme": flatchr_connection(flatchr)})
    await relay.start_worker()
    record = await deliver(relay, payload(attachments=[cv()]))
    candidate_id = record["checkpoints"]["candidate"]
    path = f"/v1/connections/acme/candidates/{candidate_id}/attachments"
    response = await relay.client.get(path, headers=relay.admin)
    assert response.status_code == 200, response.text
    assert [f["name"] for f in response.json()["data"]] == ["cv-jeanne.pdf"]
    assert (await relay.client.get(path)).status_code == 401
    missing = await relay.client.get("/v1/connections/acme/candidates/nope/attachments", headers=relay.admin)
    assert missing.status_code in (404, 422)
    assert (
        await relay.client.get("/v1/connections/other/candidates/1/attachments", headers=relay.admin)
    ).status_code == 404


async def test_cv_refused_on_create_still_creates_the_applicant(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory
) -> None:
    """Flatchr answers 413 to a create carrying a too-large CV: without `require_cv`, the applicant is
    created without it and only the CV fails (docs/architecture.md, "Retry policy"), for an operator to follow up."""
    tenant = emulator("flatchr", resume_required=False)  # a tenant not requiring a CV
    relay = make_relay({"acme": flatchr_connection(tenant, require_cv=False, max_cv_bytes=50_000_000)})
    await relay.start_worker()
    big = PDF_BYTES + b"0" * 6_000_000
    response = await relay.post(payload(attachments=[{"name": "cv.pdf", "type": "CV", "data": b64(big)}]))
    assert response.status_code == 202, response.text
    record = await relay.wait_for(response.json()["id"], "failed")
    assert record["checkpoints"].get("create") == "sent-without-cv", record["last_error"]
    assert record["last_error"]["kind"] == "attachment"
    assert "attachment_rejected" in warning_codes(record)
    data = tenant.records()
    assert len(data["applicants"]) == 1 and data["files"] == []
