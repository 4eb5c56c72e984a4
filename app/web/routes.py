"""The JSON API: canonical intake, delivery status and operator actions, health."""

from __future__ import annotations

import hmac
import re
import time
from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.handlers.base import BaseRouteHandler

from app import audit, operations
from app.delivery import STATUSES, public_view
from app.intake import Intake, IntakeError, decode_application
from app.models import Origin, stored_decoder
from app.runtime import Runtime
from app.web.auth import admin_guard, current_token, retry_guard
from app.web.problems import problem

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def intake_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The canonical API takes an intake token (APPLYRELAY_INTAKE_TOKENS) or an operator token."""
    if current_token(connection) is not None:
        return
    scheme, _, presented = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and presented:
        matches = [hmac.compare_digest(presented.encode(), t.encode()) for t in connection.app.state.intake_tokens]
        if any(matches):
            return
    raise NotAuthorizedException("a valid API token is required (Authorization: Bearer <token>)")


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    return request.app.state.runtime


def _intake(request: Request[Any, Any, Any]) -> Intake:
    return request.app.state.intake


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise IntakeError(400, "Invalid Idempotency-Key", "Idempotency-Key: 1 to 255 printable ASCII characters",
                          [])
    return key


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """The body, refused with 413 past the app's limit. Enforced here rather than by Litestar's
    `request_max_body_size`, whose resolution is cached on module-level handlers and so cannot
    differ between two app instances (tests, or two configs in one process)."""
    limit: int = request.app.state.max_body_bytes
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge(f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def accepted_response(delivery_id: str, status: str, created: bool, warnings: list[dict[str, str]]) -> Response[Any]:
    body: dict[str, Any] = {"id": delivery_id, "status": status, "duplicate": not created}
    if warnings:
        body["warnings"] = warnings
    return Response(body, status_code=202, headers={"Location": f"/v1/deliveries/{delivery_id}"})


@post("/v1/applications", guards=[intake_guard])
async def create_application(request: Request[Any, Any, Any]) -> Response[Any]:
    """Accept a canonical application: 202 once stored and enqueued (or a repeat of a known key)."""
    key = idempotency_key(request)
    application = decode_application(await read_body(request))
    accepted = await _intake(request).accept(application, Origin(channel="api", received_at=time.time()), key)
    return accepted_response(accepted.delivery_id, accepted.status, accepted.created, accepted.warnings)


@get("/v1/deliveries/{delivery_id:str}", guards=[admin_guard])
async def get_delivery(request: Request[Any, Any, Any], delivery_id: str, include: str | None = None) -> Response[Any]:
    """`include=candidate` adds the candidate's name and address, for a token with the `pii`
    scope only, and records in the audit log that this token saw them."""
    if include not in (None, "", "candidate"):
        return problem(400, "Invalid request", "include: only 'candidate' is supported",
                       errors=[{"field": "include", "message": "unknown value"}])
    store = _runtime(request).store
    delivery = await store.get(delivery_id)
    if delivery is None:
        return problem(404, "Not found", f"no delivery {delivery_id}")
    body = public_view(delivery)
    if include == "candidate":
        token = current_token(request)
        if token is None or "pii" not in token.scopes:
            return problem(403, "Forbidden", "this token lacks the 'pii' scope")
        raw = await store.load_payload(delivery.id) if delivery.kind == "application" else None
        if raw is not None:
            candidate = stored_decoder.decode(raw).candidate
            body["candidate"] = {"first_name": candidate.first_name, "last_name": candidate.last_name,
                                 "email_address": candidate.email_address}
            await audit.record(store.redis, token.name, "view_detail", delivery.id,
                               {"fields": "first_name,last_name,email_address"})
        else:
            body["candidate"] = None
    return Response(body)


@get("/v1/deliveries", guards=[admin_guard])
async def list_deliveries(request: Request[Any, Any, Any], status: str | None = None, limit: int = 50,
                          offset: int = 0) -> Response[Any]:
    if status is not None and status not in STATUSES:
        return problem(400, "Invalid request", f"status must be one of {', '.join(STATUSES)}",
                       errors=[{"field": "status", "message": "unknown status"}])
    limit = max(1, min(limit, 500))
    store = _runtime(request).store
    deliveries = await store.get_many(await store.list_ids(status, offset=max(offset, 0), count=limit))
    return Response({"data": [public_view(d) for d in deliveries], "counts": await store.counts()})


@post("/v1/deliveries/{delivery_id:str}/retry", guards=[retry_guard])
async def retry_delivery(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    return await _retry(request, delivery_id, attachments_only=False)


@post("/v1/deliveries/{delivery_id:str}/retry-attachments", guards=[retry_guard])
async def retry_attachments(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    return await _retry(request, delivery_id, attachments_only=True)


async def _retry(request: Request[Any, Any, Any], delivery_id: str, *, attachments_only: bool) -> Response[Any]:
    try:
        result = await operations.retry(_runtime(request).store, delivery_id, attachments_only=attachments_only)
    except operations.OperationError as exc:
        return problem(exc.status, exc.title, exc.detail)
    token = current_token(request)
    await audit.record(_runtime(request).redis, token.name if token else "?",
                       "retry_attachments" if attachments_only else "retry", delivery_id, {"changed": result.changed})
    return Response({"id": result.delivery_id, "status": result.status, "changed": result.changed},
                    status_code=202 if result.changed else 200)


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    """The process is up (liveness)."""
    return {"status": "ok"}


@get("/ready")
async def ready(request: Request[Any, Any, Any]) -> Response[Any]:
    """Redis answers (readiness)."""
    try:
        await _runtime(request).redis.ping()
    except Exception as exc:  # any failure to reach Redis means not ready
        return problem(503, "Not ready", f"redis: {type(exc).__name__}", headers={"Retry-After": "5"})
    return Response({"status": "ready"})


def api_router() -> Router:
    return Router(path="/", route_handlers=[
        create_application, get_delivery, list_deliveries, retry_delivery, retry_attachments,
        health, ready,
    ], request_max_body_size=None)
