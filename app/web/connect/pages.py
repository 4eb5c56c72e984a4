"""The connect page: `GET /connect/{token}` shows the connector's Connection Guide and
Prerequisites and asks for the credentials; `POST` checks them and makes the connection
(docs/connections.md, "Connect links and the connect page").

The token in the URL is the only credential the employer holds, so the page leaks it nowhere
(`Referrer-Policy: no-referrer`, `Cache-Control: no-store`, no third-party request, no script
at all) and a link that is unknown, spent or expired answers one and the same 410 page. The
form is bound to the link and to the browser (csrf.py); each refusal of the credentials gives
the link back, up to links.MAX_REFUSALS, and no submitted secret is ever written into a page.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jinja2
import structlog
from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import Cookie

from app.connections import links
from app.connections.credentials import CREDENTIAL_TYPES, FactorialCredentials
from app.connections.links import ConnectLink
from app.connections.service import NewConnection
from app.core.problems import Problem
from app.net import ssrf
from app.operator import connection_health
from app.privacy import audit
from app.runtime import Runtime
from app.web.connect import csrf, guides
from app.web.deps import read_limited
from app.web.page_headers import page_headers
from connectors import connector_class

log = structlog.get_logger("applyrelay.connect")
HERE = Path(__file__).parent
ASSETS = "/connect-assets"
STATIC = {"connect.css": "text/css; charset=utf-8"}
STATIC_BYTES = {name: (HERE / "static" / name).read_bytes() for name in STATIC}
MAX_FORM_BYTES = 64 * 1024
CSRF_FIELD = "csrf"
COOKIE = "ar_connect"
NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}")
OAUTH_ENV = ("APPLYRELAY_FACTORIAL_CLIENT_ID", "APPLYRELAY_FACTORIAL_CLIENT_SECRET")
NAMES = {"factorial": "Factorial", "flatchr": "Flatchr", "otys": "OTYS", "laura": "Laura"}
LABELS = {"api_key": "API key", "token": "API token"}
HINTS = {
    "factorial": "The API key an admin created in Factorial (sent as x-api-key).",
    "flatchr": "The API key from Flatchr's Settings > Advanced > API.",
    "otys": "The OWS API key OTYS issued for this integration.",
    "laura": "The API token Laura issued for your organisation.",
}
HEADERS = page_headers(
    {"style-src": "'self'", "img-src": "'self'", "form-action": "'self'"}, referrer="no-referrer", deny_framing=True
)

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
)


@dataclass
class Field:
    name: str
    label: str
    hint: str
    error: str | None = None


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    return request.app.state.runtime


def _page(template: str, status: int, cookie: Cookie | None = None, **context: Any) -> Response[Any]:
    html = _env.get_template(template).render(assets=ASSETS, **context)
    return Response(
        html,
        media_type=MediaType.HTML,
        status_code=status,
        headers=HEADERS,
        cookies=[cookie] if cookie else None,
    )


def _message(status: int, title: str, body: str) -> Response[Any]:
    return _page("message.html", status, title=title, body=body)


def gone() -> Response[Any]:
    """Unknown, spent and expired links alike: nothing says which, or whether it ever existed."""
    return _message(
        410,
        "This link cannot be used",
        "Connect links work once and expire. Ask whoever sent you this link for a new one.",
    )


def credential_fields(connector: str) -> list[str]:
    """The credential inputs the page asks for: the connector's credential struct's fields
    (app/connections/credentials.py), except Factorial's OAuth tokens, which "Connect with
    Factorial" obtains (oauth.py)."""
    kind = CREDENTIAL_TYPES[connector]
    names = list(kind.__struct_fields__)
    return ["api_key"] if kind is FactorialCredentials else names


def asks_base_url(link: ConnectLink) -> bool:
    """The page asks for the base URL when the link does not fix it and the ATS has no one host
    (Laura: each customer its own)."""
    return link.base_url is None and not link.reconnect and connector_class(link.connector).default_base_url is None


def oauth_offered(link: ConnectLink) -> bool:
    return link.connector == "factorial" and all(os.environ.get(name) for name in OAUTH_ENV)


def _form(
    runtime: Runtime,
    token: str,
    link: ConnectLink,
    nonce: str,
    status: int,
    errors: dict[str, str],
    general: list[str],
    cookie: Cookie | None = None,
) -> Response[Any]:
    guide = guides.guide(link.connector)
    fields = [
        Field(name, LABELS.get(name, name), HINTS.get(link.connector, ""), errors.get(name))
        for name in credential_fields(link.connector)
    ]
    return _page(
        "connect.html",
        status,
        cookie,
        name=NAMES.get(link.connector, link.connector),
        link=link,
        guide=guide,
        fields=fields,
        base_url=asks_base_url(link),
        base_url_error=errors.get("base_url"),
        general=general,
        action=f"/connect/{token}",
        csrf_field=CSRF_FIELD,
        csrf_token=csrf.sign(runtime.settings.data_keys, links.token_hash(token), nonce),
        oauth_url=f"/connect/{token}/oauth/factorial" if oauth_offered(link) else None,
        expires=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(link.expires_at)),
    )


def _cookie(request: Request[Any, Any, Any], token: str, nonce: str, link: ConnectLink) -> Cookie:
    """The browser half of the CSRF check: only this link's page sends it back, same-site only."""
    return Cookie(
        key=COOKIE,
        value=nonce,
        path=f"/connect/{token}",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
        max_age=max(1, int(link.expires_at - time.time())),
    )


@get("/connect/{token:str}", media_type=MediaType.HTML)
async def connect_page(request: Request[Any, Any, Any], token: str) -> Response[Any]:
    runtime = _runtime(request)
    link = await links.peek(runtime.redis, token)
    if link is None or link.connector not in CREDENTIAL_TYPES:
        return gone()
    held = request.cookies.get(COOKIE, "")
    nonce = held if NONCE.fullmatch(held) else csrf.new_nonce()  # a reload keeps the page's nonce
    return _form(runtime, token, link, nonce, 200, {}, [], _cookie(request, token, nonce, link))


def _same_origin(request: Request[Any, Any, Any], runtime: Runtime) -> bool:
    """The browser's own word that the form came from this site: Sec-Fetch-Site where it sends
    it, else Origin. Under `Referrer-Policy: no-referrer` browsers send `Origin: null`, and
    clients without either (old browsers, scripts) pass on to the token and cookie check."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    allowed = {request.headers.get("host", "")}
    if runtime.settings.public_url:
        allowed.add(urlsplit(runtime.settings.public_url).netloc)
    try:
        return urlsplit(origin).netloc in allowed
    except ValueError:  # "http://[zz]": no origin a browser sends, so not this site's
        return False


async def _unsafe_address(url: str) -> str | None:
    """Why the relay will not call an address the employer typed (None: it may): https, a public
    host that resolves to public addresses only, so the page is no probe of the relay's own
    network (app/net/ssrf.py). The operator's base URLs are the operator's to choose."""
    reason = "must be your organisation's https address on the internet"
    try:
        ssrf.check_url(url)
        await ssrf.resolve_public(ssrf.sent_host(url), urlsplit(url).port or 443)
    except (ssrf.UnsafeURL, OSError, ValueError) as exc:
        return f"{reason} ({exc})" if isinstance(exc, ssrf.UnsafeURL) else f"{reason} (it does not resolve)"
    return None


def _field_of(name: str, fields: list[str], base_url: bool) -> str | None:
    """A refusal's field as the page's input (None: it belongs above the form)."""
    if name.startswith("credentials."):
        name = name.removeprefix("credentials.")
        return name if name in fields else None
    if name == "credentials":
        return fields[0]
    if name == "base_url" and base_url:
        return "base_url"
    return None


def _scrub(message: str, secrets: list[str]) -> str:
    """An ATS's reason, without any of the values just submitted (should it quote one)."""
    for value in secrets:
        if len(value) >= 4:
            message = message.replace(value, "***")
    return message


@post("/connect/{token:str}", media_type=MediaType.HTML, status_code=200)
async def connect_submit(request: Request[Any, Any, Any], token: str) -> Response[Any]:
    runtime = _runtime(request)
    link = await links.peek(runtime.redis, token)
    if link is None or link.connector not in CREDENTIAL_TYPES:
        return gone()
    form = {
        k: v[0] for k, v in parse_qs((await read_limited(request, MAX_FORM_BYTES)).decode("utf-8", "replace")).items()
    }
    nonce = request.cookies.get(COOKIE, "")
    key_hash = links.token_hash(token)
    if not _same_origin(request, runtime) or not csrf.check(
        runtime.settings.data_keys, key_hash, nonce, form.get(CSRF_FIELD, "")
    ):
        log.info("connect.csrf_refused", connection=link.connection_id)
        return _message(
            403, "This form has expired", "Open the link again from the message you received, and fill the form there."
        )
    fields = credential_fields(link.connector)
    asked = asks_base_url(link)
    creds = {name: form.get(name, "").strip() for name in fields}
    base_url = form.get("base_url", "").strip() if asked else link.base_url
    missing = {name: "Required." for name, value in creds.items() if not value}
    if asked and not base_url:
        missing["base_url"] = "Required: your organisation's address at the ATS."
    if missing:
        return _form(runtime, token, link, nonce, 422, missing, [])
    if asked and base_url:
        unsafe = await _unsafe_address(base_url)
        if unsafe:
            return _form(runtime, token, link, nonce, 422, {"base_url": unsafe}, [])
    resumed: int | None = None
    spent = await links.consume(runtime.redis, token)
    if spent is None:  # another submission won the race
        return gone()
    actor = f"connect-link:{link.created_by}"
    try:
        if link.reconnect:
            await runtime.connections.replace_credentials(link.connection_id, creds, actor)
            resumed = await _resume(runtime, link.connection_id)
        else:
            new = NewConnection(
                id=link.connection_id,
                connector=link.connector,
                credentials=creds,
                base_url=base_url,
                settings=dict(link.settings),
            )
            await runtime.connections.create(new, actor)
    except Problem as exc:
        return await _refused(runtime, token, spent, nonce, exc, fields, asked, list(creds.values()))
    except Exception as exc:  # never a 500 for the employer; the link stays usable
        log.warning("connect.failed", connection=link.connection_id, error=type(exc).__name__)
        await links.restore(runtime.redis, token, spent)
        return _form(runtime, token, link, nonce, 503, {}, ["Something went wrong on our side. Please try again."])
    await audit.record(
        runtime.redis,
        actor,
        "connect_link_used",
        link.connection_id,
        {"connector": link.connector, "reconnect": link.reconnect, "resumed_deliveries": resumed},
    )
    log.info("connect.connected", connection=link.connection_id, connector=link.connector, reconnect=link.reconnect)
    name = NAMES.get(link.connector, link.connector)
    return _message(
        200,
        f"{name} is connected",
        f"The credentials were accepted by {name}. Applications now reach your {name} account. "
        "You can close this page; this link will not work again.",
    )


async def _resume(runtime: Runtime, connection_id: str) -> int | None:
    """A reconnect lifts the pause the refused credentials caused and re-queues the deliveries it
    held (None: the connection was not paused)."""
    if await runtime.store.paused_reason(connection_id) is None:
        return None
    resumed = await connection_health.resume(runtime.store, connection_id)
    log.info("connection.resumed", connection=connection_id, resumed_deliveries=resumed, by="connect-link")
    return resumed


async def _refused(
    runtime: Runtime,
    token: str,
    link: ConnectLink,
    nonce: str,
    exc: Problem,
    fields: list[str],
    asked: bool,
    secrets: list[str],
) -> Response[Any]:
    """The form again, the ATS's reason beside the field it concerns, the inputs empty."""
    if exc.status == 503:  # the ATS could not be asked: not the employer's mistake
        await links.restore(runtime.redis, token, link)
        return _form(runtime, token, link, nonce, 503, {}, [_scrub(exc.detail, secrets)])
    if exc.status != 422:  # 409 (made meanwhile), 404 (a reconnect's connection deleted): the link is spent
        log.info("connect.refused", connection=link.connection_id, status=exc.status)
        return _message(
            exc.status if exc.status in (404, 409) else 410,
            "This link cannot be used",
            "The connection this link was made for has changed meanwhile. "
            "Ask whoever sent you this link for a new one.",
        )
    count = await links.refused(runtime.redis, token, link)
    log.info("connect.credentials_refused", connection=link.connection_id, refusals=count, code=exc.code)
    if count >= links.MAX_REFUSALS:
        return gone()
    await links.restore(runtime.redis, token, link)
    errors: dict[str, str] = {}
    general: list[str] = []
    for error in exc.errors or []:
        where = _field_of(error.field, fields, asked)
        message = _scrub(error.message, secrets)
        if where and where not in errors:
            errors[where] = message
        else:
            general.append(message)
    if not exc.errors:
        general.append(_scrub(exc.detail, secrets))
    return _form(runtime, token, link, nonce, 422, errors, general)


@get(f"{ASSETS}/{{name:str}}")
async def asset(name: str) -> Response[bytes]:
    if name not in STATIC:
        return Response(b"not found", status_code=404, media_type="text/plain")
    return Response(
        STATIC_BYTES[name],
        media_type=STATIC[name],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def route_handlers(runtime: Runtime) -> list[Any]:
    return [connect_page, connect_submit, asset]
