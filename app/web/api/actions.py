"""Connector actions beyond the create-application flow, queued and retried like deliveries:
add an attachment, add a result link, move an application to a stage — on a delivered
application (by delivery id) or on remote ids given directly — and reading a candidate's files."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.types import AnyCallable
from msgspec import Meta

from app.core.model import AttachmentIn
from app.core.problems import FieldError, Problem
from app.delivery.record import Delivery
from app.intake.accept import build_attachments
from app.intake.decode import decode_with_files
from app.operator import actions
from app.privacy import audit
from app.runtime import Runtime
from app.web.auth import current_token, require_scope, retry_guard
from app.web.deps import idempotency_key, read_body, runtime_of
from app.web.openapi import IDEMPOTENCY_KEY, SECURED, Accepted, DataList, body, ok, secured
from app.web.problems import problem
from connectors.base import (
    ACTION_ADD_ATTACHMENT_TO_APPLICATION,
    ACTION_ADD_ATTACHMENT_TO_CANDIDATE,
    ACTION_ADD_RESULT_LINK_TO_APPLICATION,
    ACTION_ADD_RESULT_LINK_TO_CANDIDATE,
    ACTION_MOVE_APPLICATION_TO_STAGE,
    Connector,
    ConnectorError,
    TransientError,
)

RemoteId = Annotated[str, Meta(min_length=1, max_length=200)]


class AddAttachment(msgspec.Struct, forbid_unknown_fields=True):
    attachment: AttachmentIn


class ResultAttribute(msgspec.Struct, forbid_unknown_fields=True):
    key: Annotated[str, Meta(min_length=1, max_length=100)]
    value: Annotated[str, Meta(max_length=2000)]


class ResultLinkDetails(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Kombo's result-link details: a field-name prefix and key/value attributes."""

    custom_field_name_prefix: Annotated[str, Meta(max_length=100)] | None = None
    attributes: Annotated[list[ResultAttribute], Meta(max_length=50)] = []


class AddResultLink(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    label: Annotated[str, Meta(min_length=1, max_length=200)]
    url: Annotated[str, Meta(pattern=r"^https?://\S+$", max_length=2048)]
    details: ResultLinkDetails | None = None


class MoveToStage(msgspec.Struct, forbid_unknown_fields=True):
    stage_id: RemoteId


def _decode(body: bytes, kind: type[Any]) -> Any:
    try:
        return decode_with_files(body, kind)
    except msgspec.ValidationError as exc:
        raise _refusal(exc) from None
    except msgspec.DecodeError as exc:
        raise Problem.malformed_json(str(exc)) from None


def _refusal(exc: msgspec.ValidationError) -> Problem:
    text = str(exc)
    field = text.split("at `$.", 1)[1].rstrip("`") if "at `$." in text else "$"
    return Problem(422, "Invalid request", text, [FieldError(field, text)])


async def _parent(request: Request[Any, Any, Any], delivery_id: str) -> Delivery:
    parent = await runtime_of(request).store.get(delivery_id)
    if parent is None:
        raise Problem(404, "Not found", f"no delivery {delivery_id}")
    if parent.kind != "application" or "application" not in parent.checkpoints:
        raise Problem(409, "Not delivered yet", "the application has no remote id yet; retry once it is delivered")
    return parent


def _supports(runtime: Runtime, connection_id: str, action: str) -> None:
    if connection_id not in runtime.config.connections:
        raise Problem(404, "Unknown connection", f"connection {connection_id!r} is not configured")
    connector = runtime.connectors.get(connection_id)
    if action not in connector.capabilities.actions:
        raise Problem(
            422,
            "Not supported by the target ATS",
            f"{connector.name} does not support {action}",
            [FieldError("action", "not supported by this ATS")],
        )


async def _queue(
    request: Request[Any, Any, Any],
    parent: Delivery | None,
    connection_id: str,
    action: str,
    params: dict[str, Any],
    files: list[Any] | None = None,
) -> Response[Any]:
    runtime = runtime_of(request)
    _supports(runtime, connection_id, action)
    connector = runtime.connectors.get(connection_id)
    new_id, created = await actions.enqueue_action(
        runtime.store,
        parent,
        action,
        params,
        files or [],
        idempotency_key(request),
        connection_id=connection_id,
        connector=connector.name,
    )
    token = current_token(request)
    await audit.record(
        runtime.redis,
        token.name if token else "?",
        action,
        new_id,
        {"connection": connection_id, "parent": parent.id if parent else None},
    )
    return Response(
        {"id": new_id, "status": "queued", "duplicate": not created},
        status_code=202,
        headers={"Location": f"/v1/deliveries/{new_id}"},
    )


async def _attachment_files(request: Request[Any, Any, Any], connection_id: str) -> list[Any]:
    runtime = runtime_of(request)
    body: AddAttachment = _decode(await read_body(request), AddAttachment)
    connector = runtime.connectors.get(connection_id)
    if body.attachment.type not in connector.capabilities.attachment_types:
        raise Problem(
            422,
            "Not accepted by the target ATS",
            f"{connector.name} takes attachments of type "
            f"{', '.join(sorted(connector.capabilities.attachment_types)) or 'none'}",
            [FieldError("attachment.type", "not supported by this ATS")],
        )
    return build_attachments([("attachment", body.attachment)], request.app.state.intake.connection(connection_id))


def _link_params(link: AddResultLink) -> dict[str, Any]:
    return {"label": link.label, "url": link.url, "details": msgspec.to_builtins(link.details or ResultLinkDetails())}


def _queued(path: str, model: type[msgspec.Struct]) -> Callable[[AnyCallable], HTTPRouteHandler]:
    """The route of a queued action (`model`: its body, for the OpenAPI document): the retry
    scope, an Idempotency-Key, 202 with the delivery to poll."""
    return post(
        path,
        guards=[retry_guard],
        opt=body(model, headers=IDEMPOTENCY_KEY),
        status_code=202,
        security=SECURED,
        responses={
            202: ok(Accepted, "Queued as a delivery; poll the Location"),
            **secured(400, 404, 409, 413, 415, 422, 503),
        },
    )


# -- on a delivered application (by delivery id) -------------------------------------------------


@_queued("/v1/deliveries/{delivery_id:str}/attachments", AddAttachment)
async def delivery_attachment(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    parent = await _parent(request, delivery_id)
    _supports(runtime_of(request), parent.connection_id, ACTION_ADD_ATTACHMENT_TO_APPLICATION)
    files = await _attachment_files(request, parent.connection_id)
    params = {"application_id": parent.checkpoints["application"]}
    if "candidate" in parent.checkpoints:
        params["candidate_id"] = parent.checkpoints["candidate"]
    return await _queue(request, parent, parent.connection_id, ACTION_ADD_ATTACHMENT_TO_APPLICATION, params, files)


@_queued("/v1/deliveries/{delivery_id:str}/stage", MoveToStage)
async def delivery_stage(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    parent = await _parent(request, delivery_id)
    body: MoveToStage = _decode(await read_body(request), MoveToStage)
    params = {"application_id": parent.checkpoints["application"], "stage_id": body.stage_id}
    return await _queue(request, parent, parent.connection_id, ACTION_MOVE_APPLICATION_TO_STAGE, params)


@_queued("/v1/deliveries/{delivery_id:str}/result-links", AddResultLink)
async def delivery_result_link(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    parent = await _parent(request, delivery_id)
    body: AddResultLink = _decode(await read_body(request), AddResultLink)
    params = {"application_id": parent.checkpoints["application"], **_link_params(body)}
    if "candidate" in parent.checkpoints:
        params["candidate_id"] = parent.checkpoints["candidate"]
    return await _queue(request, parent, parent.connection_id, ACTION_ADD_RESULT_LINK_TO_APPLICATION, params)


# -- on remote ids -------------------------------------------------------------------------------


@_queued("/v1/connections/{connection_id:str}/applications/{application_id:str}/stage", MoveToStage)
async def application_stage(request: Request[Any, Any, Any], connection_id: str, application_id: str) -> Response[Any]:
    body: MoveToStage = _decode(await read_body(request), MoveToStage)
    return await _queue(
        request,
        None,
        connection_id,
        ACTION_MOVE_APPLICATION_TO_STAGE,
        {"application_id": application_id, "stage_id": body.stage_id},
    )


@_queued("/v1/connections/{connection_id:str}/applications/{application_id:str}/attachments", AddAttachment)
async def application_attachment(
    request: Request[Any, Any, Any], connection_id: str, application_id: str
) -> Response[Any]:
    _supports(runtime_of(request), connection_id, ACTION_ADD_ATTACHMENT_TO_APPLICATION)
    files = await _attachment_files(request, connection_id)
    return await _queue(
        request, None, connection_id, ACTION_ADD_ATTACHMENT_TO_APPLICATION, {"application_id": application_id}, files
    )


@_queued("/v1/connections/{connection_id:str}/applications/{application_id:str}/result-links", AddResultLink)
async def application_result_link(
    request: Request[Any, Any, Any], connection_id: str, application_id: str
) -> Response[Any]:
    body: AddResultLink = _decode(await read_body(request), AddResultLink)
    return await _queue(
        request,
        None,
        connection_id,
        ACTION_ADD_RESULT_LINK_TO_APPLICATION,
        {"application_id": application_id, **_link_params(body)},
    )


@_queued("/v1/connections/{connection_id:str}/candidates/{candidate_id:str}/attachments", AddAttachment)
async def candidate_attachment(request: Request[Any, Any, Any], connection_id: str, candidate_id: str) -> Response[Any]:
    _supports(runtime_of(request), connection_id, ACTION_ADD_ATTACHMENT_TO_CANDIDATE)
    files = await _attachment_files(request, connection_id)
    return await _queue(
        request, None, connection_id, ACTION_ADD_ATTACHMENT_TO_CANDIDATE, {"candidate_id": candidate_id}, files
    )


@_queued("/v1/connections/{connection_id:str}/candidates/{candidate_id:str}/result-links", AddResultLink)
async def candidate_result_link(
    request: Request[Any, Any, Any], connection_id: str, candidate_id: str
) -> Response[Any]:
    body: AddResultLink = _decode(await read_body(request), AddResultLink)
    return await _queue(
        request,
        None,
        connection_id,
        ACTION_ADD_RESULT_LINK_TO_CANDIDATE,
        {"candidate_id": candidate_id, **_link_params(body)},
    )


@get(
    "/v1/connections/{connection_id:str}/candidates/{candidate_id:str}/attachments",
    guards=[require_scope("pii")],
    security=SECURED,
    responses={200: ok(DataList, "The files' metadata, as the ATS lists them"), **secured(404, 422, 502, 503)},
)
async def list_candidate_attachments(
    request: Request[Any, Any, Any], connection_id: str, candidate_id: str
) -> Response[Any]:
    """The candidate's files as the ATS holds them (metadata only), read live."""
    runtime = runtime_of(request)
    if connection_id not in runtime.config.connections:
        return problem(404, "Unknown connection", f"connection {connection_id!r} is not configured")
    connector = runtime.connectors.get(connection_id)
    if type(connector).candidate_attachments is Connector.candidate_attachments:
        # the ATS has no such read: 404 as for the catalog's reads, not a 502 blaming the ATS
        return problem(
            404,
            "Not supported by the target ATS",
            f"{connector.name} does not list a candidate's files",
            code="INTEGRATION.ACTION_NOT_AVAILABLE",
        )
    try:
        files = await connector.candidate_attachments(candidate_id)
    except TransientError as exc:
        return problem(
            503, "The ATS is unavailable", exc.detail, headers={"Retry-After": str(int(exc.retry_after or 30))}
        )
    except ConnectorError as exc:
        if exc.status is None:  # refused here, by the connector's own check: nothing reached the ATS
            return problem(
                422,
                "Invalid request",
                exc.detail,
                errors=[{"field": "candidate_id", "message": exc.detail}],
                code="PLATFORM.INPUT_INVALID",
            )
        if exc.status in (404, 422):
            return problem(exc.status, "The ATS refused", exc.detail, code="REMOTE.INPUT_INVALID")
        return problem(502, "The ATS refused", exc.detail, code="REMOTE.UNKNOWN_HTTP_ERROR")
    token = current_token(request)
    await audit.record(
        runtime.redis,
        token.name if token else "?",
        "read_candidate_attachments",
        candidate_id,
        {"connection": connection_id},
    )
    return Response({"data": files})


def router(_: Runtime) -> Router:
    return Router(
        path="/",
        route_handlers=[
            delivery_attachment,
            delivery_stage,
            delivery_result_link,
            application_stage,
            application_attachment,
            application_result_link,
            candidate_attachment,
            candidate_result_link,
            list_candidate_attachments,
        ],
    )
