"""`GET /inbound/indeed/{connection}/questions/{job_id}`: the job's questions as Indeed Apply's
screener-questions JSON (app/intake/boards/indeed_questions.py, docs/apply-pages.md).

Public: Indeed fetches the URL of the job feed without credentials, so the route answers only
for connections that take Indeed applications (`indeed_secret_env`), 404 otherwise. Served from
the catalog's cache, with `ETag` and `Last-Modified` so Indeed's hourly refresh is a 304.
"""

from __future__ import annotations

import email.utils
import hashlib
from typing import Any

import msgspec
from litestar import Request, Response, Router, get
from litestar.openapi import ResponseSpec

from app.catalog import parse_job_id
from app.core.problems import Problem
from app.intake.boards import indeed_questions
from app.intake.boards.secrets import configured_secrets, not_configured
from app.runtime import Runtime
from app.web.openapi import ok, problems


def _not_modified(request: Request[Any, Any, Any], etag: str, fetched_at: int) -> bool:
    match = request.headers.get("if-none-match")
    if match is not None:
        return etag in [t.strip().removeprefix("W/") for t in match.split(",")] or match.strip() == "*"
    since = request.headers.get("if-modified-since")
    if since:
        try:
            when = email.utils.parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        return when.timestamp() >= fetched_at
    return False


@get(
    "/inbound/indeed/{connection_id:str}/questions/{job_id:str}",
    responses={
        200: ok(dict[str, Any], "Indeed Apply's screener-questions JSON (ETag, Last-Modified)"),
        304: ResponseSpec(data_container=None, description="Not modified (If-None-Match / If-Modified-Since)"),
        **problems(404, 503),
    },
)
async def screener_questions(request: Request[Any, Any, Any], connection_id: str, job_id: str) -> Response[Any]:
    runtime: Runtime = request.app.state.runtime
    connection = runtime.catalog.connection(connection_id)
    if not configured_secrets(connection, "indeed_secret_env", several=False):
        raise not_configured("Indeed Apply")
    mapping = {str(k): str(v) for k, v in connection.inbound.indeed_jobs.items()}
    if mapping:  # the jobs this connection takes Indeed applications for, by Indeed's id or the ATS's
        if job_id not in mapping and job_id not in mapping.values():
            raise Problem(
                404, "Unknown job", f"job {job_id!r} is not a job this connection takes Indeed applications for"
            )
        job_id = mapping.get(job_id, job_id)
    cached = await runtime.catalog.job_questions(connection.id, parse_job_id(job_id))
    body = msgspec.json.encode(indeed_questions.document(cached.value))
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    fetched_at = int(cached.fetched_at)
    headers = {
        "ETag": etag,
        "Last-Modified": email.utils.formatdate(fetched_at, usegmt=True),
        "Cache-Control": f"public, max-age={int(connection.catalog_ttl_s)}",
        "Age": str(int(cached.age)),
    }
    if _not_modified(request, etag, fetched_at):
        return Response(b"", status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def router(runtime: Runtime) -> Router:
    return Router(path="/", route_handlers=[screener_questions])
