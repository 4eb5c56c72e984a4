"""The ATSs the catalog's tests read, each with what they need to know of it: a job with
questions, the ATS path its questions are read from (the emulators count requests per path), and
how a recruiter adds a question in its sandbox (tests/integration/catalog/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.core.catalog import Job, JobQuery
from connectors.base import Connector
from connectors.sandbox.flatchr import COMPANY_ID
from tests.support.emulators import Emulator


@dataclass(frozen=True)
class Ats:
    name: str
    job_id: str  # a job with screening questions (and stages, where the ATS scopes them by job)
    questions_path: str  # the records' "calls" key counting the ATS call that reads the questions
    add_question: Callable[[Emulator, str], None]
    jobs_key: str  # where the emulator's records list its jobs
    settings: dict[str, Any] = field(default_factory=dict)  # the connection table's connector keys
    emulator_options: dict[str, Any] = field(default_factory=dict)  # enough jobs to page through


def _laura_add(emulator: Emulator, job_id: str) -> None:
    emulator.http.post(
        f"/_sandbox/laura/jobs/{job_id}/questions",
        json={"title": "Shift work?", "format": {"type": "boolean"}, "required": True},
    ).raise_for_status()


def _factorial_add(emulator: Emulator, job_id: str) -> None:
    emulator.http.post(
        "/_sandbox/factorial/questions",
        json={"ats_job_posting_id": job_id, "label": "Shift work?", "question_type": "text", "mandatory": True},
    ).raise_for_status()


def _otys_add(emulator: Emulator, job_id: str) -> None:
    emulator.http.post(
        f"/_sandbox/otys/vacancies/{job_id}/questions",
        json={"question": "Shift work?", "type": "checkbox", "fieldName": "extraInfo7", "mandatory": True},
    ).raise_for_status()


def _flatchr_add(emulator: Emulator, job_id: str) -> None:
    emulator.http.post(
        f"/_sandbox/flatchr/vacancies/{job_id}/questions",
        json={"text": "Shift work?", "type": "text", "required": True},
    ).raise_for_status()


ATSS = {
    "factorial": Ats(
        "factorial", "2001", "GET /api/2026-07-01/resources/ats/questions", _factorial_add, jobs_key="job_postings"
    ),
    "laura": Ats("laura", "102", "GET /api/v1.2/jobs/102/questions", _laura_add, jobs_key="jobs"),
    "otys": Ats(
        "otys",
        "a1b2c3d4e5f60718293a4b5c6d7e8f90",
        "Otys.Services.QuestionSetService.getDetail",
        _otys_add,
        jobs_key="vacancies",
    ),
    "flatchr": Ats(
        "flatchr",
        "Vq5r6pYxam9AmMvP",
        "GET /vacancy/Vq5r6pYxam9AmMvP",
        _flatchr_add,
        jobs_key="vacancies",
        settings={"company_id": COMPANY_ID},
        emulator_options={"extra_vacancies": 40},
    ),
}


async def every_job(connector: Connector[Any], page_size: int, **filters: Any) -> tuple[list[Job], int]:
    """Every job a connector's `list_jobs` gives through its cursors, and how many pages it took;
    each page holds at most `page_size` jobs and each cursor moves on (no page read twice)."""
    jobs: list[Job] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await connector.list_jobs(JobQuery(page_size=page_size, cursor=cursor, **filters))
        pages += 1
        assert len(page.jobs) <= page_size
        jobs.extend(page.jobs)
        if page.next_cursor is None:
            return jobs, pages
        assert page.next_cursor != cursor
        cursor = page.next_cursor
