"""The Laura emulator over real HTTP: auth, envelope, seed, duplicate rules, server-side validation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.emulators import Emulator

API = "/api/v1.2"


@pytest.fixture
def api(laura: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=laura.url + API, headers={"Authorization": "Bearer sandbox"}) as client:
        yield client


def records(laura: Emulator) -> dict[str, Any]:
    return httpx.get(laura.url + "/_sandbox/records").json()


def new_candidate(api: httpx.Client, email: str = "aino@example.fi") -> int:
    r = api.post("/candidates", json={"first_name": "Aino", "last_name": "Virtanen", "email": email})
    assert r.status_code == 201
    return r.json()["data"]["id"]


VALID_101 = [
    {"question_id": 501, "value": True},
    {"question_id": 502, "value": [1, 2]},
    {"question_id": 503, "value": 12},
    {"question_id": 504, "value": "Close to family"},
    {"question_id": 505, "value": 4},
]


def test_requires_the_bearer_token(laura: Emulator) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.get(laura.url + API + "/jobs", headers=headers)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "UNAUTHORIZED"


def test_seed_has_stages_and_questions_with_preconditions(api: httpx.Client) -> None:
    stages = api.get("/stages").json()["data"]
    assert [s["global_index"] for s in stages] == list(range(len(stages)))
    jobs = api.get("/jobs").json()
    assert {j["status"] for j in jobs["data"]} == {"open", "closed", "draft", "archived"}
    rows = api.get("/jobs/101/questions").json()["data"]
    kinds = {r["question"]["format"]["type"] for r in rows}
    assert kinds == {"boolean", "multiselect", "select", "text", "number", "date", "textarea"}
    conditional = {
        r["question_id"]: (r["precondition_question_id"], r["precondition_options"])
        for r in rows
        if r["precondition_question_id"]
    }
    assert conditional == {502: (501, ["true"]), 504: (503, ["12"])}
    assert api.get("/jobs/999/questions").status_code == 404


def test_candidate_email_is_unique_case_insensitively(api: httpx.Client, laura: Emulator) -> None:
    cid = new_candidate(api)
    r = api.post("/candidates", json={"first_name": "A", "last_name": "B", "email": "AINO@example.fi"})
    assert r.status_code == 409
    assert r.json()["error"]["existing_id"] == cid
    assert [c["id"] for c in api.get("/candidates", params={"email": "aino@EXAMPLE.fi"}).json()["data"]] == [cid]
    assert len(records(laura)["candidates"]) == 1


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"first_name": "A", "last_name": "B"}, "email is required"),
        ({"first_name": "A", "last_name": "B", "email": "nope"}, "valid address"),
        ({"first_name": "A", "last_name": "B", "email": "a@b.fi", "gender": "MALE"}, "gender"),
        (
            {"first_name": "A", "last_name": "B", "email": "a@b.fi", "address": {"country_code": "fin"}},
            "country_code",
        ),
    ],
)
def test_candidate_validation(api: httpx.Client, body: dict[str, Any], fragment: str) -> None:
    r = api.post("/candidates", json=body)
    assert r.status_code == 422
    assert fragment in r.json()["error"]["message"]


def test_application_with_valid_answers_and_duplicate(api: httpx.Client, laura: Emulator) -> None:
    cid = new_candidate(api)
    r = api.post("/applications", json={"candidate_id": cid, "job_id": 101, "answers": VALID_101})
    assert r.status_code == 201, r.text
    app = r.json()["data"]
    assert app["current_stage_id"] == 1
    again = api.post("/applications", json={"candidate_id": str(cid), "job_id": "101", "answers": VALID_101})
    assert again.status_code == 409
    assert again.json()["error"]["existing_id"] == app["id"]
    assert len(records(laura)["applications"]) == 1


@pytest.mark.parametrize(
    "answers, fragment",
    [
        ([a for a in VALID_101 if a["question_id"] != 505], "question 505 is required"),
        (
            [
                {"question_id": 501, "value": False},
                {"question_id": 502, "value": [1]},
                {"question_id": 503, "value": 11},
                {"question_id": 505, "value": 1},
            ],
            "question 502 is not shown",
        ),
        ([*VALID_101[:3], {"question_id": 505, "value": 2}], "question 504 is required"),
        ([*VALID_101[:4], {"question_id": 505, "value": 99}], "out of range"),
        ([*VALID_101[:2], {"question_id": 503, "value": 77}, *VALID_101[3:]], "one option id"),
        ([*VALID_101, {"question_id": 506, "value": "31.12.2026"}], "YYYY-MM-DD"),
        ([*VALID_101, {"question_id": 999, "value": "x"}], "does not have"),
    ],
)
def test_application_answer_validation(api: httpx.Client, answers: list[dict[str, Any]], fragment: str) -> None:
    cid = new_candidate(api)
    r = api.post("/applications", json={"candidate_id": cid, "job_id": 101, "answers": answers})
    assert r.status_code == 422
    assert fragment in r.json()["error"]["message"]


def test_closed_and_unknown_jobs(api: httpx.Client) -> None:
    cid = new_candidate(api)
    closed = api.post("/applications", json={"candidate_id": cid, "job_id": 103, "answers": []})
    assert closed.status_code == 422 and closed.json()["error"]["code"] == "JOB_CLOSED"
    assert api.post("/applications", json={"candidate_id": cid, "job_id": 9, "answers": []}).status_code == 404


def test_stage_moves_are_recorded_and_idempotent(api: httpx.Client, laura: Emulator) -> None:
    cid = new_candidate(api)
    aid = api.post("/applications", json={"candidate_id": cid, "job_id": 102, "answers": []}).json()["data"]["id"]
    for _ in range(2):
        r = api.put(f"/applications/{aid}/stage", json={"stage_id": 3})
        assert r.status_code == 200 and r.json()["data"]["current_stage_id"] == 3
    assert api.put(f"/applications/{aid}/stage", json={"stage_id": 77}).status_code == 422
    assert api.put("/applications/1/stage", json={"stage_id": 3}).status_code == 404
    assert [(m["from"], m["to"]) for m in records(laura)["stage_moves"]] == [(1, 3)]


def test_reset_restores_the_seed_and_faults_apply(api: httpx.Client, laura: Emulator) -> None:
    new_candidate(api)
    httpx.post(laura.url + "/_sandbox/faults", json={"script": ["rate_limit"], "retry_after": 7})
    r = api.get("/jobs")
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert records(laura)["faults_injected"] == {"rate_limit": 1}
    httpx.post(laura.url + "/_sandbox/reset")
    data = records(laura)
    assert data["candidates"] == [] and len(data["jobs"]) == 65 and data["faults_injected"] == {}


def test_job_listing_pages_and_filters_strictly(api: httpx.Client, laura: Emulator) -> None:
    first = api.get("/jobs", params={"page": 1, "per_page": 30}).json()
    assert first["meta"] == {"page": 1, "per_page": 30, "total": 65} and len(first["data"]) == 30
    last = api.get("/jobs", params={"page": 3, "per_page": 30}).json()
    assert len(last["data"]) == 5
    closed = api.get("/jobs", params={"status": "closed", "per_page": 100}).json()
    assert closed["data"] and {j["status"] for j in closed["data"]} == {"closed"}
    recent = api.get("/jobs", params={"updated_after": "2026-10-20T00:00:00+00:00", "per_page": 100}).json()
    assert recent["data"] and all(j["changed_at"] > "2026-10-20" for j in recent["data"])
    for bad in ({"status": "OPEN"}, {"per_page": 101}, {"page": 0}, {"updated_after": "yesterday"}):
        r = api.get("/jobs", params=bad)
        assert r.status_code == 422 and r.json()["error"]["code"] == "VALIDATION_ERROR"
    assert records(laura)["requests"]["GET /api/v1.2/jobs"] == 8


def test_sandbox_adds_a_question_to_a_job(api: httpx.Client, laura: Emulator) -> None:
    before = api.get("/jobs/102/questions").json()["data"]
    r = httpx.post(
        laura.url + "/_sandbox/laura/jobs/102/questions",
        json={
            "title": "Kielitaito / Languages",
            "format": {"type": "multiselect", "options": [{"id": 7, "label": "fi"}]},
        },
    )
    assert r.status_code == 201
    after = api.get("/jobs/102/questions").json()["data"]
    assert len(after) == len(before) + 1 and after[-1]["question"]["title"] == "Kielitaito / Languages"
    assert httpx.post(laura.url + "/_sandbox/laura/jobs/999/questions", json={}).status_code == 404
