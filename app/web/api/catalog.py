"""The ATS's jobs, screening questions, stages and sources in Kombo's shapes (docs/catalog.md).

GET /v1/connections/{id}/jobs                                read  one page: {data, next_cursor}
GET /v1/connections/{id}/jobs/{job_id}                       read  the job, questions and stages
GET /v1/connections/{id}/jobs/{job_id}/screening-questions   read  {data: [question...]}
GET /v1/connections/{id}/jobs/{job_id}/stages                read  where the ATS scopes stages by job
GET /v1/connections/{id}/stages                              read  where the ATS has them
GET /v1/connections/{id}/sources                             read  where the ATS has them

Every answer comes through `runtime.catalog` (the shared cache) and says its age: the `Age`
header and `fetched_at` (epoch s), `stale` when served because the ATS could not answer. The
handlers take typed parameters and answer msgspec Structs so the OpenAPI document describes them;
a bad parameter is a 422 problem+json naming it (`PLATFORM.INPUT_INVALID`).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, Router, get
from litestar.datastructures import ResponseHeader
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import Parameter
from msgspec import UNSET, Struct, UnsetType

from app.catalog import INPUT_INVALID, Cached, Catalog, parse_job_id
from app.catalog.service import MAX_PAGE_SIZE
from app.core.catalog import Job, JobQuery, JobStatus, ScreeningQuestion, Source, Stage
from app.runtime import Runtime
from app.web.auth import require_scope
from app.web.deps import runtime_of
from app.web.openapi import SECURED
from app.web.problems import PROBLEM, problem

read_guard = require_scope("read")
Include = Literal["remote_data"]


# -- shapes ----------------------------------------------------------------------------------------


class JobOut(Job, frozen=True):
    """Kombo's Job; `remote_data` (the ATS's raw object) only with `?include=remote_data`."""

    remote_data: dict[str, Any] | UnsetType = UNSET  # type: ignore[assignment]  # omitted, never null


class JobList(Struct, frozen=True):
    data: list[JobOut]
    next_cursor: str | None
    fetched_at: float
    stale: bool = False


class OneJob(Struct, frozen=True):
    data: JobOut
    fetched_at: float
    stale: bool = False


class QuestionList(Struct, frozen=True):
    data: list[ScreeningQuestion]
    fetched_at: float
    stale: bool = False


class StageList(Struct, frozen=True):
    data: list[Stage]
    fetched_at: float
    stale: bool = False


class SourceList(Struct, frozen=True):
    data: list[Source]
    fetched_at: float
    stale: bool = False


class FieldErrorOut(Struct, frozen=True):
    field: str
    message: str


class CatalogProblem(Struct, frozen=True):
    """problem+json (RFC 9457) with Kombo's `code` (docs/catalog.md, "Errors")."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldErrorOut] = []
    code: str | None = None


def _problems(*statuses: int) -> dict[int, ResponseSpec]:
    texts = {
        401: "no valid token",
        403: "the token lacks the read scope",
        404: "unknown connection (PLATFORM.INTEGRATION_NOT_FOUND), job (ATS.JOB_NOT_FOUND) or a read this ATS "
        "lacks (INTEGRATION.ACTION_NOT_AVAILABLE)",
        422: "a bad parameter, named in errors (PLATFORM.INPUT_INVALID)",
        502: "the connection is paused or the ATS refused the read (INTEGRATION.AUTHENTICATION_INVALID, "
        "REMOTE.UNKNOWN_HTTP_ERROR)",
        503: "the ATS is unreachable and nothing is cached (REMOTE.SERVICE_UNAVAILABLE, Retry-After)",
    }
    return {
        s: ResponseSpec(
            data_container=CatalogProblem, media_type=PROBLEM, description=texts[s], generate_examples=False
        )
        for s in statuses
    }


COMMON = (401, 403, 404, 502, 503)
AGE = [ResponseHeader(name="Age", documentation_only=True, description="seconds since the ATS was asked")]


# -- helpers ---------------------------------------------------------------------------------------


def _job_out(job: Job, include: Include | None) -> JobOut:
    fields = msgspec.structs.asdict(job)
    if include != "remote_data" or fields["remote_data"] is None:
        fields["remote_data"] = UNSET
    return JobOut(**fields)


def _answer(body: Any, cached: Cached[Any]) -> Response[Any]:
    return Response(body, headers={"Age": str(int(cached.age))})


def _catalog(request: Request[Any, Any, Any]) -> Catalog:
    return runtime_of(request).catalog


def invalid_parameter(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    """A bad query parameter as our other refusals: 422 naming it, with Kombo's code."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        {"field": str(e.get("key", "")), "message": str(e.get("message", ""))}
        for e in extra
        if isinstance(e, dict) and e.get("key")
    ]
    named = ", ".join(e["field"] for e in errors) or "a parameter"
    return problem(422, "Invalid request", f"invalid {named}", errors=errors, code=INPUT_INVALID)


# -- routes ----------------------------------------------------------------------------------------

ConnectionId = Annotated[str, Parameter(description="a connection of the configuration")]
JobId = Annotated[str, Parameter(description="the ATS's job id, or remote:<id>")]
IncludeParam = Annotated[Include | None, Parameter(description="remote_data: add the ATS's raw object to each job")]


@get(
    "/v1/connections/{connection_id:str}/jobs",
    guards=[read_guard],
    response_headers=AGE,
    responses=_problems(*COMMON, 422),
    summary="One page of the ATS's jobs",
)
async def list_jobs(
    request: Request[Any, Any, Any],
    connection_id: ConnectionId,
    status: Annotated[JobStatus | None, Parameter(description="only jobs with this status")] = None,
    name_contains: Annotated[str | None, Parameter(min_length=1, max_length=200)] = None,
    updated_after: Annotated[dt.datetime | None, Parameter(description="ISO 8601; UTC when naive")] = None,
    page_size: Annotated[int, Parameter(ge=1, le=MAX_PAGE_SIZE)] = 50,
    cursor: Annotated[str | None, Parameter(max_length=4000, description="next_cursor of the page before")] = None,
    include: IncludeParam = None,
) -> Response[JobList]:
    query = JobQuery(
        page_size=page_size, cursor=cursor, status=status, name_contains=name_contains, updated_after=updated_after
    )
    cached = await _catalog(request).list_jobs(connection_id, query)
    page = cached.value
    body = JobList(
        data=[_job_out(job, include) for job in page.jobs],
        next_cursor=page.next_cursor,
        fetched_at=cached.fetched_at,
        stale=cached.stale,
    )
    return _answer(body, cached)


@get(
    "/v1/connections/{connection_id:str}/jobs/{job_id:str}",
    guards=[read_guard],
    response_headers=AGE,
    responses=_problems(*COMMON, 422),
    summary="One job, with its screening questions and stages",
)
async def get_job(
    request: Request[Any, Any, Any], connection_id: ConnectionId, job_id: JobId, include: IncludeParam = None
) -> Response[OneJob]:
    cached = await _catalog(request).job(connection_id, parse_job_id(job_id))
    return _answer(OneJob(_job_out(cached.value, include), cached.fetched_at, cached.stale), cached)


@get(
    "/v1/connections/{connection_id:str}/jobs/{job_id:str}/screening-questions",
    guards=[read_guard],
    response_headers=AGE,
    responses=_problems(*COMMON, 422),
    summary="The job's screening questions",
)
async def job_questions(
    request: Request[Any, Any, Any], connection_id: ConnectionId, job_id: JobId
) -> Response[QuestionList]:
    cached = await _catalog(request).job_questions(connection_id, parse_job_id(job_id))
    return _answer(QuestionList(cached.value, cached.fetched_at, cached.stale), cached)


@get(
    "/v1/connections/{connection_id:str}/jobs/{job_id:str}/stages",
    guards=[read_guard],
    response_headers=AGE,
    responses=_problems(*COMMON, 422),
    summary="The job's application stages, where the ATS scopes them by job",
)
async def job_stages(
    request: Request[Any, Any, Any], connection_id: ConnectionId, job_id: JobId
) -> Response[StageList]:
    cached = await _catalog(request).stages(connection_id, parse_job_id(job_id))
    return _answer(StageList(cached.value, cached.fetched_at, cached.stale), cached)


@get(
    "/v1/connections/{connection_id:str}/stages",
    guards=[read_guard],
    response_headers=AGE,
    responses=_problems(*COMMON),
    summary="The ATS's application stages",
)
async def stages(request: Request[Any, Any, Any], connection_id: ConnectionId) -> Response[StageList]:
    cached = await _catalog(request).stages(connection_id)
    return _answer(StageList(cached.value, cached.fetched_at, cached.stale), cached)


@get(
    "/v1/connections/{connection_id:str}/sources",
    guards=[read_guard],
    response_headers=AGE,
    responses=_problems(*COMMON),
    summary="The candidate sources (or publication portals) an application may name",
)
async def sources(request: Request[Any, Any, Any], connection_id: ConnectionId) -> Response[SourceList]:
    cached = await _catalog(request).sources(connection_id)
    return _answer(SourceList(cached.value, cached.fetched_at, cached.stale), cached)


def router(runtime: Runtime) -> Router:
    return Router(
        path="/",
        route_handlers=[list_jobs, get_job, job_questions, job_stages, stages, sources],
        exception_handlers={ValidationException: invalid_parameter},
        security=SECURED,
    )
