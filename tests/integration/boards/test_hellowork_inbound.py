"""HelloWork reception: the API key (constant time, the header a setting), HelloWork's JSON with
every question type into the Factorial and Laura emulators through a real worker, resends, and
refusals as problem+json."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from connectors import connector_class
from connectors.base import ConnectionSpec
from connectors.otys import OtysSettings
from connectors.sandbox.flatchr import COMPANY_ID as FLATCHR_COMPANY
from tests.support.boards import HELLOWORK_KEY, hellowork_payload, post_hellowork
from tests.support.builders import PDF_BYTES, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay


@pytest.fixture
def relay(
    make_relay: Any, factorial: Emulator, laura: Emulator, flatchr: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Relay:
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
            "paris": connection_table(
                "flatchr", flatchr.url, company_id=FLATCHR_COMPANY, hellowork_secret_env="TEST_HELLOWORK_KEY"
            ),
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


async def test_every_question_type_lands_in_flatchr(relay: Relay, flatchr: Emulator) -> None:
    await relay.start_worker()
    questions = [
        {"id": "q7Hd2LmQx9aB3cTe", "question": "Pourquoi nous ?", "type": "textarea", "answer": "L'équipe"},
        {"id": "q2Kp8ZrW4nYv6JsU", "question": "Permis B ?", "type": "boolean", "answer": True},
        {"id": "q5Fg1HjK3lMn7PqR", "question": "Depuis quand ?", "type": "date", "answer": "2019-06-30"},
        {"id": "q9Wx4EcR6tYu2IoP", "question": "Ville", "type": "select", "answer": "Lyon"},
        {"id": "q3As5DfG7hJk9LzX", "question": "Langages", "type": "multiselect", "answer": ["Python", "SQL"]},
        {"id": "q8Cv1BnM3qWe5RtY", "question": "Années", "type": "number", "answer": 7},
    ]
    payload = hellowork_payload("hw-paris-1", job_id="Vq5r6pYxam9AmMvP", screenerQuestions=questions)
    response = await post_hellowork(relay, payload, connection="paris")
    assert response.status_code == 202, response.text
    await relay.wait_for(response.json()["id"], "delivered")
    [applicant] = flatchr.records()["applicants"]
    assert {a["question_id"]: a["value"] for a in applicant["answers"]} == {
        "q7Hd2LmQx9aB3cTe": "L'équipe",
        "q2Kp8ZrW4nYv6JsU": "Oui",
        "q5Fg1HjK3lMn7PqR": "2019-06-30",
        "q9Wx4EcR6tYu2IoP": "Lyon",
        "q3As5DfG7hJk9LzX": "Python;SQL",
        "q8Cv1BnM3qWe5RtY": "7",
    }
    [cv] = flatchr.records()["files"]
    assert cv["sha256"] == hashlib.sha256(PDF_BYTES).hexdigest()


HW_TYPES = {
    "TEXT": "text",
    "DATE": "date",
    "BOOLEAN": "boolean",
    "SINGLE_SELECT": "select",
    "MULTI_SELECT": "multiselect",
}


async def test_typed_answers_land_in_otys(
    make_relay: Any, otys: Emulator, ats_http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vacancy whose questions are all of types HelloWork has (its format carries no file
    answers), built from OTYS's read model as HelloWork would show them."""
    monkeypatch.setenv("TEST_HELLOWORK_KEY", HELLOWORK_KEY)
    job = "b2c3d4e5f60718293a4b5c6d7e8f90a1"
    for body in (
        {"id": "301", "question": "Years of experience", "type": "textField", "fieldName": "extraInfo1"},
        {"id": "302", "question": "Start date", "type": "dateSelect", "fieldName": "availableAt"},
        {
            "id": "303",
            "question": "Preferred region",
            "type": "select",
            "fieldName": "matchCriteria_1",
            "answers": [["11", "North"], ["12", "South"]],
        },
        {
            "id": "304",
            "question": "Languages",
            "type": "multiSelect",
            "fieldName": "matchCriteria_2",
            "answers": [["21", "Dutch"], ["22", "English"]],
        },
        {"id": "305", "question": "Driving licence", "type": "checkbox", "fieldName": "driversLicence"},
    ):
        otys.http.post(f"/_sandbox/otys/vacancies/{job}/questions", json=body).raise_for_status()
    spec = ConnectionSpec(id="nl", connector="otys", base_url=otys.url, credentials="sandbox", settings=OtysSettings())
    connector = connector_class("otys")(spec, ats_http)
    try:
        questions = await connector.job_questions(job)
    finally:
        await connector.close()
    screener = []
    for q in questions:
        kind = HW_TYPES[q.format.type]
        options = [{"value": o.id, "label": o.name} for o in q.format.options or []]
        answer: Any = {
            "text": "8",
            "date": "2027-04-01",
            "boolean": True,
            "select": options[-1]["value"] if options else None,
            "multiselect": [o["value"] for o in options],
        }[kind]
        screener.append({"id": q.id, "question": q.title, "type": kind, "answer": answer, "options": options})
    assert sorted(item["type"] for item in screener) == ["boolean", "date", "multiselect", "select", "text"]
    relay = make_relay({"nl": connection_table("otys", otys.url, hellowork_secret_env="TEST_HELLOWORK_KEY")})
    await relay.start_worker()
    payload = hellowork_payload("hw-nl-1", job_id=job, screenerQuestions=screener)
    response = await post_hellowork(relay, payload, connection="nl")
    assert response.status_code == 202, response.text
    await relay.wait_for(response.json()["id"], "delivered")
    [candidate] = otys.records()["candidates"]
    assert candidate["extraInfo1"] == "8" and candidate["availableAt"] == "2027-04-01 00:00:00"
    assert candidate["matchCriteria_1"] == {"12": 1} and candidate["matchCriteria_2"] == {"21": 1, "22": 1}
    assert candidate["driversLicence"] is True


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
        # float() reads these; msgspec would then store NaN as null, or 2**70 not at all
        ({"screenerQuestions": [{"id": "x", "type": "number", "answer": "nan"}]}, 422, INVALID, "[0].answer"),
        ({"screenerQuestions": [{"id": "x", "type": "number", "answer": "1e400"}]}, 422, INVALID, "[0].answer"),
        ({"screenerQuestions": [{"id": "x", "type": "number", "answer": "1_000"}]}, 422, INVALID, "[0].answer"),
        ({"screenerQuestions": [{"id": "x", "type": "number", "answer": 2**70}]}, 422, INVALID, "[0].answer"),
        # "1,500": 1500 to an English reader, 1.5 to a French one; neither is guessed
        ({"screenerQuestions": [{"id": "x", "type": "number", "answer": "1,500"}]}, 422, INVALID, "[0].answer"),
        ({"applicant": {"firstName": "A", "lastName": "B", "email": "not-an-email"}}, 422, INVALID, "applicant.email"),
        ({"applicant": {"firstName": "A", "lastName": "B", "email": 7}}, 422, INVALID, "applicant.email"),  # a type
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
    assert any(field in error["field"] for error in problem["errors"]), problem  # named, not only in the detail
    assert await relay.redis.keys("ar:d:*") == []


async def test_more_questions_than_the_canonical_cap_are_refused_before_mapping(relay: Relay) -> None:
    """Each unmapped question cost a warning: 225,000 of them were a 202 after the event loop was
    held for seconds (a probe of the running service). Capped as the canonical API's answers."""
    questions = [{"id": f"q{n}", "type": "text", "answer": "x"} for n in range(301)]
    response = await post_hellowork(relay, {**hellowork_payload(), "screenerQuestions": questions})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "PLATFORM.LIMIT_EXCEEDED" and problem["errors"][0]["field"] == "screenerQuestions"
    assert await relay.redis.keys("ar:d:*") == []


async def test_a_resume_file_without_bytes_is_refused_and_no_file_is_no_cv(relay: Relay) -> None:
    """An empty resume.file.data was a 202 with the CV silently gone (a probe)."""
    payload = hellowork_payload("hw-empty")
    payload["resume"]["file"]["data"] = ""
    response = await post_hellowork(relay, payload)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "FILE.EMPTY" and problem["errors"][0]["field"] == "resume.file.data"
    assert await relay.redis.keys("ar:d:*") == []
    payload["resume"] = {"file": None}  # no file at all: an application without a CV
    response = await post_hellowork(relay, payload)
    assert response.status_code == 202, response.text


async def test_an_application_id_reused_with_another_body_names_application_id(relay: Relay) -> None:
    """HelloWork's id is the key: its reuse for another candidate names it, not a header never sent."""
    assert (await post_hellowork(relay, hellowork_payload("hw-same"))).status_code == 202
    other = hellowork_payload("hw-same")
    other["applicant"] = {**other["applicant"], "email": "someone-else@example.org"}
    response = await post_hellowork(relay, other)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "PLATFORM.IDEMPOTENCY_KEY_REUSED"
    assert [error["field"] for error in problem["errors"]] == ["applicationId"]


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


@pytest.mark.parametrize(
    "url",
    [
        "https://ats-partner.hellowork.com:99999/v1/applications/hw-bad/status",
        "https://[zz]/v1/applications/hw-bad/status",
        "https://" + "a" * 300 + ".com/status",
        "https://xn--a.xn--/status",
    ],
    ids=["port out of range", "bracketed non-IP host", "label over 63", "bad punycode"],
)
async def test_a_status_url_no_request_can_be_sent_to_is_not_kept(relay: Relay, url: str) -> None:
    """Those crashed the guard's check (a 500) or would have crashed the status push: refused like
    any statusApiUrl the guard refuses (docs/boards.md), the rebuilt URL kept instead."""
    response = await post_hellowork(relay, hellowork_payload("hw-bad", statusApiUrl=url))
    assert response.status_code == 202, response.text
    [warning] = [w for w in response.json()["warnings"] if w["code"] == "status_url_refused"]
    assert "statusApiUrl not used" in warning["message"]
    context = await relay.redis.get(f"ar:board:ctx:{response.json()['id']}")
    assert context is not None and url.encode() not in context
    assert b"https://ats-partner.hellowork.com/v1/applications/hw-bad/status" in context
