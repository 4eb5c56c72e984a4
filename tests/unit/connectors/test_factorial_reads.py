"""The Factorial connector's read models (jobs, questions, stages, sources in Kombo's shapes)
against its emulator over HTTP, and answers built only from those reads landing as Factorial
stores them (docs/connectors/factorial.md, "Read models")."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from app.core.catalog import JobQuery, ScreeningQuestion
from app.core.model import Candidate, JobRef, Origin, StoredAnswer, StoredApplication
from connectors.base import ConnectionSpec, PermanentError, StepContext
from connectors.factorial import FactorialConnector, FactorialSettings, option_id
from tests.support.catalog import every_job
from tests.support.emulators import Emulator

PREFIX = "/api/2026-07-01/resources/"


def make(factorial: Emulator, http: httpx.AsyncClient) -> FactorialConnector:
    return FactorialConnector(ConnectionSpec("acme", "factorial", factorial.url, "sandbox", FactorialSettings()), http)


async def test_list_jobs_pages_through_factorial_pagination(factorial: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(factorial, ats_http)
    jobs, pages = await every_job(connector, 25)
    ids = [j.id for j in jobs]
    postings = factorial.records()["job_postings"]
    assert len(postings) >= 60 and sorted(ids, key=int) == sorted((p["id"] for p in postings), key=int)
    assert pages == 3  # 63 postings, 25 a page
    calls = factorial.records()["calls"]
    assert calls[f"GET {PREFIX}ats/job_postings"] == 3  # one ATS call per page, never the whole list
    first = (await connector.list_jobs(JobQuery(page_size=5))).jobs[0]
    assert first.id == "2001" and first.status == "OPEN" and first.visibility == "PUBLIC"
    assert first.post_url == "https://example.factorialhr.com/job_posting/2001"
    assert first.remote_data is not None and first.remote_data["title"] == "Backend Engineer"


async def test_status_filter_is_factorials_own(factorial: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(factorial, ats_http)
    by_status = {p["id"]: p["status"] for p in factorial.records()["job_postings"]}
    expected = {
        "OPEN": {"published", "unlisted"},
        "DRAFT": {"draft"},
        "ARCHIVED": {"archived", "deleted"},
        "CLOSED": {"cancelled"},
    }
    for status, remote in expected.items():
        jobs, _ = await every_job(connector, 25, status=status)
        ids = [j.id for j in jobs]
        assert set(ids) == {i for i, s in by_status.items() if s in remote}, status
    calls = factorial.records()["calls"][f"GET {PREFIX}ats/job_postings"]
    assert calls >= 6  # server-side: one walk per Factorial status
    visibilities = {j.visibility for j in (await connector.list_jobs(JobQuery(status="OPEN", cursor="1:"))).jobs}
    assert visibilities == {"UNLISTED"}  # the second walk of OPEN: unlisted postings
    async with httpx.AsyncClient(base_url=factorial.url, headers={"x-api-key": "sandbox"}) as raw:
        refused = await raw.get(f"{PREFIX}ats/job_postings", params={"status": "open"})
    assert refused.status_code == 422  # Factorial's statuses only


async def test_name_and_updated_after_filters(factorial: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(factorial, ats_http)
    jobs, _ = await every_job(connector, 25, name_contains="nurse")
    ids = [j.id for j in jobs]
    titles = {p["id"]: p["title"] for p in factorial.records()["job_postings"]}
    assert ids and set(ids) == {i for i, t in titles.items() if "nurse" in t.lower()}
    since = dt.datetime(2026, 2, 15, tzinfo=dt.UTC)
    jobs, _ = await every_job(connector, 25, updated_after=since)
    ids = [j.id for j in jobs]
    later = {
        p["id"]
        for p in factorial.records()["job_postings"]
        if max(p["created_at"], p.get("published_at") or "") > "2026-02-15T00:00:00"
    }
    assert ids and set(ids) == later
    with pytest.raises(PermanentError):
        await connector.list_jobs(JobQuery(cursor="x:1"))


async def test_one_job_with_every_question_type_and_its_phases(
    factorial: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make(factorial, ats_http)
    job = await connector.get_job("2001")
    assert job is not None and job.name == "Backend Engineer" and job.status == "OPEN"
    formats = {q.remote_id: q.format for q in job.screening_questions}
    assert {f.type for f in formats.values()} == {"TEXT", "SINGLE_SELECT", "MULTI_SELECT", "FILE"}
    assert formats["3001"].display_type == "MULTI_LINE" and formats["3002"].display_type == "SINGLE_LINE"
    assert formats["3003"].options is not None
    assert [(o.id, o.name) for o in formats["3003"].options] == [(option_id("Yes"), "Yes"), (option_id("No"), "No")]
    assert [q.index for q in job.screening_questions] == sorted(q.index or 0 for q in job.screening_questions)
    assert [s.name for s in job.stages] == ["New", "Screening", "Interview", "Offer", "Hired"]
    assert job.stages[1].id == "200102" and job.stages[1].index == 1
    before = factorial.records()["calls"]
    again = await connector.job_questions("2001")
    assert again == job.screening_questions  # option ids stable across calls
    after = factorial.records()["calls"]
    assert after[f"GET {PREFIX}ats/questions"] == before[f"GET {PREFIX}ats/questions"] + 1
    assert after[f"GET {PREFIX}ats/job_postings/2001"] == before[f"GET {PREFIX}ats/job_postings/2001"]  # one call
    assert await connector.get_job("999999") is None
    with pytest.raises(PermanentError) as missing:
        await connector.job_questions("999999")
    assert missing.value.status == 404


async def test_stages_and_sources(factorial: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(factorial, ats_http)
    company = await connector.list_stages()
    assert [s.name for s in company] == ["New", "Screening", "Interview", "Assessment", "Offer", "Hired"]
    assert [s.id for s in await connector.list_stages("2002")] == [f"2002{i:02d}" for i in range(1, 6)]
    sources = {s.id: s.name for s in await connector.list_sources()}
    assert sources["4002"] == "Indeed" and len(sources) == 5
    assert await connector.job_status("2001") == "open"
    assert await connector.job_status("2003") == "closed"
    assert await connector.job_status("424242") == "missing"


def _answer_for(question: ScreeningQuestion) -> Any:
    """A canonical answer built from the read model only."""
    options = question.format.options or []
    if question.format.type == "SINGLE_SELECT":
        return options[-1].id
    if question.format.type == "MULTI_SELECT":
        return [options[0].id, options[-1].id]
    return f"answer to {question.title}"


async def test_answers_built_from_the_reads_land_as_factorial_stores_them(
    factorial: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make(factorial, ats_http)
    for job_id in ("2001", "2002"):
        questions = [q for q in await connector.job_questions(job_id) if q.format.type != "FILE"]
        app = StoredApplication(
            connection_id="acme",
            candidate=Candidate(first_name="Ana", last_name="Ruiz", email_address=f"ana.{job_id}@example.org"),
            application=JobRef(job_id=job_id),
            origin=Origin(channel="api", received_at=0.0),
            screening_question_answers=[StoredAnswer(q.id, _answer_for(q)) for q in questions],
        )
        checkpoints: dict[str, str] = {}

        async def no_file(_: object) -> bytes:
            raise AssertionError("no file")

        ctx = StepContext(application=app, checkpoints=checkpoints, load_attachment=no_file)
        for step in connector.plan(app):
            checkpoints[step.name] = await step.run(ctx)
        stored = {
            a["ats_question_id"]: a
            for a in factorial.records()["answers"]
            if a["ats_application_id"] == checkpoints["application"]
        }
        for q in questions:
            answer = stored[q.id]
            assert isinstance(answer["value"], str)
            names = [o.name for o in q.format.options or []]
            if q.format.type == "SINGLE_SELECT":
                assert answer["value"] == names[-1] and answer["original_question_type"] == "single_choice"
            elif q.format.type == "MULTI_SELECT":
                assert answer["value"] == f"{names[0]}, {names[-1]}"
                assert answer["original_question_type"] == "multiple_choice"
            else:
                assert answer["value"] == f"answer to {q.title}"
                assert answer["original_question_type"] in ("text", "long_text")
        assert len(stored) == len(questions)


async def test_a_file_question_answer_is_a_warning_not_a_write(
    factorial: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make(factorial, ats_http)
    file_question = next(q for q in await connector.job_questions("2001") if q.format.type == "FILE")
    app = StoredApplication(
        connection_id="acme",
        candidate=Candidate(first_name="Ana", last_name="Ruiz", email_address="ana.file@example.org"),
        application=JobRef(job_id="2001"),
        origin=Origin(channel="api", received_at=0.0),
        screening_question_answers=[StoredAnswer(file_question.id, "portfolio.pdf")],
    )
    checkpoints: dict[str, str] = {}

    async def no_file(_: object) -> bytes:
        raise AssertionError("no file")

    ctx = StepContext(application=app, checkpoints=checkpoints, load_attachment=no_file)
    for step in connector.plan(app):
        checkpoints[step.name] = await step.run(ctx)
    assert [w.code for w in ctx.warnings].count("answer_not_supported") == 1
    assert factorial.records()["answers"] == []


async def test_a_question_added_in_factorial_shows_in_the_next_read(
    factorial: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make(factorial, ats_http)
    before = await connector.job_questions("2002")
    added = factorial.http.post(
        "/_sandbox/factorial/questions",
        json={"ats_job_posting_id": "2002", "label": "Notice period", "question_type": "text", "position": 99},
    )
    assert added.status_code == 201
    after = await connector.job_questions("2002")
    assert len(after) == len(before) + 1 and after[-1].title == "Notice period"
