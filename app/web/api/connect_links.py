"""Connect links (docs/connections.md, "Connect links and the connect page"):

POST /v1/connect-links   admin   a single-use, expiring URL for one connection id and connector,
                                 whose page (app/web/connect/pages.py) asks the employer for the
                                 credentials; the URL is answered once, Redis keeps only its hash

The link is refused here for everything that would make it fail on the employer's side (an id
taken, an unknown connector, settings the connector refuses), so a bad link is never sent.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
import structlog
from litestar import Request, Response, Router, post
from msgspec import Meta, Struct

from app.connections import links
from app.connections.credentials import CREDENTIAL_TYPES, TokenCredentials
from app.connections.service import ConnectionId, NewConnection, file_connection, invalid
from app.core.problems import FieldError, Problem
from app.privacy import audit
from app.runtime import Runtime
from app.web.auth import require_scope
from app.web.deps import actor, read_body, runtime_of
from app.web.openapi import SECURED, body, ok, secured
from connectors import connector_class

log = structlog.get_logger("applyrelay.connections")
admin_guard = require_scope("admin")
# only to validate settings and base URL before the link is sent: never stored, never sent
PLACEHOLDER_BASE_URL = "https://connect-page.invalid"


class NewConnectLink(Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/connect-links`."""

    connection_id: ConnectionId
    connector: str
    base_url: Annotated[str, Meta(min_length=1, max_length=2000)] | None = None
    settings: dict[str, Any] = {}
    ttl_s: Annotated[int, Meta(ge=60, le=links.MAX_TTL_S)] = links.DEFAULT_TTL_S
    reconnect: bool = False


class ConnectLinkOut(Struct):
    url: str
    expires_at: float
    connection_id: str
    connector: str
    reconnect: bool


def _decode(raw: bytes) -> NewConnectLink:
    try:
        return msgspec.json.decode(raw, type=NewConnectLink)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.split("at `$.", 1)[1].rstrip("`").split("[", 1)[0] if "at `$." in text else "$"
        if "Object missing required field" in text or "unknown field" in text:
            field = text.split("`")[1]
        raise Problem(422, "Invalid connect link", text, errors=[FieldError(field, text.split(" - at ")[0])]) from None
    except msgspec.DecodeError as exc:
        raise Problem.malformed_json(str(exc)) from None


def _placeholder_credentials(connector: str) -> dict[str, str]:
    return {"token" if CREDENTIAL_TYPES[connector] is TokenCredentials else "api_key": "placeholder"}


async def check(runtime: Runtime, new: NewConnectLink, who: str) -> None:
    """Everything the page's submission would refuse that the employer cannot fix (Problem)."""
    if new.connector not in CREDENTIAL_TYPES:
        raise invalid("connector", f"must be one of {', '.join(sorted(CREDENTIAL_TYPES))}")
    if new.connection_id in runtime.connections.registry.file:
        raise file_connection(new.connection_id)
    existing = await runtime.connection_store.get(new.connection_id)
    if new.reconnect:
        if existing is None:
            raise Problem(
                404,
                "Unknown connection",
                f"connection {new.connection_id!r} does not exist: a reconnect link is for a connection made through"
                " the API (leave out reconnect to make a new one)",
                code="PLATFORM.NOT_FOUND",
            )
        if existing.connector != new.connector:
            raise invalid("connector", f"connection {new.connection_id!r} is on {existing.connector}")
        for name, given in (("base_url", new.base_url), ("settings", new.settings)):
            if given:
                raise invalid(name, "not taken with reconnect (the link replaces the credentials only: PATCH the rest)")
        return
    if existing is not None:
        raise Problem(
            409,
            "Connection exists",
            f"connection {new.connection_id!r} exists already (a link with reconnect=true replaces its credentials)",
            errors=[FieldError("connection_id", "taken")],
            code="PLATFORM.CONFLICT",
        )
    has_host = connector_class(new.connector).default_base_url is not None
    trial = NewConnection(
        id=new.connection_id,
        connector=new.connector,
        credentials=_placeholder_credentials(new.connector),
        base_url=new.base_url or (None if has_host else PLACEHOLDER_BASE_URL),
        settings=dict(new.settings),
    )
    runtime.connections.prepare(trial, who)  # settings and base URL, as POST /v1/connections checks them


def _link_url(request: Request[Any, Any, Any], runtime: Runtime, token: str) -> str:
    base = runtime.settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/connect/{token}"


@post(
    "/v1/connect-links",
    guards=[admin_guard],
    status_code=201,
    opt=body(NewConnectLink),
    security=SECURED,
    responses={
        201: ok(ConnectLinkOut, "The link (its URL is shown this once)"),
        **secured(400, 404, 409, 413, 415, 422),
    },
)
async def create_connect_link(request: Request[Any, Any, Any]) -> Response[Any]:
    runtime = runtime_of(request)
    new = _decode(await read_body(request))
    who = actor(request)
    await check(runtime, new, who)
    now = time.time()
    link = links.ConnectLink(
        connection_id=new.connection_id,
        connector=new.connector,
        created_at=now,
        expires_at=now + new.ttl_s,
        created_by=who,
        base_url=new.base_url,
        settings=dict(new.settings),
        reconnect=new.reconnect,
    )
    token = await links.create(runtime.redis, link)
    detail = {"connector": new.connector, "reconnect": new.reconnect, "expires_at": link.expires_at}
    await audit.record(runtime.redis, who, "create_connect_link", new.connection_id, detail)
    log.info("connect_link.created", connection=new.connection_id, connector=new.connector, reconnect=new.reconnect)
    out = ConnectLinkOut(
        url=_link_url(request, runtime, token),
        expires_at=link.expires_at,
        connection_id=new.connection_id,
        connector=new.connector,
        reconnect=new.reconnect,
    )
    return Response(msgspec.to_builtins(out), status_code=201, headers={"Cache-Control": "no-store"})


def router(runtime: Runtime) -> Router:
    return Router(path="/", route_handlers=[create_connect_link])
