"""Connection operations: status of every connection, resume after a pause, API passthrough, metrics.

GET  /v1/connections                        read   paused reason, deliveries by status, failing age
POST /v1/connections/{id}/resume            admin  lift the pause, re-queue its paused deliveries
POST /v1/connections/{id}/passthrough       admin  one call to the ATS API with the connection's
                                                   credentials, confined to its API base
GET  /metrics                               read   Prometheus gauges (failing age, paused, queue)
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import msgspec
import structlog
from litestar import Request, Response, Router, get, post
from msgspec import Meta

from app.operator import connection_health
from app.operator.connection_health import connection_statuses
from app.privacy import audit
from app.runtime import Runtime
from app.web.auth import current_token, require_scope
from app.web.deps import read_body, runtime_of
from app.web.openapi import SECURED, DataList, PassthroughResult, Resumed, body, ok, secured
from app.web.problems import problem
from connectors.base import AuthError, Connector, PermanentError, TransientError

log = structlog.get_logger("applyrelay.connections")

read_guard = require_scope("read")
admin_guard = require_scope("admin")
SAFE_PATH = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@%/-]+$")


class PassthroughRequest(msgspec.Struct, forbid_unknown_fields=True):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: Annotated[str, Meta(min_length=1, max_length=1000)]
    query: dict[Annotated[str, Meta(max_length=200)], Annotated[str, Meta(max_length=2000)]] = {}
    body: Any = None


def _actor(request: Request[Any, Any, Any]) -> str:
    token = current_token(request)
    return token.name if token else "?"


def path_problem(path: str) -> str | None:
    """Why `path` may not be sent (None: it is a plain path under the API base). The connector
    checks again; this refuses anything that could leave the base before a connector is reached."""
    decoded = unquote(unquote(path))
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or path.startswith("/") or "\\" in decoded:
        return "must be relative to the ATS API base (e.g. ats/job_postings), not a URL or an absolute path"
    if not SAFE_PATH.match(path) or any(ord(c) < 32 for c in decoded):
        return "may only hold URL path characters (put the query in `query`)"
    if any(seg in (".", "..") for seg in decoded.split("/")) or "//" in decoded or decoded.startswith("/"):
        return "may not contain '.', '..' or empty segments"
    return None


@get("/v1/connections", guards=[read_guard], security=SECURED, responses={200: ok(DataList), **secured(503)})
async def list_connections(request: Request[Any, Any, Any]) -> Response[Any]:
    runtime = runtime_of(request)
    statuses = await connection_statuses(runtime.store, runtime.config, threshold_s=runtime.settings.degraded_after_s)
    return Response({"data": [s.view() for s in statuses]})


@post(
    "/v1/connections/{connection_id:str}/resume",
    guards=[admin_guard],
    status_code=200,
    security=SECURED,
    responses={200: ok(Resumed), **secured(404, 503)},
)
async def resume(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    runtime = runtime_of(request)
    if connection_id not in runtime.config.connections:
        return problem(404, "Unknown connection", f"connection {connection_id!r} is not configured")
    was_paused = await runtime.store.paused_reason(connection_id) is not None
    resumed = await connection_health.resume(runtime.store, connection_id)
    await audit.record(
        runtime.redis,
        _actor(request),
        "resume_connection",
        connection_id,
        {"resumed_deliveries": resumed, "was_paused": was_paused},
    )
    log.info("connection.resumed", connection=connection_id, resumed_deliveries=resumed)
    return Response({"id": connection_id, "paused": False, "was_paused": was_paused, "resumed_deliveries": resumed})


def _decode(body: bytes) -> PassthroughRequest | Response[Any]:
    try:
        return msgspec.json.decode(body, type=PassthroughRequest)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.split("at `$.", 1)[1].rstrip("`").split("[", 1)[0] if "at `$." in text else "$"
        if "Object missing required field" in text:
            field = text.split("`")[1]
        return problem(422, "Invalid request", text, errors=[{"field": field, "message": text}])
    except msgspec.DecodeError as exc:
        return problem(400, "Malformed JSON", str(exc), errors=[{"field": "$", "message": "not valid JSON"}])


@post(
    "/v1/connections/{connection_id:str}/passthrough",
    guards=[admin_guard],
    status_code=200,
    opt=body(PassthroughRequest),
    security=SECURED,
    responses={
        200: ok(PassthroughResult, "The ATS's answer, whatever its status"),
        **secured(400, 404, 413, 422, 501, 502, 503, 504),
    },
)
async def passthrough(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    runtime = runtime_of(request)
    if connection_id not in runtime.config.connections:
        return problem(404, "Unknown connection", f"connection {connection_id!r} is not configured")
    call = _decode(await read_body(request))
    if isinstance(call, Response):
        return call
    reason = path_problem(call.path)
    if reason:
        return problem(422, "Invalid request", f"path {reason}", errors=[{"field": "path", "message": reason}])
    connector = runtime.connectors.get(connection_id)
    if type(connector).passthrough is Connector.passthrough:
        return problem(501, "Not supported", f"{connector.name} has no API passthrough")
    actor = _actor(request)
    detail: dict[str, Any] = {"method": call.method, "path": call.path, "query_keys": sorted(call.query)}
    try:
        result = await connector.passthrough(call.method, call.path, call.query, call.body)
    except AuthError as exc:
        await audit.record(runtime.redis, actor, "passthrough", connection_id, {**detail, "outcome": "auth"})
        return problem(502, "ATS refused the credentials", exc.detail)
    except TransientError as exc:
        await audit.record(runtime.redis, actor, "passthrough", connection_id, {**detail, "outcome": "transient"})
        return problem(504 if exc.timeout else 502, "ATS unavailable", exc.detail, headers={"Retry-After": "30"})
    except PermanentError as exc:
        await audit.record(runtime.redis, actor, "passthrough", connection_id, {**detail, "outcome": "refused"})
        return problem(422, "Passthrough refused", exc.detail, errors=[{"field": "path", "message": exc.detail}])
    await audit.record(runtime.redis, actor, "passthrough", connection_id, {**detail, "status": result.status})
    log.info("connection.passthrough", connection=connection_id, method=call.method, http_status=result.status)
    return Response({"status": result.status, "headers": result.headers, "body": result.body})


def router(runtime: Runtime) -> Router:
    return Router(path="/", route_handlers=[list_connections, resume, passthrough])
