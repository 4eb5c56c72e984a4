"""OTYS screening answers end to end: answers built only from the connector's `job_questions`
(Kombo's shapes, read from the OWS emulator over HTTP), posted to the relay, checked at intake,
delivered by the worker, and found in OTYS where it keeps them (candidate fields, the
procedure's KillerQuestions, documents of the question's type)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from app.core.catalog import ScreeningQuestion
from connectors import connector_class
from connectors.base import ConnectionSpec
from connectors.otys import OtysConnector, OtysSettings
from tests.support.builders import PDF_BYTES, b64, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay

JOB = "a1b2c3d4e5f60718293a4b5c6d7e8f90"


async def questions_of(otys: Emulator, ats_http: httpx.AsyncClient) -> list[ScreeningQuestion]:
    spec = ConnectionSpec(
        id="acme-otys", connector="otys", base_url=otys.url, credentials="sandbox", settings=OtysSettings()
    )
    connector = connector_class("otys")(spec, ats_http)
    assert isinstance(connector, OtysConnector)
    try:
        return await connector.job_questions(JOB)
    finally:
        await connector.close()


def pdf(qid: str) -> bytes:
    return PDF_BYTES + qid.encode()  # one file per question (the same bytes are one document)


def answer_for(q: ScreeningQuestion) -> Any:
    ids = [o.id for o in q.format.options or []]
    return {
        "TEXT": "me@example.nl" if q.format.display_type == "EMAIL" else f"answer {q.id}",
        "DATE": "2027-04-01",
        "BOOLEAN": False,
        "SINGLE_SELECT": ids[0] if ids else None,
        "MULTI_SELECT": ids[-2:],
        "FILE": {"name": f"q{q.id}.pdf", "content_type": "application/pdf", "data": b64(pdf(q.id))},
    }[q.format.type]


def payload(answers: list[dict[str, Any]], email: str = "noor@example.nl") -> dict[str, Any]:
    return {
        "connection_id": "acme-otys",
        "candidate": {"first_name": "Noor", "last_name": "Bakker", "email_address": email},
        "application": {"job_id": JOB},
        "screening_question_answers": answers,
    }


async def test_answers_from_the_read_model_land_in_otys(
    make_relay: Callable[..., Relay], otys: Emulator, ats_http: httpx.AsyncClient
) -> None:
    questions = await questions_of(otys, ats_http)
    answers = [{"question_id": q.id, "answer": answer_for(q)} for q in questions]
    relay = make_relay({"acme-otys": connection_table("otys", otys.url, timeout_s=3)})
    response = await relay.post(payload(answers))
    assert response.status_code == 202, response.text
    await relay.start_worker()
    await relay.wait_for(str(response.json()["id"]), "delivered")
    rec = otys.records()
    [candidate] = rec["candidates"]
    assert candidate["extraInfo1"] == "answer 102" and candidate["availableAt"] == "2027-04-01 00:00:00"
    assert candidate["matchCriteria_1"] == {"11": 1} and candidate["matchCriteria_2"] == {"21": 1, "22": 1}
    assert candidate["matchCriteria_3"] == {"41": 1} and candidate["extraInfo3"] == "31"
    assert candidate["driversLicence"] is False and candidate["extraInfo4"] == "52,53"
    [procedure] = rec["procedures"]
    assert procedure["KillerQuestions"] == ["answer 101"]
    docs = {d["fileName"]: d for d in rec["documents"]}
    assert (docs["q105.pdf"]["typeId"], docs["q113.pdf"]["typeId"]) == (1, 201)
    assert {name: d["fileSize"] for name, d in docs.items()} == {
        "q105.pdf": len(pdf("105")),
        "q113.pdf": len(pdf("113")),
    }


async def test_a_wrong_answer_is_refused_at_intake_with_the_question_named(
    make_relay: Callable[..., Relay], otys: Emulator, ats_http: httpx.AsyncClient
) -> None:
    questions = {q.id: q for q in await questions_of(otys, ats_http)}
    answers = [{"question_id": qid, "answer": answer_for(q)} for qid, q in questions.items() if qid != "109"]
    answers[[a["question_id"] for a in answers].index("106")]["answer"] = "99"  # not an option id
    relay = make_relay({"acme-otys": connection_table("otys", otys.url, timeout_s=3)})
    response = await relay.post(payload(answers))
    assert response.status_code == 422, response.text
    detail = response.text
    assert "question 106" in detail and "question 109" in detail  # wrong option, required left out
    assert await relay.queued_jobs() == 0
    assert otys.records()["candidates"] == []
