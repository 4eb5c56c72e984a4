"""OTYS's read models (Kombo's shapes) against its emulator over real HTTP: vacancies through
getListEx limit/offset with each filter, a vacancy's questionset in Kombo's formats, stages,
referrer portals, and answers built only from `job_questions` landing in OTYS as it stores them
(candidate fields, the procedure's KillerQuestions, documents)."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from typing import Any

import httpx
import pytest

from app.core.catalog import READ_JOBS, READ_SCREENING_QUESTIONS, READ_SOURCES, READ_STAGES, JobQuery, ScreeningQuestion
from app.core.model import AttachmentRef, Candidate, JobRef, Origin, StoredAnswer, StoredApplication
from connectors import connector_class
from connectors.base import ConnectionSpec, PermanentError, StepContext
from connectors.otys import OtysConnector, OtysSettings
from tests.support.catalog import every_job
from tests.support.emulators import Emulator

JOB = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
LIST = "Otys.Services.VacancyService.getListEx"


def make(otys: Emulator, ats_http: httpx.AsyncClient) -> OtysConnector:
    spec = ConnectionSpec(
        id="otys-reads",
        connector="otys",
        base_url=otys.url,
        credentials="sandbox",
        settings=OtysSettings.from_mapping({}),
        timeout_s=5.0,
    )
    connector = connector_class("otys")(spec, ats_http)
    assert isinstance(connector, OtysConnector)
    return connector


def test_capabilities_name_the_reads() -> None:
    assert {READ_JOBS, READ_SCREENING_QUESTIONS, READ_STAGES, READ_SOURCES} <= OtysConnector.capabilities.reads


async def test_list_jobs_pages_with_limit_and_offset(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    jobs, pages = await every_job(connector, 10)
    assert len(jobs) == 25 and len({j.id for j in jobs}) == 25 and pages == 3
    assert otys.records()["calls"][LIST] == 3  # one getListEx per page
    first = next(j for j in jobs if j.id == JOB)
    assert (first.name, first.status, first.job_code) == ("Backend developer", "OPEN", "V-1001")
    assert first.location is not None and (first.location.city, first.location.country) == ("Utrecht", "NL")
    assert first.location.zip_code == "3511 AA"
    assert first.post_url == "https://jobs.example.nl/vacatures/backend-developer"
    assert first.description == "<p>Python and PostgreSQL.</p>"
    assert first.changed_at == dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC)
    assert first.remote_data and first.remote_data["internalId"] == 1001 and "qsId" not in first.remote_data
    assert {j.status for j in jobs} == {"OPEN", "CLOSED", "DRAFT", "ARCHIVED"}
    # page_size above OTYS's 200 per call is asked as 200, never refused
    page = await connector.list_jobs(JobQuery(page_size=250))
    assert len(page.jobs) == 25 and page.next_cursor is None
    with pytest.raises(PermanentError):
        await connector.list_jobs(JobQuery(cursor="-1"))


async def test_list_jobs_filters_are_otys_conditions(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    everything, _ = await every_job(connector, 200)
    for status in ("OPEN", "CLOSED", "DRAFT", "ARCHIVED"):
        jobs, _ = await every_job(connector, 3, status=status)
        assert jobs and {j.id for j in jobs} == {j.id for j in everything if j.status == status}
    nurses, _ = await every_job(connector, 3, name_contains="NURSE")
    assert nurses and {j.id for j in nurses} == {j.id for j in everything if "nurse" in j.name.lower()}
    after = dt.datetime(2026, 9, 25, 8, tzinfo=dt.UTC)
    recent, _ = await every_job(connector, 3, updated_after=after)
    assert recent and {j.id for j in recent} == {
        j.id for j in everything if j.changed_at is not None and j.changed_at > after
    }
    both, pages = await every_job(connector, 2, status="OPEN", name_contains="developer")
    assert both and all(j.status == "OPEN" and "developer" in j.name.lower() for j in both)
    # server-side: each page is full until the last one
    assert pages == -(-len(both) // 2)


async def test_get_job_with_every_question_type_and_stages(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    job = await connector.get_job(JOB)
    assert job is not None and job.status == "OPEN"
    assert [s.id for s in job.stages] == ["1_1", "1_2", "1_3", "1_4", "1_5"] and job.stages[0].name == "Applied"
    assert [s.index for s in job.stages] == list(range(5))
    q = {x.id: x for x in job.screening_questions}
    assert "100" not in q  # Person.firstName: answered by the candidate, not a screening question
    assert [x.index for x in job.screening_questions] == list(range(len(q)))
    formats = {qid: (x.format.type, x.format.display_type) for qid, x in q.items()}
    assert formats == {
        "101": ("TEXT", "MULTI_LINE"),  # motivation
        "102": ("TEXT", "SINGLE_LINE"),
        "103": ("TEXT", "MULTI_LINE"),
        "104": ("DATE", None),
        "105": ("FILE", None),
        "106": ("SINGLE_SELECT", "DROPDOWN"),
        "107": ("MULTI_SELECT", None),
        "108": ("BOOLEAN", None),
        "109": ("SINGLE_SELECT", "RADIO"),
        "110": ("SINGLE_SELECT", "DROPDOWN"),  # criteria
        "111": ("MULTI_SELECT", None),  # multiCheckbox
        "112": ("TEXT", "EMAIL"),
        "113": ("FILE", None),  # multiFile
        "114": ("BOOLEAN", None),  # other
    }
    assert [(o.id, o.remote_id, o.name) for o in q["110"].format.options or []] == [
        ("41", "41", "Junior"),
        ("42", "42", "Medior"),
        ("43", "43", "Senior"),
    ]
    assert "application/pdf" in (q["105"].format.accepted_mime_types or [])
    assert q["101"].required and q["105"].required and q["109"].required and not q["102"].required
    assert await connector.job_questions(JOB) == job.screening_questions  # same ids on each call
    assert await connector.get_job("nope") is None
    assert await connector.job_status(JOB) == "open"
    assert await connector.job_status("c3d4e5f60718293a4b5c6d7e8f90a1b2") == "closed"
    assert await connector.job_status("nope") == "missing"
    assert await connector.job_questions("b2c3d4e5f60718293a4b5c6d7e8f90a1") == []
    with pytest.raises(PermanentError) as err:
        await connector.job_questions("nope")
    assert err.value.status == 404
    assert await connector.list_stages(JOB) == job.stages


async def test_sources_are_the_referrer_portals(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    sources = await make(otys, ats_http).list_sources()
    assert [(s.id, s.name) for s in sources] == [
        ("p-website", "Website"),
        ("p-indeed", "Indeed"),
        ("p-linkedin", "LinkedIn"),
    ]
    assert all(s.id == s.remote_id for s in sources)


FILE_BYTES = {
    7: b"%PDF-1.4 the cv " + b"c" * 100,
    8: b"%PDF-1.4 a certificate " + b"d" * 100,
    9: b"%PDF-1.4 for no question " + b"e" * 100,
}


def file_ref(index: int, name: str) -> AttachmentRef:
    data = FILE_BYTES[index]
    return AttachmentRef(
        index=index,
        name=name,
        type="ANSWER",
        content_type="application/pdf",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


def canonical_answers(questions: list[ScreeningQuestion]) -> dict[str, Any]:
    """One answer per question from the questions alone (Kombo's answer typing)."""
    answers: dict[str, Any] = {}
    for q in questions:
        ids = [o.id for o in q.format.options or []]
        kind = q.format.type
        if kind == "TEXT":
            answers[q.id] = "a@example.nl" if q.format.display_type == "EMAIL" else f"text {q.id}"
        elif kind == "DATE":
            answers[q.id] = "2027-03-01"
        elif kind == "BOOLEAN":
            answers[q.id] = True
        elif kind == "SINGLE_SELECT":
            answers[q.id] = ids[-1]
        elif kind == "MULTI_SELECT":
            answers[q.id] = ids[:2]
        elif kind == "FILE":
            answers[q.id] = file_ref(
                7 + len([a for a in answers.values() if isinstance(a, AttachmentRef)]), f"{q.id}.pdf"
            )
    return answers


async def test_answers_from_job_questions_land_as_otys_stores_them(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    questions = await connector.job_questions(JOB)
    answers = canonical_answers(questions)
    assert {q.format.type for q in questions} == {"TEXT", "DATE", "FILE", "SINGLE_SELECT", "MULTI_SELECT", "BOOLEAN"}
    assert set(answers) == {q.id for q in questions}
    app = StoredApplication(
        connection_id="otys-reads",
        candidate=Candidate(first_name="Jan", last_name="Jansen", email_address="jan.reads@example.nl"),
        application=JobRef(job_id=JOB),
        origin=Origin(channel="api", received_at=time.time()),
        screening_question_answers=[StoredAnswer(qid, value) for qid, value in answers.items()]
        + [StoredAnswer("999", "not a question of this vacancy"), StoredAnswer("998", file_ref(9, "stray.pdf"))],
    )
    assert await connector.check_answers(app) == []

    async def load(ref: AttachmentRef) -> bytes:
        return FILE_BYTES[ref.index]

    checkpoints: dict[str, str] = {}
    ctx = StepContext(application=app, checkpoints=checkpoints, load_attachment=load)
    for step in sorted(connector.plan(app), key=lambda s: not s.core):
        checkpoints[step.name] = await step.run(ctx)
    assert [w.code for w in ctx.warnings] == ["answer_unknown_question"] * 2  # neither is written
    records = otys.records()
    [candidate] = records["candidates"]
    assert candidate["extraInfo1"] == "text 102" and candidate["extraInfo2"] == "text 103"
    assert candidate["availableAt"] == "2027-03-01 00:00:00"
    assert candidate["matchCriteria_1"] == {"12": 1}  # select on a criterion: {option id: 1}
    assert candidate["matchCriteria_2"] == {"21": 1, "22": 1}
    assert candidate["matchCriteria_3"] == {"43": 1}
    assert candidate["driversLicence"] is True and candidate["willRelocate"] is True
    assert candidate["extraInfo3"] == "32"  # a radio on a free field: the option id
    assert candidate["extraInfo4"] == "51,52"  # multi values comma-separated
    assert candidate["extraInfo5"] == "a@example.nl"
    [procedure] = records["procedures"]
    assert procedure["KillerQuestions"] == ["text 101"]
    documents = {d["fileName"]: d for d in records["documents"]}
    assert set(documents) == {"105.pdf", "113.pdf"}
    assert documents["105.pdf"]["typeId"] == 1 and documents["113.pdf"]["typeId"] == 201  # documentTypeId
    assert {d["candidateUid"] for d in documents.values()} == {candidate["uid"]}
    assert {d["applicationUid"] for d in documents.values()} == {procedure["uid"]}


async def test_wrong_answers_are_named_and_nothing_is_written(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    questions = {q.id: q for q in await connector.job_questions(JOB)}
    answers = canonical_answers(list(questions.values()))
    answers["106"] = "not-an-option"
    answers["104"] = "next tuesday"
    del answers["109"]  # required
    app = StoredApplication(
        connection_id="otys-reads",
        candidate=Candidate(first_name="Jan", last_name="Jansen", email_address="jan.wrong@example.nl"),
        application=JobRef(job_id=JOB),
        origin=Origin(channel="api", received_at=time.time()),
        screening_question_answers=[StoredAnswer(qid, value) for qid, value in answers.items()],
    )
    errors = await connector.check_answers(app)
    assert sorted(e.split(":")[0] for e in errors) == ["question 104", "question 106", "question 109"]

    async def load(ref: AttachmentRef) -> bytes:
        return FILE_BYTES[ref.index]

    ctx = StepContext(application=app, checkpoints={}, load_attachment=load)
    step = next(s for s in connector.plan(app) if s.name == "candidate")
    with pytest.raises(PermanentError) as err:
        await step.run(ctx)
    assert err.value.status == 422 and "question 106" in err.value.detail
    assert otys.records()["candidates"] == []


async def test_a_question_added_in_otys_shows_at_once_in_job_questions(
    otys: Emulator, ats_http: httpx.AsyncClient
) -> None:
    """job_questions always asks OTYS (the catalog's Redis cache is the one cache of reads); the
    older screening_questions path keeps its minute cache."""
    connector = make(otys, ats_http)
    vacancy = "b2c3d4e5f60718293a4b5c6d7e8f90a1"  # no questionset yet
    assert await connector.job_questions(vacancy) == []
    added = otys.http.post(
        f"/_sandbox/otys/vacancies/{vacancy}/questions",
        json={"question": "Night shifts?", "type": "checkbox", "fieldName": "extraInfo7", "mandatory": True},
    )
    assert added.status_code == 201
    assert await connector.screening_questions(vacancy) == []  # cached a minute
    [new] = await connector.job_questions(vacancy)
    assert (new.title, new.format.type, new.required) == ("Night shifts?", "BOOLEAN", True)
    assert otys.records()["calls"]["Otys.Services.QuestionSetService.getVacancyQsIdByVacancyOuid"] == 2
    assert [q["id"] for q in await connector.screening_questions(vacancy)] == [new.id]
