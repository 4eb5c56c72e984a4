"""What the relay reads from an ATS, in Kombo's shapes (docs/catalog.md): jobs, their screening
questions and stages, the ATS's candidate sources.

Connectors map their ATS's objects onto these Structs (connectors/<ats>.py, "Reads"); the catalog
(app/catalog/) caches them in Redis and serves them on `/v1/connections/{id}/jobs...`; intake checks
answers against `ScreeningQuestion` (app/core/answers.py). Ids are the ATS's own ids as strings,
so `id == remote_id`; option ids are stable across calls (where the ATS has none, the connector
derives one and says how in docs/connectors/<ats>.md). Pure data: no I/O here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Literal

from msgspec import Struct

JobStatus = Literal["OPEN", "CLOSED", "DRAFT", "ARCHIVED"]
JOB_STATUSES: tuple[JobStatus, ...] = ("OPEN", "CLOSED", "DRAFT", "ARCHIVED")
Visibility = Literal["PUBLIC", "INTERNAL", "UNLISTED", "CONFIDENTIAL"]
EmploymentType = Literal["FULL_TIME", "PART_TIME", "CONTRACT", "SEASONAL", "INTERNSHIP"]

QuestionType = Literal[
    "TEXT", "NUMBER", "SINGLE_SELECT", "MULTI_SELECT", "BOOLEAN", "DATE", "FILE", "INFORMATION", "UNKNOWN"
]
QUESTION_TYPES: tuple[QuestionType, ...] = (
    "TEXT",
    "NUMBER",
    "SINGLE_SELECT",
    "MULTI_SELECT",
    "BOOLEAN",
    "DATE",
    "FILE",
    "INFORMATION",
    "UNKNOWN",
)
# display_type per format: TEXT SINGLE_LINE|MULTI_LINE|EMAIL|URL, NUMBER SLIDER|FIELD,
# SINGLE_SELECT DROPDOWN|RADIO (Kombo's values).
DisplayType = Literal["SINGLE_LINE", "MULTI_LINE", "EMAIL", "URL", "SLIDER", "FIELD", "DROPDOWN", "RADIO"]
QuestionCategory = Literal["EEO", "DEMOGRAPHIC"]


class Option(Struct, frozen=True):
    """One choice of a select question; `id` is what an answer names."""

    id: str
    remote_id: str
    name: str


class QuestionFormat(Struct, frozen=True, omit_defaults=True):
    """Kombo's `format`: `type` plus only the keys that apply to it."""

    type: QuestionType
    display_type: DisplayType | None = None
    max_length: int | None = None
    min: float | None = None
    max: float | None = None
    options: list[Option] | None = None
    accepted_mime_types: list[str] | None = None
    max_file_size_bytes: int | None = None


class ScreeningQuestion(Struct, frozen=True):
    id: str
    remote_id: str
    title: str
    format: QuestionFormat
    required: bool = False
    description: str | None = None
    category: QuestionCategory | None = None
    index: int | None = None
    # The question is asked only when the answer to `precondition_question_id` is among
    # `precondition_options` (option ids for a select, [True] / [False] for a BOOLEAN).
    precondition_question_id: str | None = None
    precondition_options: list[str | bool] | None = None


class Stage(Struct, frozen=True):
    id: str
    remote_id: str
    name: str
    index: int | None = None


class Source(Struct, frozen=True):
    """A candidate source (Factorial) or publication portal (OTYS) an application may name."""

    id: str
    remote_id: str
    name: str


class JobLocation(Struct, frozen=True, omit_defaults=True):
    city: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2 where the ATS says it
    state: str | None = None
    zip_code: str | None = None
    raw: str | None = None


class Job(Struct, frozen=True):
    id: str
    remote_id: str
    name: str
    status: JobStatus
    description: str | None = None  # HTML as the ATS gives it
    job_code: str | None = None
    visibility: Visibility | None = None
    post_url: str | None = None
    location: JobLocation | None = None
    employment_type: EmploymentType | None = None
    department: str | None = None
    changed_at: dt.datetime | None = None
    remote_created_at: dt.datetime | None = None
    # Filled by `get_job` (one job); a listing may leave them empty.
    stages: list[Stage] = []
    screening_questions: list[ScreeningQuestion] = []
    # The ATS's raw object, served only with `?include=remote_data`.
    remote_data: dict[str, Any] | None = None


class JobQuery(Struct, frozen=True, kw_only=True):
    """One page of a job listing. `cursor` is the connector's own opaque string (the ATS's page
    number, offset or token): the catalog passes it back untouched. Filters the ATS cannot apply
    server-side the connector applies to each page it reads (a page may then hold fewer than
    `page_size` jobs while `next_cursor` is still set); it never loads the whole list at once."""

    page_size: int = 50
    cursor: str | None = None
    status: JobStatus | None = None
    name_contains: str | None = None
    updated_after: dt.datetime | None = None


class JobPage(Struct, frozen=True):
    jobs: list[Job]
    next_cursor: str | None = None


# What a connector can read, for `Capabilities.reads`: the routes answer 404 for the rest.
READ_JOBS = "jobs"
READ_SCREENING_QUESTIONS = "screening_questions"
READ_STAGES = "stages"  # connection-wide stages
READ_JOB_STAGES = "job_stages"  # stages scoped by job
READ_SOURCES = "sources"


def text_option_id(text: str) -> str:
    """The id of an option an ATS gives without one (Factorial, Flatchr): the first 12 hex digits
    of the SHA-256 of its text, stripped; stable while the text stays (docs/connectors/<ats>.md,
    "Option ids")."""
    return hashlib.sha256(text.strip().encode()).hexdigest()[:12]


def parse_timestamp(value: Any) -> dt.datetime | None:
    """An ATS's ISO 8601 timestamp (``Z`` included), or None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
