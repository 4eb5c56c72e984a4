"""The inbound routes' secrets of a connection made through the API: listed, rotated with a grace
period, revoked (docs/connections.md, "Inbound secrets").

GET    /v1/connections/{id}/secrets                    admin  per kind: ids and times, never a value
POST   /v1/connections/{id}/secrets/{kind}             admin  a new secret (sent, or generated and shown
                                                              once); the older ones valid `grace_s` more
DELETE /v1/connections/{id}/secrets/{kind}/{secret_id} admin  revoked at once

A file connection's secrets are in its environment variables: 409. Every call is audited, with
the ids, never a value.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, delete, get, post
from msgspec import Meta, Struct

from app.connections.inbound_secrets import DEFAULT_GRACE_S, MAX_GRACE_S, InboundSecrets
from app.core.problems import FieldError, Problem
from app.privacy import audit
from app.runtime import Runtime
from app.web.auth import require_scope
from app.web.deps import actor, read_body, runtime_of
from app.web.openapi import SECURED, body, ok, secured

admin_guard = require_scope("admin")


class NewSecret(Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/connections/{id}/secrets/{kind}`: `value` left out → the relay generates one."""

    value: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    grace_s: Annotated[int, Meta(ge=0, le=MAX_GRACE_S)] = DEFAULT_GRACE_S


class SecretInfo(Struct):
    id: str
    created_at: float
    expires_at: float | None


class SecretsListing(Struct):
    connection_id: str
    kinds: dict[str, list[SecretInfo]]  # indeed, webhook, form, hellowork, status_callback: newest first


class SecretAdded(Struct):
    id: str
    kind: str
    created_at: float
    replaced: list[SecretInfo]  # the older ones, with the end of their grace
    value: str | None = None  # only when generated: shown this once


_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")
_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")


def _decode(raw: bytes) -> NewSecret:
    """The body (empty: `{}`), refused with the field named; msgspec's messages hold no value."""
    try:
        return msgspec.json.decode(raw or b"{}", type=NewSecret)
    except msgspec.ValidationError as exc:
        text = str(exc)
        unknown = _UNKNOWN.search(text)
        at = _AT.search(text)
        field = unknown["field"] if unknown else (at["path"] if at and at["path"] else "$")
        message = _AT.sub("", text)
        raise Problem(422, "Invalid secret", f"{field}: {message}", [FieldError(field, message)]) from None
    except msgspec.DecodeError as exc:
        raise Problem.malformed_json(str(exc)) from None


def _service(request: Request[Any, Any, Any]) -> InboundSecrets:
    runtime = runtime_of(request)
    return InboundSecrets(runtime.connection_store, runtime.registry)


@get(
    "/v1/connections/{connection_id:str}/secrets",
    guards=[admin_guard],
    security=SECURED,
    responses={200: ok(SecretsListing), **secured(404, 409, 503)},
)
async def list_secrets(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    kinds = await _service(request).show(connection_id)
    await audit.record(runtime_of(request).redis, actor(request), "view_inbound_secrets", connection_id)
    return Response({"connection_id": connection_id, "kinds": kinds})


@post(
    "/v1/connections/{connection_id:str}/secrets/{kind:str}",
    guards=[admin_guard],
    status_code=201,
    opt=body(NewSecret),
    security=SECURED,
    responses={
        201: ok(SecretAdded, "Added: the older ones stay valid for the grace"),
        **secured(400, 404, 409, 413, 415, 422, 503),
    },
)
async def add_secret(request: Request[Any, Any, Any], connection_id: str, kind: str) -> Response[Any]:
    new = _decode(await read_body(request))
    who = actor(request)
    added = await _service(request).add(connection_id, kind, new.value, new.grace_s, who)
    detail = {"kind": added.kind, "secret_id": added.secret.id, "generated": added.generated, "grace_s": new.grace_s}
    await audit.record(runtime_of(request).redis, who, "add_inbound_secret", connection_id, detail)
    out: dict[str, Any] = {
        "id": added.secret.id,
        "kind": added.kind,
        "created_at": added.secret.created_at,
        "replaced": [{"id": s.id, "created_at": s.created_at, "expires_at": s.expires_at} for s in added.replaced],
    }
    if added.generated:
        out["value"] = added.secret.value
    return Response(out, status_code=201, headers={"Cache-Control": "no-store"})


@delete(
    "/v1/connections/{connection_id:str}/secrets/{kind:str}/{secret_id:str}",
    guards=[admin_guard],
    status_code=204,
    security=SECURED,
    responses={**secured(404, 409, 503)},
)
async def revoke_secret(request: Request[Any, Any, Any], connection_id: str, kind: str, secret_id: str) -> None:
    who = actor(request)
    await _service(request).revoke(connection_id, kind, secret_id, who)
    detail = {"kind": kind, "secret_id": secret_id}
    await audit.record(runtime_of(request).redis, who, "revoke_inbound_secret", connection_id, detail)


def router(runtime: Runtime) -> Router:
    return Router(path="/", route_handlers=[list_secrets, add_secret, revoke_secret])
