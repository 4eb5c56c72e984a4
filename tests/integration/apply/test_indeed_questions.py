"""Indeed's screener questions (docs/apply-pages.md): the job's questions in Indeed Apply's JSON,
public, cached with ETag/Last-Modified; an Indeed application answering by those ids lands every
answer in the ATS emulator typed as the apply page's do."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.apply import CASES, Case, apply_connection, held
from tests.support.emulators import Emulator, EmulatorFactory
from tests.support.harness import Relay
from tests.support.inbound import inbound_env, indeed_payload, post_indeed

INDEED_TYPES = {"text", "textarea", "select", "multiselect", "date", "file", "information"}


def indeed_answers(case: Case, questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What Indeed posts back for `questions` when the candidate answers as in the page's case."""
    out = []
    for question in questions:
        qid = question["id"]
        if question["type"] == "file":
            entry = case.files.get(f"question_{qid}")
            if entry is None:
                continue
            name, data, ctype = entry
            answer: Any = {"fileName": name, "contentType": ctype, "data": base64.b64encode(data).decode()}
        else:
            given = case.answers.get(f"question_{qid}", case.answers.get(f"question_{qid}[]"))
            if given is None:
                continue
            labels = {o["value"]: o["label"] for o in question.get("options", [])}
            if question["type"] == "select":
                answer = {"value": given, "label": labels[given]}
            elif question["type"] == "multiselect":
                answer = [{"value": v, "label": labels[v]} for v in given]
            else:
                answer = given
        out.append({"question": question, "answer": answer})
    return out


async def test_the_document_is_the_jobs_questions_by_ats_ids(case: Case, relay_for: Callable[..., Relay]) -> None:
    relay = relay_for()
    response = await relay.client.get(f"/inbound/indeed/acme/questions/{case.job_id}")  # no credentials
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["schemaVersion"].startswith("1.")
    questions = document["screenerQuestions"]["questions"]
    read = await relay.client.get(f"/v1/connections/acme/jobs/{case.job_id}/screening-questions", headers=relay.admin)
    ats = {q["id"]: q for q in read.json()["data"]}
    assert [q["id"] for q in questions] == [q["id"] for q in read.json()["data"] if q["format"]["type"] != "UNKNOWN"]
    for question in questions:
        assert question["type"] in INDEED_TYPES
        source = ats[question["id"]]
        assert question["question"] == source["title"] and question.get("required", False) == source["required"]
        if source["format"]["type"] in ("SINGLE_SELECT", "MULTI_SELECT"):
            assert question["options"] == [{"value": o["id"], "label": o["name"]} for o in source["format"]["options"]]
        if source["precondition_question_id"]:
            assert question["condition"]["id"] == source["precondition_question_id"]
        if source["format"].get("max_length"):
            assert question["limit"] == source["format"]["max_length"]
    etag, modified = response.headers["etag"], response.headers["last-modified"]
    assert response.headers["cache-control"].startswith("public, max-age=")
    again = await relay.client.get(f"/inbound/indeed/acme/questions/{case.job_id}", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""
    since = await relay.client.get(
        f"/inbound/indeed/acme/questions/{case.job_id}", headers={"if-modified-since": modified}
    )
    assert since.status_code == 304
    stale = await relay.client.get(f"/inbound/indeed/acme/questions/{case.job_id}", headers={"if-none-match": '"x"'})
    assert stale.status_code == 200 and stale.json() == document


async def test_an_indeed_application_answering_by_those_ids_lands_typed_in_the_ats(
    case: Case, relay_for: Callable[..., Relay], served: Emulator
) -> None:
    relay = relay_for()
    document = (await relay.client.get(f"/inbound/indeed/acme/questions/{case.job_id}")).json()
    payload = indeed_payload()
    payload["job"]["jobId"] = case.job_id
    payload["screenerQuestionsAndAnswers"] = {
        "schemaVersion": document["schemaVersion"],
        "questionsAndAnswers": indeed_answers(case, document["screenerQuestions"]["questions"]),
    }
    if case.name == "laura":  # Laura takes no files
        del payload["applicant"]["resume"], payload["applicant"]["coverletter"]
    response = await post_indeed(relay, payload)
    assert response.status_code == 202, response.text
    delivery = await relay.wait_for(response.json()["id"], "queued")
    assert not [w for w in delivery["warnings"] if w["code"] == "answer_unmapped"]
    await relay.start_worker()
    await relay.wait_for(response.json()["id"], "delivered")
    assert held(case.name, served.records()) == case.in_ats


async def test_unknown_jobs_and_connections_without_indeed_are_404_problems(relay_for: Callable[..., Relay]) -> None:
    relay = relay_for()
    missing = await relay.client.get("/inbound/indeed/acme/questions/nope-404")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    unknown = await relay.client.get("/inbound/indeed/nope/questions/1")
    assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")


async def test_with_an_indeed_jobs_mapping_only_mapped_jobs_are_served_by_either_id(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbound_env(monkeypatch)
    table = {**apply_connection(CASES["factorial"], emulator("factorial").url), "indeed_jobs": {"REQ-1": "2001"}}
    relay = make_relay({"acme": table})
    by_indeed = await relay.client.get("/inbound/indeed/acme/questions/REQ-1")
    by_ats = await relay.client.get("/inbound/indeed/acme/questions/2001")
    assert by_indeed.status_code == by_ats.status_code == 200 and by_indeed.json() == by_ats.json()
    assert [q["id"] for q in by_ats.json()["screenerQuestions"]["questions"]] == [
        "3001",
        "3002",
        "3003",
        "3004",
        "3005",
    ]
    other = await relay.client.get("/inbound/indeed/acme/questions/2002")  # a job of the ATS, not for Indeed
    assert other.status_code == 404
