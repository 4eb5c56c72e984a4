"""The ATSs the catalog's tests read, each with what they need to know of it: a job with
questions, the ATS path its questions are read from (the emulators count requests per path), and
how a recruiter adds a question in its sandbox (tests/integration/catalog/)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.emulators import Emulator


@dataclass(frozen=True)
class Ats:
    name: str
    job_id: str  # a job with screening questions (and stages, where the ATS scopes them by job)
    questions_path: str  # "<METHOD> <path>" the connector reads that job's questions with
    add_question: Callable[[Emulator, str], None]
    settings: dict[str, Any] = field(default_factory=dict)  # the connection table's connector keys
    # The connector keeps the job's questions itself this long (a TtlCache from before the
    # catalog): a question added in the ATS then shows only after both caches expire.
    own_questions_cache_s: float = 0.0


def _laura_add(emulator: Emulator, job_id: str) -> None:
    emulator.http.post(
        f"/_sandbox/laura/jobs/{job_id}/questions",
        json={"title": "Shift work?", "format": {"type": "boolean"}, "required": True},
    ).raise_for_status()


ATSS = {
    "laura": Ats("laura", "102", "GET /api/v1.2/jobs/102/questions", _laura_add, own_questions_cache_s=60.0),
}
