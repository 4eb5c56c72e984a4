"""Connect with Factorial: the authorization-code flow started from a connect link, its callback
exchanging the code, the tokens kept sealed per connection (app/connections/oauth.py,
docs/connections.md "Factorial OAuth").

    GET /connect/{token}/oauth/factorial       the link must be unused, unexpired and Factorial's:
                                               a random `state` bound to it (one-time, 10 min), 302
                                               to Factorial's /oauth/authorize
    GET /connect/oauth/factorial/callback      ?code&state (or ?error): the state spent, the link
                                               consumed, the code exchanged, the connection made (or,
                                               for a reconnect link, its tokens replaced, its pause
                                               lifted and its paused deliveries resumed)

No token is ever shown; every refusal is a small HTML page (400, or 503 when Factorial or the
relay's OAuth app cannot serve it), never a 500. The link is given back when the employer may try
again with it (denied, Factorial unreachable, the check refused).
"""

from __future__ import annotations

import hashlib
import html
import secrets
from typing import Any

import msgspec
import structlog
from litestar import MediaType, Request, Response, get

from app.connections import links, oauth
from app.connections.links import ConnectLink
from app.connections.service import NewConnection
from app.core.problems import Problem
from app.operator import connection_health
from app.privacy import audit
from app.privacy.crypto import SealError
from app.redis.keys import oauth_state_key
from app.runtime import Runtime
from app.web.page_headers import page_headers
from connectors.base import AuthError, TransientError
from connectors.factorial import FactorialConnector

log = structlog.get_logger("applyrelay.connect")

STATE_TTL_S = 600  # the employer has ten minutes on Factorial's consent page
# The callback's URL holds the code: no referrer.
SECURITY_HEADERS = page_headers({"style-src": "'unsafe-inline'", "form-action": "'self'"}, referrer="no-referrer")


class PendingAuthorization(msgspec.Struct, kw_only=True):
    """What a `state` stands for, sealed (it holds the link's token) at ar:oauth-state:<hash>."""

    link_token: str
    redirect_uri: str


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(PendingAuthorization)


def _state_key(state: str) -> str:
    return oauth_state_key(hashlib.sha256(state.encode()).hexdigest())


def page(status: int, title: str, message: str) -> Response[Any]:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem}</style>"
        f"</head><body><main><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p></main></body></html>"
    )
    return Response(body, media_type=MediaType.HTML, status_code=status, headers=SECURITY_HEADERS)


def _link_unusable() -> Response[Any]:
    return page(
        400, "This link cannot be used", "This connect link was used already or has expired: ask for a new one."
    )


def _factorial_base(link: ConnectLink) -> str:
    return (link.base_url or FactorialConnector.default_base_url or "").rstrip("/")


def route_handlers(runtime: Runtime) -> list[Any]:
    redis, sealer = runtime.redis, runtime.sealer

    @get("/connect/{token:str}/oauth/factorial", media_type=MediaType.HTML)
    async def start(request: Request[Any, Any, Any], token: str) -> Response[Any]:
        link = await links.peek(redis, token)
        if link is None:
            return _link_unusable()
        if link.connector != "factorial":
            return page(400, "Not a Factorial link", "This connect link is not for Factorial.")
        app = runtime.oauth_app
        if app is None:
            return page(503, "Connect with Factorial is not available", "This relay has no Factorial OAuth app set up.")
        state = secrets.token_urlsafe(32)
        pending = PendingAuthorization(link_token=token, redirect_uri=app.redirect_uri(str(request.base_url)))
        await redis.set(_state_key(state), sealer.seal(_encode(pending)), ex=STATE_TTL_S)
        location = app.authorize_url(_factorial_base(link), pending.redirect_uri, state)
        return Response(b"", status_code=302, headers={**SECURITY_HEADERS, "Location": location})

    @get("/connect/oauth/factorial/callback", media_type=MediaType.HTML)
    async def callback(request: Request[Any, Any, Any]) -> Response[Any]:
        params = request.query_params
        state, code, error = params.get("state"), params.get("code"), params.get("error")
        raw = await redis.getdel(_state_key(state)) if state and len(state) <= 200 else None
        if raw is None:
            return page(400, "Unknown authorization", "This authorization is unknown, expired or was used already.")
        try:
            pending = _decode.decode(sealer.open(raw))
        except (SealError, msgspec.DecodeError):  # sealed with a key since dropped: as good as expired
            return page(400, "Unknown authorization", "This authorization is unknown, expired or was used already.")
        if error or not code:
            reason = "You declined the access." if error == "access_denied" else "Factorial gave no authorization."
            return page(400, "Factorial was not connected", f"{reason} You may start again from the same link.")
        link = await links.consume(redis, pending.link_token)
        if link is None:
            return _link_unusable()
        app = runtime.oauth_app
        if app is None:
            await links.restore(redis, pending.link_token, link)
            return page(503, "Connect with Factorial is not available", "This relay has no Factorial OAuth app set up.")
        try:
            tokens = await oauth.exchange_code(runtime.ats_http, app, _factorial_base(link), code, pending.redirect_uri)
            await _connect(runtime, link, tokens)
        except AuthError:
            await links.restore(redis, pending.link_token, link)
            return page(400, "Factorial refused the authorization", "Start again from the same link.")
        except TransientError:
            await links.restore(redis, pending.link_token, link)
            return page(503, "Factorial did not answer", "Nothing was stored. Start again from the same link.")
        except Problem as exc:
            await links.restore(redis, pending.link_token, link)
            status = 503 if exc.status >= 500 else 400
            return page(status, "Factorial was not connected", exc.detail)
        return page(200, "Factorial is connected", "You can close this page: applications now reach your Factorial.")

    return [start, callback]


async def _connect(runtime: Runtime, link: ConnectLink, tokens: oauth.Tokens) -> None:
    """Make the link's connection with `tokens` (checked against Factorial first), or, for a
    reconnect link, replace its tokens and resume what its pause held."""
    credentials = {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token}
    actor = f"connect-link:{link.created_by}"
    cid = link.connection_id
    if link.reconnect:
        await runtime.connections.replace_credentials(cid, credentials, actor)
        await _keep_expiry(runtime, cid, tokens)
        resumed = await connection_health.resume(runtime.store, cid)
        await audit.record(
            runtime.redis, actor, "connection_oauth_reconnected", f"connection:{cid}", {"resumed": resumed}
        )
        log.info("connection.oauth_reconnected", connection=cid, resumed=resumed)
        return
    new = NewConnection(
        id=cid, connector="factorial", base_url=link.base_url, settings=dict(link.settings), credentials=credentials
    )
    await runtime.connections.create(new, actor)
    await _keep_expiry(runtime, cid, tokens)
    await audit.record(runtime.redis, actor, "connection_oauth_connected", f"connection:{cid}")


async def _keep_expiry(runtime: Runtime, connection_id: str, tokens: oauth.Tokens) -> None:
    """The stored tokens with the expiry the exchange gave (the check did not refresh them), so
    the first refresh happens before the 401."""
    store = runtime.oauth_tokens
    lock = await store.lock(connection_id)  # a worker refreshing now must not lose its rotation
    if lock is None:
        return
    try:
        stored = await store.get(connection_id)
        if stored is not None and stored.access_token == tokens.access_token:
            await store.put(connection_id, tokens)
    finally:
        await store.unlock(connection_id, lock)
