"""HelloWork reception: the API key (constant time, the header a setting), HelloWork's JSON with
every question type into the Factorial and Laura emulators through a real worker, resends, and
refusals as problem+json."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from tests.support.boards import HELLOWORK_KEY, hellowork_payload, post_hellowork
from tests.support.builders import PDF_BYTES, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator, laura: Emulator, monkeypatch: pytest.MonkeyPatch) -> Relay:
    monkeypatch.setenv("TEST_HELLOWORK_KEY", HELLOWORK_KEY)
    return make_relay(
        {
            "acme": connection_table(
                "factorial", factorial.url, hellowork_secret_env="TEST_HELLOWORK_KEY", hellowork_questions={}
            ),
            "nordic": connection_table(
                "laura", laura.url, hellowork_secret_env="TEST_HELLOWORK_KEY", hellowork_key_header="X-HW-Key"
            ),
            "nokey": connection_table("factorial", factorial.url, hellowork_secret_env="TEST_UNSET_HW_KEY"),
        }
    )


async def test_an_application_lands_in_factorial_with_typed_answers(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    response = await post_hellowork(relay, hellowork_payload())
    assert response.status_code == 202, response.text
    delivery = await relay.wait_for(response.json()["id"], "delivered")
    records = factorial.records()
    [candidate] = records["candidates"]
    assert (candidate["first_name"], candidate["last_name"]) == ("Élodie", "Martin-Dupré")
    assert candidate["phone_number"] == "+33 6 12 34 56 78"
    answers = {a["ats_question_id"]: a["value"] for a in records["answers"]}
    # by id (3001, 3004), by question text (salary, permit); the select's value became its label
    assert answers == {"3001": "Le relais.", "3002": "42000", "3003": "Yes", "3004": "Python, Go"}
    [cv] = records["files"]
    assert cv["filename"] == "CV Élodie.pdf" and cv["sha256"] == hashlib.sha256(PDF_BYTES).hexdigest()
    assert (delivery["board"], delivery["channel"], delivery["board_application_id"]) == (
        "hellowork",
        "hellowork",
        "hw-1001",
    )


async def test_every_question_type_lands_in_laura(relay: Relay, laura: Emulator) -> None:
    await relay.start_worker()
    questions = [
        {"id": "501", "question": "Driving licence?", "type": "boolean", "answer": True},
        {
            "id": "502",
            "question": "Licence classes",
            "type": "multiselect",
            "answer": ["1", "2"],
            "options": [{"value": "1", "label": "B"}, {"value": "2", "label": "C"}],
        },
        {"id": "503", "question": "Location", "type": "select", "answer": "Tampere", "options": []},
        {"id": "504", "question": "Why Tampere?", "type": "text", "answer": "Family"},
        {"id": "505", "question": "Years", "type": "number", "answer": "6"},
        {"id": "506", "question": "Start", "type": "date", "answer": "2027-02-01"},
        {"id": "507", "question": "Anything else?", "type": "textarea", "answer": "Merci."},
    ]
    payload = hellowork_payload("hw-laura-1", job_id="101", resume=None, screenerQuestions=questions)
    response = await post_hellowork(relay, payload, connection="nordic", header="X-HW-Key")
    assert response.status_code == 202, response.text
    await relay.wait_for(response.json()["id"], "delivered")
    [application] = laura.records()["applications"]
    assert {a["question_id"]: a["value"] for a in application["screening_question_answers"]} == {
        501: True,
        502: [1, 2],
        503: 12,  # matched by the option's label
        504: "Family",
        505: 6,
        506: "2027-02-01",
        507: "Merci.",
    }


async def test_the_key_is_checked_and_a_resend_is_the_same_delivery(relay: Relay) -> None:
    wrong = await post_hellowork(relay, hellowork_payload(), key="not-the-key")
    assert wrong.status_code == 401 and wrong.headers["content-type"].startswith("application/problem+json")
    assert wrong.json()["code"] == "PLATFORM.AUTHENTICATION_INVALID"
    missing = await post_hellowork(relay, hellowork_payload(), key=None)
    assert missing.status_code == 401
    other_header = await post_hellowork(relay, hellowork_payload(), connection="nordic")  # X-Api-Key there: wrong
    assert other_header.status_code == 401
    unconfigured = await post_hellowork(relay, hellowork_payload(), connection="nokey")
    assert unconfigured.status_code == 404 and unconfigured.json()["code"] == "PLATFORM.INTEGRATION_NOT_FOUND"
    assert await relay.redis.keys("ar:d:*") == []

    first = await post_hellowork(relay, hellowork_payload())
    again = await post_hellowork(relay, hellowork_payload())
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again.json()["duplicate"] is True
    assert await relay.queued_jobs() == 1


INVALID = "PLATFORM.INPUT_INVALID"


@pytest.mark.parametrize(
    ("change", "status", "code", "field"),
    [
        ({"applicationId": None}, 400, INVALID, "applicationId"),
        ({"applicant": {"firstName": "A", "lastName": "B"}}, 400, INVALID, "applicant.email"),
        ({"job": {"jobAtsUrl": "https://x.example"}}, 400, INVALID, "job.jobId"),
        ({"job": {"jobId": "9999"}}, 404, "ATS.JOB_NOT_FOUND", "job.jobId"),
        ({"job": {"jobId": "2003"}}, 410, "ATS.JOB_CLOSED", "job.jobId"),
        ({"screenerQuestions": [{"id": "x", "type": "date", "answer": "01/02/2027"}]}, 422, INVALID, "[0].answer"),
        ({"screenerQuestions": [{"id": "x", "type": "colour", "answer": "red"}]}, 422, INVALID, "[0].type"),
        ({"applicant": {"firstName": "A", "lastName": "B", "email": "not-an-email"}}, 422, INVALID, "applicant.email"),
    ],
)
async def test_refusals_name_hellowork_fields(
    relay: Relay, change: dict[str, Any], status: int, code: str, field: str
) -> None:
    payload = {**hellowork_payload(), **change}
    response = await post_hellowork(relay, payload)
    assert response.status_code == status, response.text
    problem = response.json()
    assert problem["code"] == code and field in response.text
    assert await relay.redis.keys("ar:d:*") == []


async def test_malformed_json_is_a_400(relay: Relay) -> None:
    response = await relay.client.post(
        "/inbound/hellowork/acme", content=b"{nope", headers={"X-Api-Key": HELLOWORK_KEY}
    )
    assert response.status_code == 400 and response.json()["code"] == "PLATFORM.INPUT_INVALID"


async def test_a_status_url_off_hellowork_is_not_kept(relay: Relay) -> None:
    payload = hellowork_payload("hw-ssrf", statusApiUrl="https://169.254.169.254/latest/meta-data")
    response = await post_hellowork(relay, payload)
    assert response.status_code == 202, response.text
    assert any(w["code"] == "status_url_refused" for w in response.json()["warnings"])
    context = await relay.redis.get(f"ar:board:ctx:{response.json()['id']}")
    assert context is not None and b"169.254" not in context
    assert b"https://ats-partner.hellowork.com/v1/applications/hw-ssrf/status" in context
