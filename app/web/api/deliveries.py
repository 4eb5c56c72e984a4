"""The operator JSON API on deliveries: list with filters and cursors, counts, detail with the step
timeline, retry, retry attachments, bulk retry with pollable progress, purge; and /metrics.

Scopes: `read` to list and inspect (no PII), `pii` to see the candidate's name (audited),
`retry` for retries, `erase` to purge. Every action lands in the audit log under the token's name.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from app.core.problems import FieldError, Problem
from app.intake.decode import invalid
from app.operator import metrics, query, retries, views
from app.operator.connection_health import metrics_text as connection_metrics_text
from app.operator.query import build_filter, counts, find, known_names
from app.privacy import audit
from app.runtime import Runtime
from app.web.auth import current_token, require_scope
from app.web.deps import actor, read_body, runtime_of
from app.web.openapi import (
    SECURED,
    BulkProgress,
    BulkStarted,
    Counts,
    DeliveryDetail,
    DeliveryPage,
    Purged,
    RetryResult,
    body,
    ok,
    query_params,
    secured,
)
from app.web.problems import problem, render

read_guard = require_scope("read")
retry_guard = require_scope("retry")
erase_guard = require_scope("erase")


@get(
    "/v1/deliveries",
    guards=[read_guard],
    opt=query_params(
        status="a delivery status",
        connection="a connection id",
        connector="a connector name",
        channel="api, indeed, webhook or form",
        board="the board's name",
        received_from="epoch seconds or ISO 8601",
        received_to="epoch seconds or ISO 8601",
        q="a delivery id or a board application id",
    ),
    security=SECURED,
    responses={200: ok(DeliveryPage), **secured(400, 503)},
)
async def list_deliveries(request: Request[Any, Any, Any], limit: int = 50, cursor: str | None = None) -> Response[Any]:
    """Filters: status, connection, connector, channel, board, received_from / received_to (epoch
    seconds or ISO 8601), q (a delivery id or a board application id); newest received first."""
    store = runtime_of(request).store
    if not 1 <= limit <= query.MAX_LIMIT:  # said, not clamped: a client asking for -5 rows has a bug
        raise Problem.invalid("limit", f"from 1 to {query.MAX_LIMIT}", title="Invalid request")
    f = build_filter({name: request.query_params.get(name) for name in query.FILTER_FIELDS})
    page = await find(store, f, limit=limit, cursor=cursor)
    return Response(
        {
            "data": [views.summary(d) for d in page.deliveries],
            "next_cursor": page.next_cursor,
            "counts": await store.counts(),
        }
    )


@get("/v1/deliveries/counts", guards=[read_guard], security=SECURED, responses={200: ok(Counts), **secured(503)})
async def delivery_counts(request: Request[Any, Any, Any]) -> Response[Any]:
    runtime = runtime_of(request)
    names = views.connection_names(runtime.config.connections, await known_names(runtime.store, "connection"))
    return Response(await counts(runtime.store, names))


@get(
    "/v1/deliveries/{delivery_id:str}",
    guards=[read_guard],
    security=SECURED,
    responses={200: ok(DeliveryDetail), **secured(400, 404, 503)},
)
async def get_delivery(request: Request[Any, Any, Any], delivery_id: str, include: str | None = None) -> Response[Any]:
    """The delivery with every attempt and its timeline; `include=candidate` adds the candidate's
    name for a token with the `pii` scope (and records that it was seen)."""
    store = runtime_of(request).store
    if include not in (None, "", "candidate"):
        return problem(
            400,
            "Invalid request",
            "include: only 'candidate' is supported",
            errors=[{"field": "include", "message": "unknown value"}],
        )
    delivery = await store.get(delivery_id)
    if delivery is None:
        return problem(404, "Not found", f"no delivery {delivery_id}")
    body = views.public_view(delivery)
    body["timeline"] = views.timeline(delivery)
    if include == "candidate":
        token = current_token(request)
        if token is None or "pii" not in token.scopes:
            return problem(403, "Forbidden", "this token lacks the 'pii' scope")
        body["candidate"] = await views.show_candidate(store, delivery, token.name, "api")
    return Response(body)


@post(
    "/v1/deliveries/{delivery_id:str}/retry",
    guards=[retry_guard],
    status_code=202,
    security=SECURED,
    responses={
        202: ok(RetryResult, "Queued again"),
        200: ok(RetryResult, "Already queued or running: left alone"),
        **secured(404, 409, 503),
    },
)
async def retry_delivery(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    """Run it again from its last checkpoint; a delivery already queued or running is left alone."""
    return await _retry(request, delivery_id, attachments_only=False)


@post(
    "/v1/deliveries/{delivery_id:str}/retry-attachments",
    guards=[retry_guard],
    status_code=202,
    security=SECURED,
    responses={
        202: ok(RetryResult, "Queued again"),
        200: ok(RetryResult, "Nothing to re-send, or already queued"),
        **secured(404, 409, 503),
    },
)
async def retry_attachments(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    """Re-send every attachment the ATS has not confirmed."""
    return await _retry(request, delivery_id, attachments_only=True)


async def _retry(request: Request[Any, Any, Any], delivery_id: str, *, attachments_only: bool) -> Response[Any]:
    try:
        result = await retries.retry_one(
            runtime_of(request).store, delivery_id, actor(request), attachments_only=attachments_only
        )
    except Problem as exc:
        return render(exc)
    return Response(
        {"id": result.delivery_id, "status": result.status, "changed": result.changed},
        status_code=202 if result.changed else 200,
    )


class BulkRetryIn(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    all: bool = False  # no filter at all: every retryable delivery, said on purpose
    status: str | None = None
    connection: str | None = None
    connector: str | None = None
    channel: str | None = None
    board: str | None = None
    received_from: str | float | None = None
    received_to: str | float | None = None
    q: str | None = None


@post(
    "/v1/deliveries/retry",
    guards=[retry_guard],
    status_code=202,
    opt=body(BulkRetryIn),
    security=SECURED,
    responses={202: ok(BulkStarted, "Started; poll the Location"), **secured(400, 413, 415, 503)},
)
async def bulk_retry(request: Request[Any, Any, Any]) -> Response[Any]:
    """Retry every delivery matching the filters (JSON body, the list's filter names), in the
    background; poll the Location for progress."""
    body = await read_body(request)
    try:
        data = msgspec.json.decode(body or b"{}", type=BulkRetryIn)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None
    except msgspec.DecodeError as exc:
        raise Problem.malformed_json(str(exc)) from None
    params = {k: (None if v is None else str(v)) for k, v in msgspec.structs.asdict(data).items() if k != "all"}
    f = build_filter(params)
    if not f.as_params() and not data.all:
        # An empty body once re-ran every delivery, the same permanent failures included.
        raise Problem(
            422,
            "A filter is required",
            'name at least one filter (status, connection, ...) or say {"all": true}',
            [FieldError("$", "no filter")],
            code="PLATFORM.FILTER_REQUIRED",
        )
    if f.as_params() and data.all:
        raise Problem.invalid("all", "either filters or all, not both", title="Invalid request")
    bulk_id = await retries.start_bulk_retry(runtime_of(request).store, f, actor(request))
    return Response(
        {"id": bulk_id, "status": "running", "filter": f.as_params()},
        status_code=202,
        headers={"Location": f"/v1/bulk-retries/{bulk_id}"},
    )


@get(
    "/v1/bulk-retries/{bulk_id:str}",
    guards=[read_guard],
    security=SECURED,
    responses={200: ok(BulkProgress), **secured(404, 503)},
)
async def bulk_retry_progress(request: Request[Any, Any, Any], bulk_id: str) -> Response[Any]:
    progress = await retries.bulk_progress(runtime_of(request).store, bulk_id)
    if progress is None:
        return problem(404, "Not found", f"no bulk retry {bulk_id}")
    return Response(progress.as_dict())


@delete(
    "/v1/deliveries/{delivery_id:str}",
    guards=[erase_guard],
    status_code=200,
    security=SECURED,
    responses={200: ok(Purged), **secured(404, 409, 503)},
)
async def purge_delivery(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    """Purge a dead letter: its payload and files are deleted, its state stays as a tombstone."""
    runtime = runtime_of(request)
    try:
        delivery = await retries.purge(runtime.store, delivery_id)
    except Problem as exc:
        return render(exc)
    await audit.record(runtime.redis, actor(request), "purge", delivery_id)
    return Response({"id": delivery.id, "status": delivery.status, "payload_purged": True, "files_purged": True})


def metrics_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """A `read` token, unless APPLYRELAY_METRICS_PUBLIC=1 (a scraper on a private network)."""
    if connection.app.state.runtime.settings.metrics_public:
        return
    read_guard(connection, handler)


@get(
    "/metrics",
    guards=[metrics_guard],
    security=[*SECURED, {}],  # {}: no token when APPLYRELAY_METRICS_PUBLIC=1
    responses={200: ok(str, "Prometheus text format", metrics.CONTENT_TYPE), **secured(503)},
)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
    runtime = runtime_of(request)
    names = views.connection_names(runtime.config.connections, await known_names(runtime.store, "connection"))
    body = await metrics.render(runtime.store, names)
    body += (
        await connection_metrics_text(runtime.store, runtime.config, threshold_s=runtime.settings.degraded_after_s)
    ).encode()  # health per connection
    body += runtime.capacity.gauge_text().encode()  # Redis full, the blob store away (app/blobs/capacity.py)
    return Response(body, media_type=metrics.CONTENT_TYPE)


def router(_: Runtime) -> Router:
    return Router(
        path="/",
        route_handlers=[
            list_deliveries,
            delivery_counts,
            get_delivery,
            retry_delivery,
            retry_attachments,
            bulk_retry,
            bulk_retry_progress,
            purge_delivery,
            metrics_endpoint,
        ],
    )


__all__ = ["router"]
