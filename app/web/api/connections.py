"""Connection operations: the connections API, resume after a pause, API passthrough, metrics.

GET    /v1/connections                      read   every connection: origin, settings, which
                                                   credential kind is set and when (never a
                                                   secret), paused reason, deliveries by status
GET    /v1/connections/{id}                 read   one of them
POST   /v1/connections                      admin  make one (checked against the ATS first)
PATCH  /v1/connections/{id}                 admin  settings (merge patch), credentials, base_url
DELETE /v1/connections/{id}[?force=true]    admin  refused while deliveries are pending, unless forced
POST /v1/connections/{id}/resume            admin  lift the pause, re-queue its paused deliveries
POST /v1/connections/{id}/passthrough       admin  one call to the ATS API with the connection's
                                                   credentials, confined to its API base
GET  /metrics                               read   Prometheus gauges (failing age, paused, queue)

The API's design and its scopes: docs/connections.md, "The connections API".
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import msgspec
import structlog
from litestar import Request, Response, Router, delete, get, patch, post
from msgspec import Meta

from app.config import Connection
from app.connections.service import (
    ConnectionEditor,
    ConnectionPatch,
    NewConnection,
    PendingDeliveries,
    file_connection,
    unknown,
)
from app.connections.store import ConnectionRecord
from app.core.problems import FieldError, Problem
from app.operator import connection_health, connections_view
from app.operator.connection_health import ConnectionStatus, connection_statuses
from app.privacy import audit
from app.runtime import Runtime
from app.web.auth import current_token, require_scope
from app.web.deps import read_body, runtime_of
from app.web.openapi import SECURED, PassthroughResult, Resumed, body, ok, query_params, secured
from app.web.problems import problem
from connectors.base import AuthError, Connector, PermanentError, TransientError

log = structlog.get_logger("applyrelay.connections")

read_guard = require_scope("read")
admin_guard = require_scope("admin")
T = TypeVar("T")
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
    relative = "must be relative to the ATS API base (e.g. ats/job_postings), not a URL or an absolute path"
    try:
        parts = urlsplit(path)
    except ValueError:  # "http://[zz]/": a URL, if a malformed one (urlsplit checks bracketed hosts)
        return relative
    if parts.scheme or parts.netloc or path.startswith("/") or "\\" in decoded:
        return relative
    if not SAFE_PATH.match(path) or any(ord(c) < 32 for c in decoded):
        return "may only hold URL path characters (put the query in `query`)"
    if any(seg in (".", "..") for seg in decoded.split("/")) or "//" in decoded or decoded.startswith("/"):
        return "may not contain '.', '..' or empty segments"
    return None


class CredentialsView(msgspec.Struct):
    kind: str  # api_key | oauth | token
    set_at: float | None  # None for a file connection (its secret is in the environment)


class ConnectionView(msgspec.Struct):
    """A connection as the API shows it: nothing secret, not even the names of `*_env` variables."""

    id: str
    connector: str
    origin: Literal["file", "api"]
    base_url: str
    created_at: float | None
    updated_at: float | None
    settings: dict[str, Any]
    credentials: CredentialsView
    paused: bool
    paused_reason: str | None
    counts: dict[str, int]
    failing: int
    oldest_failing_s: float
    degraded: bool
    in_flight: int
    concurrency: int
    rate_per_s: float | None


class ConnectionList(msgspec.Struct):
    data: list[ConnectionView]


class DeletedView(msgspec.Struct):
    id: str
    deleted: bool
    pending: dict[str, int]  # its deliveries not yet finished when the DELETE came, by status
    dead_lettered: list[str]  # those now failed with the deletion as their reason
    in_flight: list[str]  # a run outlasted the wait: the worker dead-letters it (connection gone)


def _public(settings: Any) -> Any:
    """Settings without the keys naming environment variables (`*_env`), at any depth."""
    if isinstance(settings, dict):
        return {k: _public(v) for k, v in settings.items() if not k.endswith("_env")}
    if isinstance(settings, list):
        return [_public(v) for v in settings]
    return settings


def _file_kind(connection: Connection) -> str:
    if connection.connector == "laura":
        return "token"
    return "oauth" if getattr(connection.settings, "auth", None) == "oauth" else "api_key"


def connection_view(
    connection: Connection, record: ConnectionRecord | None, status: ConnectionStatus
) -> dict[str, Any]:
    credentials: dict[str, Any]
    created_at: float | None
    updated_at: float | None
    if record is not None:
        settings = dict(record.settings)
        credentials = {"kind": record.credential_kind, "set_at": record.credentials_set_at}
        created_at, updated_at = record.created_at, record.updated_at
    else:  # the file's: its connector's settings as decoded
        settings = msgspec.to_builtins(connection.settings)
        credentials = {"kind": _file_kind(connection), "set_at": None}
        created_at = updated_at = None
    view = status.view()
    return {
        "id": connection.id,
        "connector": connection.connector,
        "origin": connection.origin,
        "base_url": connection.base_url,
        "created_at": created_at,
        "updated_at": updated_at,
        "settings": _public(settings),
        "credentials": credentials,
        **{k: view[k] for k in view if k not in ("id", "connector")},
    }


async def _views(runtime: Runtime, only: str | None = None) -> list[dict[str, Any]]:
    await runtime.registry.refresh()  # one GET of the version: made by another web process a moment ago
    statuses = await connection_statuses(runtime.store, runtime.config, threshold_s=runtime.settings.degraded_after_s)
    views = []
    for status in statuses:
        if only is not None and status.id != only:
            continue
        connection = runtime.config.connections.get(status.id)
        if connection is None:  # deleted meanwhile
            continue
        record = await runtime.connection_store.get(status.id) if connection.origin == "api" else None
        if connection.origin == "api" and record is None:  # deleted meanwhile
            continue
        views.append(connection_view(connection, record, status))
    return views


@get(
    "/v1/connections",
    guards=[read_guard],
    security=SECURED,
    responses={200: ok(ConnectionList), **secured(503)},
)
async def list_connections(request: Request[Any, Any, Any]) -> Response[Any]:
    """Every connection, the file's and the API's: its settings, which credential kind is set and
    when (never a secret), paused reason, deliveries by status, failing age."""
    return Response({"data": await _views(runtime_of(request))})


@get(
    "/v1/connections/{connection_id:str}",
    guards=[read_guard],
    security=SECURED,
    responses={200: ok(ConnectionView), **secured(404, 503)},
)
async def get_connection(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    """One connection, as in the list."""
    runtime = runtime_of(request)
    await runtime.registry.refresh()
    if connection_id not in runtime.config.connections:
        raise unknown(connection_id)
    views = await _views(runtime, connection_id)
    if not views:
        raise unknown(connection_id)
    return Response(views[0])


def _decode_as(body: bytes, kind: type[T]) -> T:
    """The body as `kind`, or a Problem naming the field at fault (400 for no JSON)."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = "$"
        if "at `$." in text:
            field = text.split("at `$.", 1)[1].rstrip("`")
        elif "Object missing required field" in text or "unknown field" in text:
            field = text.split("`")[1]
        message = text.split(" - at ")[0]
        raise Problem(422, "Invalid request", text, errors=[FieldError(field, message)]) from None
    except msgspec.DecodeError as exc:
        raise Problem.malformed_json(str(exc)) from None


async def _one_view(runtime: Runtime, connection_id: str) -> dict[str, Any]:
    views = await _views(runtime, connection_id)
    if not views:  # deleted by another request meanwhile
        raise unknown(connection_id)
    return views[0]


@post(
    "/v1/connections",
    guards=[admin_guard],
    status_code=201,
    opt=body(NewConnection),
    security=SECURED,
    responses={201: ok(ConnectionView, "Made; checked against the ATS"), **secured(400, 409, 413, 415, 422, 503)},
)
async def create_connection(request: Request[Any, Any, Any]) -> Response[Any]:
    """Make a connection: validated like a TOML table, its credentials checked with one cheap
    authenticated read against the ATS (422 INTEGRATION.AUTHENTICATION_INVALID with the ATS's
    reason when refused), stored sealed; every web and worker process uses it within seconds."""
    runtime = runtime_of(request)
    new = _decode_as(await read_body(request), NewConnection)
    actor = _actor(request)
    connection = await runtime.connections.create(new, actor)
    await audit.record(
        runtime.redis,
        actor,
        "create_connection",
        new.id,
        {"connector": new.connector, "settings": sorted(new.settings), "inbound_secrets": sorted(new.inbound_secrets)},
    )
    return Response(
        await _one_view(runtime, connection.id),
        status_code=201,
        headers={"Location": f"/v1/connections/{connection.id}"},
    )


@patch(
    "/v1/connections/{connection_id:str}",
    guards=[admin_guard],
    status_code=200,
    opt=body(ConnectionPatch),
    security=SECURED,
    responses={200: ok(ConnectionView), **secured(400, 404, 409, 413, 415, 422, 503)},
)
async def update_connection(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    """Change a connection made through the API: `settings` as a JSON merge patch (a null removes
    a key), `credentials` replaced (checked against the ATS first), `base_url`. New credentials
    the ATS accepted lift the connection's pause (every pause is a refusal of the old ones) and
    re-queue what it held, as a reconnect link does. A file connection answers 409: change the file."""
    runtime = runtime_of(request)
    await runtime.registry.refresh()
    if connection_id not in runtime.config.connections:
        raise unknown(connection_id)
    if runtime.registry.from_file(connection_id):
        raise file_connection(connection_id)
    change = _decode_as(await read_body(request), ConnectionPatch)
    actor = _actor(request)
    _, changed = await ConnectionEditor(runtime.connections).update(connection_id, change, actor)
    detail: dict[str, Any] = {"changed": changed}
    if "credentials" in changed and await runtime.store.paused_reason(connection_id) is not None:
        detail["resumed_deliveries"] = await connections_view.resume(
            runtime.store, connection_id, actor, via="api-credentials"
        )
    if change.settings is not None:
        detail["settings"] = sorted(change.settings)
    await audit.record(runtime.redis, actor, "update_connection", connection_id, detail)
    return Response(await _one_view(runtime, connection_id))


@delete(
    "/v1/connections/{connection_id:str}",
    guards=[admin_guard],
    status_code=200,
    opt=query_params(force="true: dead-letter its pending deliveries and delete it all the same"),
    security=SECURED,
    responses={200: ok(DeletedView), **secured(404, 409, 503)},
)
async def delete_connection(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    """Delete a connection made through the API. Refused (409, with the counts) while its
    deliveries are queued, retrying, running or paused, unless `?force=true`, which dead-letters
    them (code PLATFORM.INTEGRATION_NOT_FOUND, the deletion as the reason). Delivered ones keep
    their history. A file connection answers 409: change the file."""
    runtime = runtime_of(request)
    force = request.query_params.get("force", "false")
    if force not in ("true", "false"):
        raise Problem(
            422,
            "Invalid request",
            "force: must be true or false",
            errors=[FieldError("force", "must be true or false")],
        )
    await runtime.registry.refresh()
    if connection_id not in runtime.config.connections:
        raise unknown(connection_id)
    if runtime.registry.from_file(connection_id):
        raise file_connection(connection_id)
    actor = _actor(request)
    editor = ConnectionEditor(runtime.connections)
    try:
        deleted = await editor.delete(
            runtime.store, connection_id, actor, force=force == "true", lease_wait_s=runtime.settings.job_timeout_s + 5
        )
    except PendingDeliveries as exc:
        await audit.record(runtime.redis, actor, "delete_connection", connection_id, {"refused": exc.pending})
        return problem(exc.status, exc.title, exc.detail, code=exc.code, pending=exc.pending)
    await audit.record(
        runtime.redis,
        actor,
        "delete_connection",
        connection_id,
        {"force": force == "true", "pending": deleted.pending, "dead_lettered": len(deleted.dead_lettered)},
    )
    return Response(
        {
            "id": connection_id,
            "deleted": True,
            "pending": deleted.pending,
            "dead_lettered": deleted.dead_lettered,
            "in_flight": deleted.in_flight,
        }
    )


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
        raise Problem.malformed_json(str(exc)) from None


@post(
    "/v1/connections/{connection_id:str}/passthrough",
    guards=[admin_guard],
    status_code=200,
    opt=body(PassthroughRequest),
    security=SECURED,
    responses={
        200: ok(PassthroughResult, "The ATS's answer, whatever its status"),
        **secured(400, 404, 413, 415, 422, 501, 502, 503, 504),
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
    return Router(
        path="/",
        route_handlers=[
            list_connections,
            get_connection,
            create_connection,
            update_connection,
            delete_connection,
            resume,
            passthrough,
        ],
    )
