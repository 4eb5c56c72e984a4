"""Laura end to end: POST /v1/applications → Redis → arq worker → engine → Laura emulator.

Everything real (HTTP, Redis, arq); only the clock of the retry schedule is compressed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.builders import PDF_BYTES, b64, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay

JOB = "101"  # the seeded job with every question type and two preconditions


def relay_for(make_relay: Callable[..., Relay], laura: Emulator, **settings: Any) -> Relay:
    return make_relay({"laura": connection_table("laura", laura.url, **settings)})


GOOD_ANSWERS = [
    {"question_id": "501", "answer": True},
    {"question_id": "502", "answer": ["1", "2"]},
    {"question_id": "503", "answer": "12"},
    {"question_id": "504", "answer": "Family lives there"},
    {"question_id": "505", "answer": 6},
    {"question_id": "506", "answer": "2027-02-01"},
    {"question_id": "507", "answer": "Happy to relocate."},
]


def payload(
    *,
    email: str = "aino.virtanen@example.fi",
    job_id: str = JOB,
    answers: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "connection_id": "laura",
        "candidate": {
            "first_name": "Aino",
            "last_name": "Virtanen",
            "email_address": email,
            "phone_number": "+358 40 765 4321",
            "gender": "FEMALE",
            "location": {"city": "Tampere", "country": "FI", "zip_code": "33100"},
        },
        "application": {"job_id": job_id},
        "screening_question_answers": GOOD_ANSWERS if answers is None else answers,
        **extra,
    }


def attachment(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "content_type": "application/pdf", "data": b64(PDF_BYTES)}


async def accepted(relay: Relay, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    response = await relay.post(body, **kwargs)
    assert response.status_code == 202, response.text
    return response.json()


async def until(predicate: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.05)


async def test_all_fields_arrive(make_relay: Callable[..., Relay], laura: Emulator) -> None:
    relay = relay_for(make_relay, laura)
    await relay.start_worker()
    created = await accepted(relay, payload(application={"job_id": JOB, "stage_id": "2"}))
    delivery = await relay.wait_for(created["id"], "delivered")
    data = laura.records()
    [candidate] = data["candidates"]
    [application] = data["applications"]
    assert {k: candidate[k] for k in ("first_name", "last_name", "email", "phone", "gender", "address")} == {
        "first_name": "Aino",
        "last_name": "Virtanen",
        "email": "aino.virtanen@example.fi",
        "phone": "+358 40 765 4321",
        "gender": "female",
        "address": {"city": "Tampere", "zip_code": "33100", "country_code": "FI"},
    }
    assert application["job_id"] == 101 and application["candidate_id"] == candidate["id"]
    assert application["current_stage_id"] == 2
    assert {a["question_id"]: a["value"] for a in application["screening_question_answers"]} == {
        501: True,
        502: [1, 2],
        503: 12,
        504: "Family lives there",
        505: 6,
        506: "2027-02-01",
        507: "Happy to relocate.",
    }
    assert delivery["checkpoints"] == {
        "candidate": str(candidate["id"]),
        "application": str(application["id"]),
        "stage": "2",
    }
    assert delivery.get("warnings", []) == []


INVALID = {
    "precondition": [*GOOD_ANSWERS[:2], {"question_id": "503", "answer": "11"}, *GOOD_ANSWERS[3:]],
    "required": [a for a in GOOD_ANSWERS if a["question_id"] != "505"],
}
EXPECTED = {
    "precondition": "question 504: answered, but its precondition on question 503 is not met",
    "required": "question 505: required",
}


@pytest.mark.parametrize("case", sorted(INVALID))
async def test_invalid_answer_is_422_at_intake(make_relay: Callable[..., Relay], laura: Emulator, case: str) -> None:
    relay = relay_for(make_relay, laura)
    response = await relay.post(payload(answers=INVALID[case]))
    assert response.status_code == 422, response.text
    assert EXPECTED[case] in response.text
    assert await relay.queued_jobs() == 0


@pytest.mark.parametrize("case", sorted(INVALID))
async def test_invalid_answer_reaching_delivery_is_dead_lettered(
    make_relay: Callable[..., Relay], laura: Emulator, case: str
) -> None:
    """Where intake could not check (Laura down at intake, nothing cached), the delivery fails at
    once with the reason, before anything is written."""
    relay = relay_for(make_relay, laura)
    laura.faults(error_rate=1.0, error_status=503)
    response = await relay.post(payload(answers=INVALID[case]))
    assert response.status_code == 202, response.text
    laura.faults()
    await relay.start_worker()
    delivery = await relay.wait_for(response.json()["id"], "failed")
    assert delivery["last_error"]["kind"] == "permanent"
    assert EXPECTED[case] in delivery["last_error"]["message"]
    assert "Family" not in str(delivery) and "Aino" not in str(delivery)
    data = laura.records()
    assert data["candidates"] == [] and data["applications"] == []


async def test_attachments_are_refused_at_intake_by_default(make_relay: Callable[..., Relay], laura: Emulator) -> None:
    relay = relay_for(make_relay, laura)
    response = await relay.post(payload(attachments=[attachment("cv.pdf", "CV")]))
    assert response.status_code == 422
    assert "Laura takes no attachments" in response.text
    assert await relay.queued_jobs() == 0


async def test_attachments_are_dropped_with_a_warning_each(make_relay: Callable[..., Relay], laura: Emulator) -> None:
    relay = relay_for(make_relay, laura, drop_attachments=True)
    await relay.start_worker()
    body = payload(attachments=[attachment("cv.pdf", "CV"), attachment("letter.pdf", "COVER_LETTER")])
    created = await accepted(relay, body)
    assert [w["code"] for w in created.get("warnings", [])] == ["attachment_dropped"] * 2
    delivery = await relay.wait_for(created["id"], "delivered")
    assert [w["code"] for w in delivery["warnings"]] == ["attachment_dropped"] * 2
    assert delivery.get("attachments", []) == []
    data = laura.records()
    assert len(data["applications"]) == 1 and data["files"] == []


async def test_move_to_stage_after_delivery_is_queued_and_retried(
    make_relay: Callable[..., Relay], laura: Emulator
) -> None:
    relay = relay_for(make_relay, laura)
    await relay.start_worker()
    parent = await relay.wait_for((await accepted(relay, payload()))["id"], "delivered")
    laura.faults(script=["error"], error_status=503, path_regex="/stage$")
    response = await relay.client.post(
        f"/v1/deliveries/{parent['id']}/stage", json={"stage_id": "3"}, headers=relay.admin
    )
    assert response.status_code == 202, response.text
    action_id = response.json()["id"]
    again = await relay.client.post(f"/v1/deliveries/{parent['id']}/stage", json={"stage_id": "3"}, headers=relay.admin)
    assert again.json() == {"id": action_id, "status": "queued", "duplicate": True}
    await relay.wait_for(action_id, "retry_scheduled", until=lambda r: r["failed_attempts"] == 1)
    await relay.run_due_jobs()
    action = await relay.wait_for(action_id, "delivered")
    assert action["checkpoints"] == {"stage": "3"}
    data = laura.records()
    assert data["applications"][0]["current_stage_id"] == 3
    assert [m["to"] for m in data["stage_moves"]] == [3]
    assert data["faults_injected"] == {"error": 1}


@pytest.mark.parametrize("script", [["error"], ["rate_limit"], ["error", "rate_limit"]])
async def test_5xx_and_429_are_retried(make_relay: Callable[..., Relay], laura: Emulator, script: list[str]) -> None:
    relay = relay_for(make_relay, laura)
    laura.faults(script=list(script), error_status=502, retry_after=5, path_regex="/applications$", methods=["POST"])
    await relay.start_worker()
    created = await accepted(relay, payload())
    for failures in range(1, len(script) + 1):
        await relay.wait_for(created["id"], "retry_scheduled", until=lambda r, n=failures: r["failed_attempts"] == n)
        await relay.run_due_jobs()
    delivery = await relay.wait_for(created["id"], "delivered")
    statuses = [a.get("http_status") for a in delivery["attempts"] if a["outcome"] == "transient"]
    assert statuses == [502 if s == "error" else 429 for s in script]
    data = laura.records()
    assert len(data["candidates"]) == 1 and len(data["applications"]) == 1


@pytest.mark.slow
async def test_kill_9_mid_delivery_delivers_once(make_relay: Callable[..., Relay], laura: Emulator) -> None:
    """The worker dies after Laura stored the application but before the relay checkpointed it;
    the re-run looks the application up instead of creating a second one."""
    relay = make_relay({"laura": connection_table("laura", laura.url)}, job_timeout_s=4.0)
    laura.faults(script=["timeout_after"], stall_s=30, path_regex="/applications$", methods=["POST"])
    worker = relay.spawn_worker()
    created = await accepted(relay, payload())
    await until(lambda: len(laura.records()["applications"]) == 1, within_s=20)
    relay.kill(worker)
    laura.faults()  # clear
    assert (await relay.delivery(created["id"]))["status"] == "delivering"
    relay.spawn_worker()
    delivery = await relay.wait_for(created["id"], "delivered", timeout=60)
    data = laura.records()
    assert len(data["candidates"]) == 1 and len(data["applications"]) == 1
    assert delivery["checkpoints"]["application"] == str(data["applications"][0]["id"])


async def test_closed_job_is_refused_at_intake_with_ats_job_closed(
    make_relay: Callable[..., Relay], laura: Emulator
) -> None:
    relay = relay_for(make_relay, laura)
    response = await relay.post(payload(job_id="103", answers=[]))
    assert response.status_code == 422 and response.json()["code"] == "ATS.JOB_CLOSED", response.text
    assert await relay.queued_jobs() == 0


async def test_wrong_token_pauses_the_connection_without_spending_attempts(
    make_relay: Callable[..., Relay], laura: Emulator
) -> None:
    relay = make_relay({"laura": connection_table("laura", laura.url, _secret="wrong-token")})
    await relay.start_worker()
    created = await accepted(relay, payload())
    record = await relay.wait_for(created["id"], "paused")
    assert record["failed_attempts"] == 0 and record["last_error"]["http_status"] == 401
    assert laura.records()["candidates"] == []
