"""Intake's read of the job an application names, through the catalog (docs/answers.md): whether
the job exists and is open, and its screening questions, within a short budget.

The catalog (app/catalog/) caches the read in Redis for every process; this module only turns its
answer into what intake needs and its refusals into intake's: an unknown job is a 404, and an ATS
that cannot be asked right now (unreachable, over budget, paused, refusing the read) means the
application is accepted unchecked and the worker checks it before anything is written
(app/delivery/engine.py) — never a refusal for the ATS's own trouble, never a silent drop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from app.catalog import JOB_NOT_FOUND, Catalog, CatalogUnavailable
from app.core.catalog import READ_JOBS, READ_SCREENING_QUESTIONS, Job, ScreeningQuestion
from app.core.problems import FieldError, Problem

log = structlog.get_logger("applyrelay.intake")

BUDGET_S = 2.0  # how long intake waits for the ATS when nothing is cached (docs/catalog.md, "Budget")
JOB_CLOSED = "ATS.JOB_CLOSED"
INPUT_INVALID = "PLATFORM.INPUT_INVALID"


@dataclass(frozen=True)
class JobRead:
    """What intake learnt of the job. `questions` None: not known (the connector has no question
    read, or the ATS could not be asked: then `deferred`, and the worker checks)."""

    job: Job | None = None
    questions: list[ScreeningQuestion] | None = None
    deferred: bool = False


async def read_job(
    catalog: Catalog, connector: Any, connection_id: str, job_id: str, field: str, *, budget_s: float = BUDGET_S
) -> JobRead:
    """The job and its questions from the catalog; 404 (ATS.JOB_NOT_FOUND, naming `field`) for a
    job the ATS does not have. `connector` is the connection's (its `capabilities.reads` say
    which reads exist)."""
    reads = connector.capabilities.reads
    if READ_JOBS not in reads and READ_SCREENING_QUESTIONS not in reads:
        return JobRead()
    try:
        if READ_JOBS in reads:
            job = (await catalog.job(connection_id, job_id, budget_s=budget_s)).value
            questions = list(job.screening_questions) if READ_SCREENING_QUESTIONS in reads else None
            return JobRead(job, questions)
        return JobRead(None, (await catalog.job_questions(connection_id, job_id, budget_s=budget_s)).value)
    except CatalogUnavailable:
        return JobRead(deferred=True)
    except Problem as exc:
        if exc.code == JOB_NOT_FOUND:
            raise Problem(
                404,
                "Unknown job",
                f"{field}: the job does not exist in the ATS",
                [FieldError(field, "unknown job")],
                code=JOB_NOT_FOUND,
            ) from None
        # paused, credentials refused, the ATS refusing the read: not the applicant's fault
        log.info("intake.job_read_deferred", connection=connection_id, status=exc.status, code=exc.code)
        return JobRead(deferred=True)


def closed(field: str, job: Job, status: int = 422) -> Problem:
    """A job that takes no applications (422 on the API, 410 where a board's contract says so)."""
    return Problem(
        status,
        "Job closed",
        f"{field}: the job no longer takes applications ({job.status})",
        [FieldError(field, "job closed")],
        code=JOB_CLOSED,
    )
