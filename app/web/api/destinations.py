"""Outbound destinations on Svix's model (docs/boards.md, "Callback health"): each destination's
attempts, operational events, re-enabling a disabled destination, "recover failed messages since
T" in the background, and what was reported back to a delivery's board.

Scopes: `read` to look, `retry` to enable and recover (audited)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.params import Parameter

from app.core.problems import Problem
from app.privacy import audit
from app.runtime import Runtime
from app.tracking import boards, callbacks, health
from app.web.auth import require_scope
from app.web.deps import actor, read_body, runtime_of
from app.web.openapi import SECURED, ok, secured

read_guard = require_scope("read")
retry_guard = require_scope("retry")
KINDS = ("callback", "hellowork", "indeed")


def _destination(runtime: Runtime, destination: str) -> str:
    kind, _, connection = destination.partition(":")
    if kind not in KINDS or connection not in runtime.config.connections:
        raise Problem(
            404, "Not found", f"no destination {destination[:100]!r} (kind:connection)", code="PLATFORM.NOT_FOUND"
        )
    return destination


MAX_SINCE_S = 253_402_300_799  # 9999-12-31T23:59:59Z: past it, no date-time is meant


def _since(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if -MAX_SINCE_S <= value <= MAX_SINCE_S:  # 400 digits of an int would not even fit a float
            return float(value)
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()
    raise Problem.invalid("since", "epoch seconds or an ISO 8601 date-time") from None


async def _requeue(runtime: Runtime, message_id: str, now: float) -> bool:
    if message_id.startswith("brp_"):
        return await boards.requeue(runtime.redis, message_id, now)
    return await callbacks.requeue(runtime.redis, message_id, now)


@get("/v1/destinations", guards=[read_guard], security=SECURED, responses={200: ok(dict[str, Any]), **secured(503)})
async def list_destinations(request: Request[Any, Any, Any]) -> Response[Any]:
    rows = await health.all_destinations(runtime_of(request).redis)
    return Response({"data": rows, "disabled": [r["destination"] for r in rows if r["disabled"]]})


@get(
    "/v1/destinations/{destination:str}",
    guards=[read_guard],
    security=SECURED,
    responses={200: ok(dict[str, Any]), **secured(404, 503)},
)
async def get_destination(request: Request[Any, Any, Any], destination: str) -> Response[Any]:
    runtime = runtime_of(request)
    return Response(await health.describe(runtime.redis, _destination(runtime, destination), attempts=100))


@post(
    "/v1/destinations/{destination:str}/enable",
    guards=[retry_guard],
    status_code=200,
    security=SECURED,
    responses={200: ok(dict[str, Any]), **secured(404, 503)},
)
async def enable_destination(request: Request[Any, Any, Any], destination: str) -> Response[Any]:
    runtime = runtime_of(request)
    dest = _destination(runtime, destination)
    enabled = await health.enable(runtime.redis, dest, time.time(), actor(request))
    if enabled:
        await audit.record(runtime.redis, actor(request), "destination_enable", dest)
    return Response({"destination": dest, "enabled": enabled, "disabled": False})


@post(
    "/v1/destinations/{destination:str}/recover",
    guards=[retry_guard],
    status_code=202,
    security=SECURED,
    responses={202: ok(dict[str, Any]), **secured(400, 404, 413, 415, 422, 503)},
)
async def recover_destination(request: Request[Any, Any, Any], destination: str) -> Response[Any]:
    """Re-send, in the background, every message to this destination that failed since `since`."""
    runtime = runtime_of(request)
    dest = _destination(runtime, destination)
    raw = await read_body(request)
    try:
        body = msgspec.json.decode(raw) if raw else {}
    except msgspec.DecodeError as exc:
        raise Problem.malformed_json(str(exc)) from None
    if not isinstance(body, dict) or "since" not in body:
        raise Problem.invalid("since", "required: epoch seconds or an ISO 8601 date-time")
    since = _since(body["since"])

    async def requeue(message_id: str, now: float) -> bool:
        return await _requeue(runtime, message_id, now)

    recover_id = await health.start_recover(runtime.redis, dest, since, actor(request), requeue)
    await audit.record(runtime.redis, actor(request), "destination_recover", dest, {"since": since})
    return Response(
        {"id": recover_id, "progress": f"/v1/recoveries/{recover_id}"},
        status_code=202,
        headers={"Location": f"/v1/recoveries/{recover_id}"},
    )


@get(
    "/v1/recoveries/{recover_id:str}",
    guards=[read_guard],
    security=SECURED,
    responses={200: ok(dict[str, Any]), **secured(404, 503)},
)
async def recovery_progress(request: Request[Any, Any, Any], recover_id: str) -> Response[Any]:
    progress = await health.recover_progress(runtime_of(request).redis, recover_id)
    if progress is None:
        raise Problem(404, "Not found", f"no recovery {recover_id[:60]!r}", code="PLATFORM.NOT_FOUND")
    return Response(progress)


@get("/v1/events", guards=[read_guard], security=SECURED, responses={200: ok(dict[str, Any]), **secured(503)})
async def list_events(
    request: Request[Any, Any, Any],
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    type: Annotated[str | None, Parameter(max_length=100)] = None,
) -> Response[Any]:
    rows = await health.events(runtime_of(request).redis, limit)
    return Response({"data": [r for r in rows if type is None or r["type"] == type]})


@get(
    "/v1/deliveries/{delivery_id:str}/board-reports",
    guards=[read_guard],
    security=SECURED,
    responses={200: ok(dict[str, Any]), **secured(503)},
)
async def board_reports(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    """What was reported back to the delivery's board, and when (ids, labels, dates: no PII)."""
    reports = await boards.reports_of(runtime_of(request).redis, delivery_id)
    return Response({"data": [msgspec.to_builtins(r) for r in reports]})


def router(runtime: Runtime) -> Router:
    return Router(
        path="/",
        route_handlers=[
            list_destinations,
            get_destination,
            enable_destination,
            recover_destination,
            recovery_progress,
            list_events,
            board_reports,
        ],
    )
