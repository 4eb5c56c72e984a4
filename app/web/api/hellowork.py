"""HelloWork's reception endpoint: `POST /inbound/hellowork/{connection}` (docs/boards.md).
The API key is compared in constant time; a connection without one answers 404."""

from __future__ import annotations

from typing import Any

import msgspec
import structlog
from litestar import Request, Response, Router, post

from app.catalog import INTEGRATION_NOT_FOUND
from app.core.problems import Problem
from app.intake.accept import Intake
from app.intake.boards import hellowork
from app.intake.boards.draft import check_job
from app.intake.boards.secrets import configured_secrets, not_configured
from app.redis.keys import board_context_key
from app.runtime import Runtime
from app.web.deps import accepted_response, read_limited
from app.web.openapi import Accepted as AcceptedBody
from app.web.openapi import body, ok, problems

log = structlog.get_logger("applyrelay.inbound")
CONTEXT_TTL_S = 90 * 24 * 3600  # beyond the status sync window (60 days by default)


@post(
    "/hellowork/{connection_id:str}",
    status_code=202,
    opt=body(
        hellowork.HwApplication, headers={"X-Api-Key": "the API key given to HelloWork (header name per connection)"}
    ),
    responses={
        202: ok(AcceptedBody, "Stored and enqueued (also a resend: duplicate true)"),
        **problems(400, 401, 404, 410, 413, 422, 503),
    },
)
async def hellowork_application(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    """202 once stored; a resend answers 202 with the same delivery (`duplicate: true`). Every
    refusal carries Kombo's `code` (README, "Error codes"): 400/413/422 PLATFORM.INPUT_INVALID,
    401 PLATFORM.AUTHENTICATION_INVALID, 404 PLATFORM.INTEGRATION_NOT_FOUND or ATS.JOB_NOT_FOUND,
    410 ATS.JOB_CLOSED."""
    try:
        return await _receive(request, connection_id)
    except Problem as exc:
        if exc.code is None and exc.status == 404:  # the route is not configured for this connection
            exc.code = INTEGRATION_NOT_FOUND
        raise


async def _receive(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    intake: Intake = request.app.state.intake
    runtime: Runtime = request.app.state.runtime
    connection = intake.connection(connection_id)
    secrets = configured_secrets(connection, "hellowork_secret_env", several=False)
    if not secrets:
        raise not_configured("HelloWork")
    header = connection.inbound.hellowork_key_header
    hellowork.verify(request.headers.get(header), secrets, header)
    limit = connection.inbound.hellowork_max_body_bytes
    body = await read_limited(request, hellowork.DEFAULT_MAX_BODY if limit is None else limit)
    application = hellowork.parse(body)
    job_id = str(application.job.jobId).strip() if application.job else ""
    connector = runtime.connectors.get(connection.id)
    await check_job(intake.catalog, connector, connection, job_id, "job.jobId")
    draft, origin, notes = await hellowork.to_application(application, connection, connector, job_id, intake.catalog)
    status_url = hellowork.status_url(application, connection, notes)
    try:
        accepted = await intake.accept(draft.build(), origin, None, notes)
    except Problem as exc:
        raise draft.rename(exc) from None
    if accepted.created and status_url:
        context = {"status_url": status_url, **hellowork.report_context(application)}
        await runtime.redis.set(board_context_key(accepted.delivery_id), msgspec.json.encode(context), ex=CONTEXT_TTL_S)
    log.info("inbound.hellowork", connection=connection.id, delivery_id=accepted.delivery_id, created=accepted.created)
    return accepted_response(accepted.delivery_id, accepted.status, accepted.created, accepted.warnings)


def router(runtime: Runtime) -> Router:
    return Router(path="/inbound", route_handlers=[hellowork_application], request_max_body_size=None)
