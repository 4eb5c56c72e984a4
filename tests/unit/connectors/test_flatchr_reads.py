"""The Flatchr connector's read models (vacancies, questions, columns in Kombo's shapes) against its
emulator over HTTP, and answers built only from those reads landing as Flatchr stores them
(docs/connectors/flatchr.md, "Read models")."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

from app.core.catalog import JobQuery, ScreeningQuestion
from app.core.model import AttachmentRef, Candidate, JobRef, Origin, StoredAnswer, StoredApplication
from connectors.base import ConnectionSpec, PermanentError, StepContext
from connectors.flatchr import FlatchrConnector, FlatchrSettings, json_array_items, option_id
from connectors.sandbox.flatchr import COMPANY_ID
from tests.support.catalog import every_job
from tests.support.emulators import Emulator, EmulatorFactory

PY_JOB, EN_JOB, CLOSED_JOB = "Vq5r6pYxam9AmMvP", "Bx8KqL2mN4pR7sTz", "Zc3Vb6Nm9Qw2Er5T"
Q_LICENSE, Q_SINCE, Q_PORTFOLIO = "q2Kp8ZrW4nYv6JsU", "q5Fg1HjK3lMn7PqR", "q1Er3TyU5iOp7AsD"
CV = b"%PDF-1.4\n% sandbox CV\n" + b"x" * 500
LISTING = f"GET /company/{COMPANY_ID}/vacancies"


@pytest.fixture
def many(emulator: EmulatorFactory) -> Emulator:
    """The Flatchr emulator with 40 more vacancies (43 in all): enough for pages."""
    return emulator("flatchr", extra_vacancies=40)


def make(flatchr: Emulator, http: httpx.AsyncClient) -> FlatchrConnector:
    settings = FlatchrSettings.from_mapping({"company_id": COMPANY_ID})
    return FlatchrConnector(ConnectionSpec("acme-flatchr", "flatchr", flatchr.url, "sandbox", settings), http)


async def test_list_jobs_pages_with_an_offset_cursor(many: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(many, ats_http)
    jobs, pages = await every_job(connector, 10)
    ids = [j.id for j in jobs]
    vacancies = many.records()["vacancies"]
    assert len(vacancies) == 43 and ids == [v["id"] for v in vacancies]
    assert pages == 5 and many.records()["calls"][LISTING] == 5  # one ATS call per page
    first = (await connector.list_jobs(JobQuery(page_size=3))).jobs
    python = first[0]
    assert python.id == PY_JOB and python.name == "Développeur Python H/F" and python.status == "OPEN"
    assert python.visibility == "PUBLIC" and python.job_code == "REF-1001"
    assert python.post_url == f"https://sandbox-corp.flatchr.io/vacancy/{vacancies[0]['slug']}"
    assert python.location is not None and python.location.city == "Paris" and python.location.zip_code == "75002"
    assert python.employment_type == "FULL_TIME" and python.remote_data is not None
    assert first[2].status == "CLOSED" and first[2].visibility is None


async def test_status_is_flatchrs_filter_and_bad_values_are_refused(
    many: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make(many, ats_http)
    by_status = {v["id"]: v["status"] for v in many.records()["vacancies"]}
    for status, remote in (("OPEN", 1), ("CLOSED", 0), ("ARCHIVED", 2)):
        jobs, _ = await every_job(connector, 10, status=status)
        ids = [j.id for j in jobs]
        assert ids and set(ids) == {i for i, s in by_status.items() if s == remote}, status
    assert (await connector.list_jobs(JobQuery(status="DRAFT"))).jobs == []
    refused = many.http.get(f"/company/{COMPANY_ID}/vacancies", params={"status": "open"}, headers=_auth())
    assert refused.status_code == 400 and refused.json()["validation"]["keys"] == ["status"]
    with pytest.raises(PermanentError):
        await connector.list_jobs(JobQuery(cursor="page-2"))


async def test_name_and_updated_after_are_applied_per_page(many: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(many, ats_http)
    vacancies = many.records()["vacancies"]
    jobs, pages = await every_job(connector, 10, name_contains="comptable")
    ids = [j.id for j in jobs]
    assert ids and set(ids) == {v["id"] for v in vacancies if "comptable" in v["title"].lower()}
    assert pages == 5  # the filter is ours: every page is still read
    since = dt.datetime(2026, 2, 20, tzinfo=dt.UTC)
    jobs, _ = await every_job(connector, 10, updated_after=since)
    ids = [j.id for j in jobs]
    assert ids and set(ids) == {v["id"] for v in vacancies if v["updated_at"] > "2026-02-20T00:00:00"}


async def test_one_vacancy_every_question_type_and_the_condition(
    flatchr: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make(flatchr, ats_http)
    job = await connector.get_job(PY_JOB)
    assert job is not None and job.status == "OPEN"
    questions = {q.remote_id: q for q in job.screening_questions}
    raw = {q["id"]: q for q in flatchr.records()["vacancies"][0]["questions"]}
    kinds = {raw[i]["type"]: (q.format.type, q.format.display_type) for i, q in questions.items()}
    assert kinds == {
        "textarea": ("TEXT", "MULTI_LINE"),
        "yesno": ("BOOLEAN", None),
        "date": ("DATE", None),
        "radio": ("SINGLE_SELECT", "RADIO"),
        "checkbox": ("MULTI_SELECT", None),
        "number": ("NUMBER", "FIELD"),
        "text": ("TEXT", "SINGLE_LINE"),
        "file": ("FILE", None),
    }
    assert questions["q7Hd2LmQx9aB3cTe"].format.max_length == 2000
    city = questions["q9Wx4EcR6tYu2IoP"].format.options
    assert city is not None and [(o.id, o.name) for o in city] == [
        (option_id(n), n) for n in ("Paris", "Lyon", "Remote")
    ]
    since = questions[Q_SINCE]
    assert since.precondition_question_id == Q_LICENSE and since.precondition_options == [True] and since.required
    assert [q.index for q in job.screening_questions] == list(range(1, 10))
    assert [s.name for s in job.stages] == ["À traiter", "Pré-qualification RH", "Entretien", "Recruté"]
    assert await connector.job_questions(PY_JOB) == job.screening_questions  # option ids stable
    en = {q.title: q.format for q in await connector.job_questions(EN_JOB)}
    assert en["Do you speak French?"].type == "BOOLEAN" and en["Preferred region"].display_type == "DROPDOWN"
    assert await connector.get_job("NoSuchVacancy01") is None
    with pytest.raises(PermanentError) as missing:
        await connector.job_questions("NoSuchVacancy01")
    assert missing.value.status == 404
    assert await connector.job_status(CLOSED_JOB) == "closed" and await connector.job_status(PY_JOB) == "open"
    assert [s.index for s in await connector.list_stages()] == [1, 2, 3, 4]


def _answers(questions: list[ScreeningQuestion], cv: AttachmentRef) -> list[StoredAnswer]:
    """Canonical answers built from the read model only, each precondition honoured."""
    given: dict[str, Any] = {}
    out = []
    for q in questions:
        if q.precondition_question_id and given.get(q.precondition_question_id) not in (q.precondition_options or []):
            continue
        options = q.format.options or []
        answer: Any = {
            "TEXT": f"réponse {q.index}",
            "BOOLEAN": True,
            "DATE": "2026-03-01",
            "NUMBER": 7,
            "FILE": cv,
        }.get(q.format.type)
        if q.format.type == "SINGLE_SELECT":
            answer = options[-1].id
        if q.format.type == "MULTI_SELECT":
            answer = [options[0].id, options[-1].id]
        given[q.id] = answer
        out.append(StoredAnswer(q.id, answer))
    return out


async def test_answers_built_from_the_reads_land_as_flatchr_stores_them(
    flatchr: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make(flatchr, ats_http)
    questions = await connector.job_questions(PY_JOB)
    cv = AttachmentRef(index=0, name="cv.pdf", type="CV", content_type="application/pdf", size=len(CV))
    cv = msgspec.structs.replace(cv, sha256=hashlib.sha256(CV).hexdigest())
    app = StoredApplication(
        connection_id="acme-flatchr",
        candidate=Candidate(first_name="Jeanne", last_name="Martin", email_address="jeanne@example.fr"),
        application=JobRef(job_id=PY_JOB),
        origin=Origin(channel="api", received_at=time.time()),
        screening_question_answers=_answers(questions, cv),
        attachments=[cv],
    )

    async def load(_: AttachmentRef) -> bytes:
        return CV

    checkpoints: dict[str, str] = {}
    ctx = StepContext(application=app, checkpoints=checkpoints, load_attachment=load)
    for step in connector.plan(app):
        checkpoints[step.name] = await step.run(ctx)
    stored = {a["question_id"]: a["value"] for a in flatchr.records()["applicants"][0]["answers"]}
    by_id = {q.id: q for q in questions}
    expected = {
        "q7Hd2LmQx9aB3cTe": f"réponse {by_id['q7Hd2LmQx9aB3cTe'].index}",
        Q_LICENSE: "Oui",
        Q_SINCE: "2026-03-01",  # the conditional question, its precondition met
        "q9Wx4EcR6tYu2IoP": "Remote",
        "q3As5DfG7hJk9LzX": "Python;SQL",
        "q8Cv1BnM3qWe5RtY": "7",
        "q4Ui6OpA8sDf0GhJ": "2026-03-01",
        "q6Kl8ZxC0vBn2MqW": f"réponse {by_id['q6Kl8ZxC0vBn2MqW'].index}",
    }
    assert stored == expected  # every type but FILE, typed as Flatchr keeps them: strings
    assert any(w.code == "answer_type_unsupported" and Q_PORTFOLIO in w.message for w in ctx.warnings)


async def test_a_question_added_in_flatchr_shows_in_the_next_read(
    flatchr: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make(flatchr, ats_http)
    before = await connector.job_questions(EN_JOB)
    added = flatchr.http.post(
        f"/_sandbox/flatchr/vacancies/{EN_JOB}/questions",
        json={"text": "Notice period", "type": "select", "options": "1 month;3 months"},
    )
    assert added.status_code == 201
    after = await connector.job_questions(EN_JOB)
    assert len(after) == len(before) + 1 and after[-1].format.options is not None
    assert [o.name for o in after[-1].format.options] == ["1 month", "3 months"]
    assert flatchr.records()["calls"][f"GET /vacancy/{EN_JOB}"] == 2


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.mark.parametrize("size", [1, 3, 1000])
async def test_the_streamed_array_splits_on_top_level_commas_only(size: int) -> None:
    items = [{"a": 'x, ] } " [', "b": [1, {"c": "\\"}]}, [], "s,", 3, None]
    body = b" \n" + msgspec.json.encode(items)
    got = [msgspec.json.decode(raw) async for raw in json_array_items(_chunks(body, size))]
    assert got == items
    assert [raw async for raw in json_array_items(_chunks(b"[]", size))] == []
    with pytest.raises(ValueError):
        _ = [raw async for raw in json_array_items(_chunks(b'{"a": 1}', size))]


def _auth() -> dict[str, str]:
    return {"Authorization": "Bearer sandbox"}
