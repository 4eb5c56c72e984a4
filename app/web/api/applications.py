"""The JSON API: canonical intake and health (deliveries: app/web/api/deliveries.py)."""

from __future__ import annotations

import hmac
import time
from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException

from app.core.model import ApplicationIn, Origin
from app.delivery import queue
from app.intake.accept import Intake
from app.intake.decode import decode_application_off_loop
from app.web.auth import current_token
from app.web.deps import accepted_response, idempotency_key, read_body, runtime_of
from app.web.openapi import IDEMPOTENCY_KEY, SECURED, Accepted, Status, body, ok, problems
from app.web.problems import problem


def require_intake_token(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """The canonical API takes an intake token (APPLYRELAY_INTAKE_TOKENS) or an operator token.
    Called first thing in the handler rather than as a Litestar guard: a guard costs a copy of the
    route handler per request (copy.copy, 3 % of intake CPU in bench P1) on the hottest route."""
    if current_token(connection) is not None:
        return
    scheme, _, presented = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and presented:
        matches = [hmac.compare_digest(presented.encode(), t.encode()) for t in connection.app.state.intake_tokens]
        if any(matches):
            return
    raise NotAuthorizedException("a valid API token is required (Authorization: Bearer <token>)")


def _intake(request: Request[Any, Any, Any]) -> Intake:
    return request.app.state.intake


@post(
    "/v1/applications",
    status_code=202,
    opt=body(ApplicationIn, headers=IDEMPOTENCY_KEY),
    security=SECURED,
    responses={202: ok(Accepted, "Stored and enqueued"), **problems(400, 401, 404, 409, 410, 413, 415, 422, 503)},
)
async def create_application(request: Request[Any, Any, Any]) -> Response[Any]:
    """Accept a canonical application: 202 once stored and enqueued (or a repeat of a known key)."""
    require_intake_token(request)
    key = idempotency_key(request)
    application = await decode_application_off_loop(await read_body(request))
    accepted = await _intake(request).accept(application, Origin(channel="api", received_at=time.time()), key)
    return accepted_response(accepted.delivery_id, accepted.status, accepted.created, accepted.warnings)


@get("/health", sync_to_thread=False, responses={200: ok(Status)})
def health() -> dict[str, str]:
    """The process is up (liveness)."""
    return {"status": "ok"}


@get("/ready", responses={200: ok(Status), **problems(503)})
async def ready(request: Request[Any, Any, Any]) -> Response[Any]:
    """Redis answers and takes writes, the blob store answers, and a worker has written its
    heartbeat lately (readiness)."""
    try:
        redis = runtime_of(request).redis
        await redis.ping()
        heartbeat = await redis.exists(queue.HEALTH_CHECK_KEY)
    except Exception as exc:  # any failure to reach Redis means not ready
        return problem(503, "Not ready", f"redis: {type(exc).__name__}", headers={"Retry-After": "5"})
    not_ready = await runtime_of(request).capacity.not_ready()  # Redis full, the blob store away
    if not_ready:
        return problem(
            503, "Not ready", "; ".join(not_ready), headers={"Retry-After": "5"}, code="PLATFORM.UNAVAILABLE"
        )
    if not heartbeat:
        return problem(
            503,
            "Not ready",
            f"no worker heartbeat in the last {queue.HEALTH_CHECK_INTERVAL_S + 1} s",
            headers={"Retry-After": "5"},
        )
    return Response({"status": "ready"})


def api_router() -> Router:
    return Router(
        path="/",
        route_handlers=[
            create_application,
            health,
            ready,
        ],
        request_max_body_size=None,
    )
