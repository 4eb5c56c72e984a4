"""Laura's read models (Kombo's shapes) against its emulator over real HTTP: the job listing
through Laura's page numbers with each filter, one job with its questions and stages, and answers
built only from `job_questions` landing in Laura typed as it stores them."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx
import pytest

from app.core.catalog import (
    READ_JOBS,
    READ_SCREENING_QUESTIONS,
    READ_SOURCES,
    READ_STAGES,
    JobQuery,
    ScreeningQuestion,
)
from app.core.model import Candidate, JobRef, Origin, StoredAnswer, StoredApplication
from connectors import connector_class
from connectors.base import ConnectionSpec, PermanentError, StepContext
from connectors.laura import LauraConnector, LauraSettings
from tests.support.catalog import every_job
from tests.support.emulators import Emulator

JOBS_PATH = "GET /api/v1.2/jobs"


def make(laura: Emulator, ats_http: httpx.AsyncClient) -> LauraConnector:
    spec = ConnectionSpec(
        id="laura-reads",
        connector="laura",
        base_url=laura.url,
        credentials="sandbox",
        settings=LauraSettings.from_mapping({}),
        timeout_s=5.0,
    )
    connector = connector_class("laura")(spec, ats_http)
    assert isinstance(connector, LauraConnector)
    return connector


def test_capabilities_name_the_reads() -> None:
    reads = LauraConnector.capabilities.reads
    assert {READ_JOBS, READ_SCREENING_QUESTIONS, READ_STAGES} <= reads and READ_SOURCES not in reads


async def test_list_jobs_pages_through_laura(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(laura, ats_http)
    jobs, pages = await every_job(connector, 25)
    assert len(jobs) == 65 and len({j.id for j in jobs}) == 65 and pages == 3
    assert laura.records()["requests"][JOBS_PATH] == 3  # one ATS call per page, never the whole list
    first = next(j for j in jobs if j.id == "101")
    assert (first.status, first.visibility, first.remote_id) == ("OPEN", "PUBLIC", "101")
    assert first.post_url and first.post_url.endswith("jid=101")
    assert first.changed_at == dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC)
    assert first.remote_data and first.remote_data["id"] == 101
    assert {j.status for j in jobs} == {"OPEN", "CLOSED", "DRAFT", "ARCHIVED"}
    assert {j.visibility for j in jobs} == {"PUBLIC", "INTERNAL"}
    # Laura caps per_page at 100: a bigger page_size is asked as 100, never refused
    page = await connector.list_jobs(JobQuery(page_size=250))
    assert len(page.jobs) == 65 and page.next_cursor is None


async def test_list_jobs_filters(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(laura, ats_http)
    everything, _ = await every_job(connector, 100)
    for status in ("OPEN", "CLOSED", "DRAFT", "ARCHIVED"):
        jobs, _ = await every_job(connector, 10, status=status)
        assert jobs and {j.status for j in jobs} == {status}
        assert {j.id for j in jobs} == {j.id for j in everything if j.status == status}
    nurses, _ = await every_job(connector, 10, name_contains="NURSE")
    assert nurses and all("nurse" in j.name.lower() for j in nurses)
    assert {j.id for j in nurses} == {j.id for j in everything if "nurse" in j.name.lower()}
    after = dt.datetime(2026, 10, 20, tzinfo=dt.UTC)
    recent, _ = await every_job(connector, 10, updated_after=after)
    assert recent and all(j.changed_at and j.changed_at > after for j in recent)
    assert {j.id for j in recent} == {j.id for j in everything if j.changed_at and j.changed_at > after}
    both, _ = await every_job(connector, 10, status="OPEN", name_contains="developer")
    assert both and all(j.status == "OPEN" and "developer" in j.name.lower() for j in both)
    with pytest.raises(PermanentError):
        await connector.list_jobs(JobQuery(cursor="../2"))


async def test_get_job_with_questions_of_every_format_and_stages(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(laura, ats_http)
    job = await connector.get_job("101")
    assert job is not None and job.name.endswith("Software Developer")
    assert job.stages[0].name == "Uusi hakemus / New" and [s.index for s in job.stages] == list(range(6))
    q = {x.id: x for x in job.screening_questions}
    assert [x.id for x in job.screening_questions] == ["501", "502", "503", "504", "505", "506", "507"]
    assert [x.index for x in job.screening_questions] == list(range(7))
    assert {x.format.type for x in job.screening_questions} == {
        "BOOLEAN",
        "MULTI_SELECT",
        "SINGLE_SELECT",
        "TEXT",
        "NUMBER",
        "DATE",
    }
    assert q["503"].format.display_type == "DROPDOWN"
    assert [(o.id, o.remote_id, o.name) for o in q["503"].format.options or []][1] == ("12", "12", "Tampere")
    assert (q["504"].format.display_type, q["504"].format.max_length) == ("SINGLE_LINE", 500)
    assert (q["507"].format.display_type, q["507"].format.max_length) == ("MULTI_LINE", 2000)
    assert (q["505"].format.min, q["505"].format.max, q["505"].format.display_type) == (0, 60, "FIELD")
    assert q["502"].precondition_question_id == "501" and q["502"].precondition_options == [True]
    assert q["504"].precondition_question_id == "503" and q["504"].precondition_options == ["12"]
    assert q["501"].required and not q["506"].required
    assert await connector.get_job("999") is None
    assert await connector.job_status("101") == "open"
    assert await connector.job_status("103") == "closed"
    assert await connector.job_status("999") == "missing"
    with pytest.raises(PermanentError) as err:
        await connector.job_questions("999")
    assert err.value.status == 404
    stages = await connector.list_stages("101")
    assert stages == await connector.list_stages() and len(stages) == 6
    with pytest.raises(PermanentError):
        await connector.list_sources()


def canonical_answers(questions: list[ScreeningQuestion]) -> list[StoredAnswer]:
    """Answers from the questions alone, shown ones only, choosing options that open the
    conditional questions (so every format is answered)."""
    wanted: dict[str, set[str]] = {}
    for q in questions:
        if q.precondition_question_id:
            wanted.setdefault(q.precondition_question_id, set()).update(str(o) for o in q.precondition_options or [])
    given: dict[str, Any] = {}
    for q in questions:
        if q.precondition_question_id:
            parent = given.get(q.precondition_question_id)
            tokens = {str(v) for v in (parent if isinstance(parent, list) else [parent])}
            if not tokens & {str(o) for o in q.precondition_options or []}:
                continue
        fmt = q.format
        ids = [o.id for o in fmt.options or []]
        if fmt.type == "TEXT":
            given[q.id] = "x" * min(20, fmt.max_length or 20)
        elif fmt.type == "NUMBER":
            given[q.id] = (fmt.min or 0) + 3
        elif fmt.type == "BOOLEAN":
            given[q.id] = True
        elif fmt.type == "DATE":
            given[q.id] = "2027-01-15"
        elif fmt.type == "SINGLE_SELECT":
            given[q.id] = next((i for i in ids if i in wanted.get(q.id, set())), ids[0])
        elif fmt.type == "MULTI_SELECT":
            given[q.id] = ids[:2]
    return [StoredAnswer(qid, value) for qid, value in given.items()]


async def test_answers_from_job_questions_land_typed(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(laura, ats_http)
    questions = await connector.job_questions("101")
    answers = canonical_answers(questions)
    assert {q.format.type for q in questions if q.id in {a.question_id for a in answers}} == {
        "BOOLEAN",
        "MULTI_SELECT",
        "SINGLE_SELECT",
        "TEXT",
        "NUMBER",
        "DATE",
    }
    app = StoredApplication(
        connection_id="laura-reads",
        candidate=Candidate(first_name="Aino", last_name="Virtanen", email_address="aino.reads@example.fi"),
        application=JobRef(job_id="101"),
        origin=Origin(channel="api", received_at=time.time()),
        screening_question_answers=answers,
    )
    assert await connector.check_answers(app) == []

    async def no_files(ref: Any) -> bytes:
        raise AssertionError("no files")

    ctx = StepContext(application=app, checkpoints={}, load_attachment=no_files)
    checkpoints: dict[str, str] = {}
    for step in connector.plan(app):
        ctx.checkpoints = checkpoints
        checkpoints[step.name] = await step.run(ctx)
    [stored] = laura.records()["applications"]
    values = {a["question_id"]: a["value"] for a in stored["screening_question_answers"]}
    assert values == {
        501: True,
        502: [1, 2],
        503: 12,
        504: "x" * 20,
        505: 3,
        506: "2027-01-15",
        507: "x" * 20,
    }


async def test_a_question_added_in_laura_shows_at_once_in_job_questions(
    laura: Emulator, ats_http: httpx.AsyncClient
) -> None:
    """job_questions always asks Laura (the catalog's Redis cache is the one cache of reads); the
    older screening_questions path keeps its minute cache."""
    connector = make(laura, ats_http)
    before = await connector.job_questions("102")
    old = await connector.screening_questions("102")
    added = laura.http.post(
        "/_sandbox/laura/jobs/102/questions",
        json={"title": "Vuorotyö? / Shift work?", "format": {"type": "boolean"}, "required": True},
    )
    assert added.status_code == 201
    assert await connector.screening_questions("102") == old  # cached a minute
    fresh = await connector.job_questions("102")
    assert len(fresh) == len(before) + 1
    new = fresh[-1]
    assert (new.title, new.format.type, new.required) == ("Vuorotyö? / Shift work?", "BOOLEAN", True)
    assert laura.records()["requests"]["GET /api/v1.2/jobs/102/questions"] == 2
    assert len(await connector.screening_questions("102")) == len(old) + 1  # refreshed by the read


async def test_a_chain_of_conditional_questions(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    questions = {q.id: q for q in await make(laura, ats_http).job_questions("201")}
    assert list(questions) == ["501", "503", "504", "505"]
    assert (questions["503"].precondition_question_id, questions["503"].precondition_options) == ("501", [True])
    assert (questions["504"].precondition_question_id, questions["504"].precondition_options) == ("503", ["12"])
    assert questions["505"].precondition_question_id is None and questions["505"].precondition_options is None
