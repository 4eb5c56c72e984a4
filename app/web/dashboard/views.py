"""The retry dashboard: server-rendered pages (Jinja) over the same operations as the JSON API.

Auth: a login form exchanges an operator token for a session cookie (app/web/sessions.py); a
middleware on this router turns the cookie back into the token (`scope["applyrelay_token"]`), so
the same scope guards apply as on the API. Every form carries the session's CSRF token (the login
form a double-submit cookie). Pages work without JavaScript; a small script (static, same
origin, under a strict CSP) refreshes counts, follows a bulk retry's progress and a delivery's
status. List views never load candidate data; the detail view shows the candidate's name to a
token with the `pii` scope, and the audit log records it.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from litestar import MediaType, Request, Response, Router, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.response import Redirect
from litestar.types import ASGIApp, Receive, Scope, Send

from app.core.problems import Problem
from app.delivery import transitions
from app.delivery.record import STATUSES, TERMINAL, Delivery
from app.operator import connections_view, query, retries, views
from app.operator.query import build_filter, counts, find, known_names, series
from app.privacy import audit
from app.runtime import Runtime
from app.tokens import find_token
from app.tracking import boards, health
from app.web import sessions
from app.web.auth import current_token, require_scope
from app.web.deps import runtime_of
from app.web.page_headers import page_headers
from app.web.problems import problem

HERE = Path(__file__).parent
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}  # Litestar adds the charset
STATIC_BYTES = {name: (HERE / "static" / name).read_bytes() for name in STATIC}
SECURITY_HEADERS = page_headers(
    {
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self'",
        "connect-src": "'self'",
        "form-action": "'self'",
    }
)
SHORT = {
    "queued": "queued",
    "delivering": "running",
    "retry_scheduled": "retry",
    "delivered": "delivered",
    "failed": "failed",
    "paused": "paused",
}
RANGES = {"1h": (3600, 12), "24h": (86400, 24), "7d": (7 * 86400, 28)}

read_guard = require_scope("read")
retry_guard = require_scope("retry")
erase_guard = require_scope("erase")
admin_guard = require_scope("admin")  # connections: resume, connect links (as on the API)


def _utc(ts: float | None) -> str:
    if not ts:
        return ""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(seconds: float) -> str:
    """A duration as people read it: 45 s, 12 min, 3 h 5 min, 2 d 4 h."""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.Undefined,
)
_env.filters["utc"] = _utc
_env.filters["age"] = _age


def render(template: str, status_code: int = 200, cookies: list[Cookie] | None = None, **context: Any) -> Response[Any]:
    html = _env.get_template(template).render(**context)
    return Response(html, media_type=MediaType.HTML, status_code=status_code, headers=SECURITY_HEADERS, cookies=cookies)


# -- session middleware and auth redirects ------------------------------------------------------


def session_middleware(app: ASGIApp) -> ASGIApp:
    """Cookie → session → token, for the guards (`current_token` reads the scope first)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope)
            session_id = connection.cookies.get(sessions.COOKIE)
            if session_id:
                state = connection.app.state
                session = await sessions.load(state.runtime.redis, session_id)
                token = sessions.token_named(state.tokens, session.token_name) if session else None
                if session and token:
                    scope["applyrelay_token"] = token  # type: ignore[typeddict-unknown-key]
                    scope["applyrelay_session"] = session  # type: ignore[typeddict-unknown-key]
        await app(scope, receive, send)

    return middleware


def _session(request: Request[Any, Any, Any]) -> sessions.Session | None:
    return request.scope.get("applyrelay_session")  # type: ignore[return-value]


def not_logged_in(request: Request[Any, Any, Any], exc: NotAuthorizedException) -> Response[Any]:
    if request.url.path.startswith("/dashboard/api/") or request.method != "GET":
        return problem(401, "Unauthorized", "log in at /dashboard/login")
    return Redirect("/dashboard/login", query_params={"next": request.url.path}, status_code=303)


def forbidden(request: Request[Any, Any, Any], exc: PermissionDeniedException) -> Response[Any]:
    if request.url.path.startswith("/dashboard/api/"):
        return problem(403, "Forbidden", str(exc.detail))
    return render("message.html", status_code=403, title="Not allowed", message=str(exc.detail), **_chrome(request))


def _chrome(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """What the page layout needs: who is logged in, their scopes, the CSRF token."""
    token = current_token(request)
    session = _session(request)
    return {
        "user": token.name if token else None,
        "scopes": sorted(token.scopes) if token else [],
        "csrf": session.csrf if session else "",
    }


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _check_csrf(request: Request[Any, Any, Any], form: dict[str, str]) -> Response[Any] | None:
    session = _session(request)
    if session is None or not sessions.csrf_ok(session.csrf, form.get("csrf")):
        return render(
            "message.html",
            status_code=403,
            title="Form expired",
            message="The form's security token did not match; go back, reload and try again.",
            **_chrome(request),
        )
    return None


def _safe_next(value: str | None) -> str:
    return (
        value if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value else "/dashboard"
    )


# -- login / logout -----------------------------------------------------------------------------


@get("/dashboard/login")
async def login_page(request: Request[Any, Any, Any], next: str | None = None) -> Response[Any]:
    csrf = secrets.token_urlsafe(32)
    cookie = Cookie(
        key=sessions.LOGIN_CSRF_COOKIE,
        value=csrf,
        path="/dashboard/login",
        httponly=True,
        secure=True,
        samesite="strict",
        max_age=3600,
    )
    return render(
        "login.html",
        cookies=[cookie],
        login_csrf=csrf,
        next=_safe_next(next),
        error=None,
        user=None,
        scopes=[],
        csrf="",
    )


@post("/dashboard/login")
async def login(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    next_path = _safe_next(form.get("next"))
    if not sessions.csrf_ok(request.cookies.get(sessions.LOGIN_CSRF_COOKIE), form.get("login_csrf")):
        return render(
            "login.html",
            status_code=403,
            login_csrf="",
            next=next_path,
            user=None,
            scopes=[],
            csrf="",
            error="The login form expired; reload the page and try again.",
        )
    redis = runtime_of(request).redis
    client = request.client.host if request.client else "?"
    if await sessions.login_blocked(redis, client):
        return render(
            "login.html",
            status_code=429,
            login_csrf=request.cookies.get(sessions.LOGIN_CSRF_COOKIE, ""),
            next=next_path,
            user=None,
            scopes=[],
            csrf="",
            error="Too many failed logins from this address; wait a few minutes.",
        )
    token = find_token(request.app.state.tokens, form.get("token", "").strip()) if form.get("token") else None
    if token is None:
        await sessions.login_failed(redis, client)
    if token is None or "read" not in token.scopes:
        csrf = request.cookies.get(sessions.LOGIN_CSRF_COOKIE, "")
        message = "Unknown token." if token is None else "This token lacks the read scope."
        return render(
            "login.html", status_code=401, login_csrf=csrf, next=next_path, user=None, scopes=[], csrf="", error=message
        )
    session_id, _ = await sessions.create(redis, token)
    cookies = [
        Cookie(
            key=sessions.COOKIE,
            value=session_id,
            path="/dashboard",
            httponly=True,
            secure=True,
            samesite="strict",
            max_age=sessions.SESSION_TTL_S,
        ),
        Cookie(
            key=sessions.LOGIN_CSRF_COOKIE,
            value="",
            path="/dashboard/login",
            max_age=0,
            secure=True,
            httponly=True,
            samesite="strict",
        ),
    ]
    return Redirect(next_path, status_code=303, cookies=cookies)


@post("/dashboard/logout", guards=[read_guard])
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    if (refused := _check_csrf(request, form)) is not None:
        return refused
    await sessions.destroy(runtime_of(request).redis, request.cookies.get(sessions.COOKIE))
    return Redirect(
        "/dashboard/login",
        status_code=303,
        cookies=[
            Cookie(
                key=sessions.COOKIE,
                value="",
                path="/dashboard",
                max_age=0,
                secure=True,
                httponly=True,
                samesite="strict",
            )
        ],
    )


# -- list ---------------------------------------------------------------------------------------


def _chart(data: dict[str, Any], span: str) -> dict[str, Any]:
    """Bar geometry for the inline SVG: received (and delivered, failed) per bucket."""
    width, height, pad = 720, 160, 24
    n = len(data["received"])
    top = max([*data["received"], *data["delivered"], *data["failed"], 1])
    slot = (width - pad) / n
    bars = []
    for i in range(n):
        start = data["start"] + i * data["step"]
        x = pad + i * slot
        for j, kind in enumerate(("received", "delivered", "failed")):
            value = data[kind][i]
            h = (height - 20) * value / top
            bars.append(
                {
                    "x": round(x + 1 + j * (slot - 2) / 3, 1),
                    "y": round(height - 14 - h, 1),
                    "w": round(max((slot - 2) / 3 - 0.5, 0.5), 1),
                    "h": round(h, 1),
                    "kind": kind,
                    "title": f"{_utc(start)} UTC: {value} {kind}",
                }
            )
    labels = [
        {"x": round(pad + i * slot, 1), "text": _utc(data["start"] + i * data["step"])[5:16]}
        for i in range(0, n, max(n // 6, 1))
    ]
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "labels": labels,
        "top": top,
        "span": span,
        "pad": pad,
        "totals": {k: sum(data[k]) for k in ("received", "delivered", "failed")},
    }


@get("/dashboard", guards=[read_guard])
async def dashboard(
    request: Request[Any, Any, Any],
    cursor: str | None = None,
    bulk: str | None = None,
    range: str = "24h",
    limit: int = 50,
) -> Response[Any]:
    runtime = runtime_of(request)
    store = runtime.store
    params = {name: request.query_params.get(name) for name in query.FILTER_FIELDS}
    error, status = None, 200
    try:
        f = build_filter(params)
        page = await find(store, f, limit=limit, cursor=cursor)
    except Problem as exc:  # a filter or cursor refused: the page says which, with the API's status
        error, status, page, f = exc.detail, exc.status, None, None
    span = range if range in RANGES else "24h"
    seen_connections = await known_names(store, "connection")
    names = views.connection_names(runtime.config.connections, seen_connections)
    current = {k: (v or "") for k, v in params.items()}
    next_link = None
    if page and page.next_cursor:
        next_link = "/dashboard?" + urlencode(
            {**{k: v for k, v in current.items() if v}, "cursor": page.next_cursor, "range": span}
        )
    progress = await retries.bulk_progress(store, bulk) if bulk else None
    return render(
        "dashboard.html",
        status_code=status,
        statuses=STATUSES,
        counts=await counts(store, names),
        rows=[views.summary(d) for d in page.deliveries] if page else [],
        next_link=next_link,
        filters=current,
        filtered=any(current.values()),
        error=error,
        connections=names,
        connectors=sorted({c.connector for c in runtime.config.connections.values()}),
        channels=await known_names(store, "channel"),
        boards=await known_names(store, "board"),
        chart=_chart(await series(store, span_s=RANGES[span][0], buckets=RANGES[span][1]), span),
        ranges={r: "/dashboard?" + urlencode({**{k: v for k, v in current.items() if v}, "range": r}) for r in RANGES},
        progress=progress,
        short=SHORT,
        now=time.time(),
        disabled_destinations=await health.disabled_destinations(runtime.redis),
        destinations=await health.all_destinations(runtime.redis),
        lost_auth=await connections_view.lost_authorisations(runtime.redis, runtime.config.connections),
        **_chrome(request),
    )


@get("/dashboard/api/counts", guards=[read_guard])
async def counts_json(request: Request[Any, Any, Any]) -> Response[Any]:
    runtime = runtime_of(request)
    names = views.connection_names(runtime.config.connections, await known_names(runtime.store, "connection"))
    return Response(await counts(runtime.store, names), headers={"Cache-Control": "no-store"})


@post("/dashboard/bulk-retry", guards=[retry_guard])
async def bulk_retry(request: Request[Any, Any, Any]) -> Response[Any]:
    form = await _form(request)
    if (refused := _check_csrf(request, form)) is not None:
        return refused
    try:
        f = build_filter({name: form.get(name) for name in query.FILTER_FIELDS})
    except Problem as exc:
        return render(
            "message.html",
            status_code=400,
            title="Invalid filter",
            message=exc.detail,
            **_chrome(request),
        )
    token = current_token(request)
    bulk_id = await retries.start_bulk_retry(runtime_of(request).store, f, token.name if token else "?")
    return Redirect("/dashboard", query_params={**f.as_params(), "bulk": bulk_id}, status_code=303)


@get("/dashboard/api/bulk/{bulk_id:str}", guards=[read_guard])
async def bulk_json(request: Request[Any, Any, Any], bulk_id: str) -> Response[Any]:
    progress = await retries.bulk_progress(runtime_of(request).store, bulk_id)
    if progress is None:
        return problem(404, "Not found", f"no bulk retry {bulk_id}")
    return Response(progress.as_dict(), headers={"Cache-Control": "no-store"})


# -- detail and actions -------------------------------------------------------------------------


@get("/dashboard/deliveries/{delivery_id:str}", guards=[read_guard])
async def detail(request: Request[Any, Any, Any], delivery_id: str, done: str | None = None) -> Response[Any]:
    store = runtime_of(request).store
    delivery = await store.get(delivery_id)
    if delivery is None:
        return render(
            "message.html",
            status_code=404,
            title="Not found",
            message=f"No delivery {delivery_id}.",
            **_chrome(request),
        )
    token = current_token(request)
    candidate = None
    if token is not None and "pii" in token.scopes:
        candidate = await views.show_candidate(store, delivery, token.name, "dashboard")
    return render(
        "detail.html",
        d=delivery,
        candidate=candidate,
        timeline=views.timeline(delivery),
        actions=_actions(delivery),
        terminal=delivery.status in TERMINAL,
        done=done,
        board_reports=await boards.reports_of(store.redis, delivery.id),
        disabled_destinations=await health.disabled_destinations(store.redis),
        **_chrome(request),
    )


def _actions(d: Delivery) -> dict[str, bool]:
    pending_files = any(not a.confirmed for a in d.attachments)
    return {
        "retry": d.status in transitions.RETRYABLE and not d.payload_purged,
        "retry_attachments": pending_files and d.status not in ("queued", "delivering") and not d.files_purged,
        "purge": d.status == "failed" and not d.payload_purged,
    }


@get("/dashboard/api/deliveries/{delivery_id:str}", guards=[read_guard])
async def detail_json(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    delivery = await runtime_of(request).store.get(delivery_id)
    if delivery is None:
        return problem(404, "Not found", f"no delivery {delivery_id}")
    return Response(views.summary(delivery), headers={"Cache-Control": "no-store"})


async def _act(request: Request[Any, Any, Any], delivery_id: str, action: str) -> Response[Any]:
    form = await _form(request)
    if (refused := _check_csrf(request, form)) is not None:
        return refused
    runtime = runtime_of(request)
    token = current_token(request)
    who = token.name if token else "?"
    try:
        if action == "purge":
            await retries.purge(runtime.store, delivery_id)
            await audit.record(runtime.redis, who, "purge", delivery_id, {"via": "dashboard"})
            outcome = "purged"
        else:
            result = await retries.retry_one(
                runtime.store, delivery_id, who, attachments_only=action == "retry-attachments"
            )
            outcome = "queued" if result.changed else "unchanged"
    except Problem as exc:
        return render("message.html", status_code=exc.status, title=exc.title, message=exc.detail, **_chrome(request))
    return Redirect(f"/dashboard/deliveries/{delivery_id}", query_params={"done": outcome}, status_code=303)


@post("/dashboard/destinations/{destination:str}/enable", guards=[retry_guard])
async def enable_destination_action(request: Request[Any, Any, Any], destination: str) -> Response[Any]:
    """Re-enable an outbound destination disabled after failing (docs/boards.md)."""
    form = await _form(request)
    if (refused := _check_csrf(request, form)) is not None:
        return refused
    runtime = runtime_of(request)
    token = current_token(request)
    who = token.name if token else "?"
    if await health.enable(runtime.redis, destination, time.time(), who):
        await audit.record(runtime.redis, who, "destination_enable", destination, {"via": "dashboard"})
    return Redirect("/dashboard", status_code=303)


@post("/dashboard/deliveries/{delivery_id:str}/retry", guards=[retry_guard])
async def retry_action(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    return await _act(request, delivery_id, "retry")


@post("/dashboard/deliveries/{delivery_id:str}/retry-attachments", guards=[retry_guard])
async def retry_attachments_action(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    return await _act(request, delivery_id, "retry-attachments")


@post("/dashboard/deliveries/{delivery_id:str}/purge", guards=[erase_guard])
async def purge_action(request: Request[Any, Any, Any], delivery_id: str) -> Response[Any]:
    return await _act(request, delivery_id, "purge")


# -- connections (docs/dashboard.md, "Connections page") -------------------------------------------


async def _connections_page(
    request: Request[Any, Any, Any],
    *,
    status_code: int = 200,
    done: str | None = None,
    error: str | None = None,
    link: dict[str, Any] | None = None,
) -> Response[Any]:
    runtime = runtime_of(request)
    rows = await connections_view.connection_rows(
        runtime.store, runtime.connection_store, runtime.config, threshold_s=runtime.settings.degraded_after_s
    )
    token = current_token(request)
    return render(
        "connections.html",
        status_code=status_code,
        rows=rows,
        pending_statuses=connections_view.PENDING_STATUSES,
        short=SHORT,
        can_admin=token is not None and "admin" in token.scopes,
        degraded_after=runtime.settings.degraded_after_s,
        lost_auth=[
            connections_view.LostAuthorisation(r.id, r.status.paused_reason or "") for r in rows if r.status.paused
        ],
        done=done,
        error=error,
        link=link,
        **_chrome(request),
    )


@get("/dashboard/connections", guards=[read_guard])
async def connections_page(
    request: Request[Any, Any, Any], resumed: str | None = None, requeued: int = 0
) -> Response[Any]:
    done = None
    if resumed and resumed in runtime_of(request).config.connections:  # (only names it knows: no text injected)
        done = f"{resumed} resumed: {requeued} paused deliver{'y' if requeued == 1 else 'ies'} queued again."
    return await _connections_page(request, done=done)


def _actor(request: Request[Any, Any, Any]) -> str:
    token = current_token(request)
    return token.name if token else "?"


@post("/dashboard/connections/{connection_id:str}/resume", guards=[admin_guard])
async def resume_connection_action(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    """Lift a pause (the employer fixed the credentials) and re-queue the paused deliveries."""
    form = await _form(request)
    if (refused := _check_csrf(request, form)) is not None:
        return refused
    runtime = runtime_of(request)
    if connection_id not in runtime.config.connections:
        return await _connections_page(request, status_code=404, error=f"No connection {connection_id}.")
    requeued = await connections_view.resume(runtime.store, connection_id, _actor(request), "dashboard")
    return Redirect(
        "/dashboard/connections", query_params={"resumed": connection_id, "requeued": str(requeued)}, status_code=303
    )


@post("/dashboard/connections/{connection_id:str}/connect-link", guards=[admin_guard])
async def connect_link_action(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    """A fresh single-use link for the employer to enter new credentials (an API connection only).
    Answered with the page itself, not a redirect: the token must not sit in a URL or history."""
    form = await _form(request)
    if (refused := _check_csrf(request, form)) is not None:
        return refused
    runtime = runtime_of(request)
    try:
        token, link = await connections_view.reconnect_link(
            runtime.connection_store, runtime.config, connection_id, _actor(request), "dashboard"
        )
    except Problem as exc:
        return await _connections_page(request, status_code=exc.status, error=exc.detail)
    base = (runtime.settings.public_url or str(request.base_url)).rstrip("/")
    shown = {"connection_id": connection_id, "expires_at": link.expires_at, "url": f"{base}/connect/{token}"}
    return await _connections_page(request, link=shown)


@get("/dashboard/static/{name:str}")
async def static(name: str) -> Response[Any]:
    if name not in STATIC:
        return problem(404, "Not found", "no such file")
    return Response(
        STATIC_BYTES[name],
        media_type=STATIC[name],
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


def router(_: Runtime) -> Router:
    return Router(
        path="/",
        route_handlers=[
            login_page,
            login,
            logout,
            dashboard,
            counts_json,
            bulk_retry,
            bulk_json,
            detail_json,
            detail,
            retry_action,
            retry_attachments_action,
            purge_action,
            enable_destination_action,
            connections_page,
            resume_connection_action,
            connect_link_action,
            static,
        ],
        middleware=[session_middleware],
        exception_handlers={NotAuthorizedException: not_logged_in, PermissionDeniedException: forbidden},
    )
