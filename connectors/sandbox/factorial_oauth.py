"""The OAuth 2.0 authorization server of the Factorial emulator (connectors/sandbox/factorial.py).

Faithful to Factorial's OAuth guides (docs/connectors/factorial.md, "OAuth app") and to RFC 6749
where they say nothing:

* ``GET /oauth/authorize?client_id&redirect_uri&response_type=code&scope&state`` renders a consent
  page (the signed-in Factorial user's "Authorize" or "Deny", a form POST back to the same path),
  which redirects to ``redirect_uri?code=...&state=...`` (``error=access_denied`` on deny). An
  unknown ``client_id`` or a ``redirect_uri`` not registered for it is a 400 page, never a
  redirect (RFC 6749 §4.1.2.1: the redirect target cannot be trusted);
* ``POST /oauth/token`` (form fields, the client's id and secret in the body or HTTP Basic):
  ``grant_type=authorization_code`` (the code one-time, short-lived, bound to its client and
  ``redirect_uri``; a second use is ``invalid_grant`` and revokes every token issued from that
  code, RFC 6749 §4.1.2) and ``grant_type=refresh_token`` (rotated: a new refresh token each time,
  the old one refused with ``invalid_grant``); errors are RFC 6749 §5.2 bodies
  (``{"error", "error_description"}``), 400, or 401 for ``invalid_client``;
* access tokens expire after ``access_token_ttl_s`` (default 3600, Factorial's hour; tests set a
  few seconds), refresh tokens after a week.

Sandbox routes (never Factorial's): ``POST /_sandbox/factorial/oauth/apps`` registers an OAuth app
(as an admin does in Factorial's settings: id, secret, redirect URLs); ``POST
/_sandbox/factorial/oauth/revoke`` revokes every grant's tokens (the employer disconnecting the
app), or one grant's (``{"grant"}``); ``GET /_sandbox/factorial/oauth/usage`` lists every refresh
token ever issued with how many times it was presented (never the token itself), so a test can
check each was used exactly once.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from litestar import MediaType, Request, Response, get, post
from litestar.status_codes import HTTP_302_FOUND

CODE_TTL_S = 600.0  # RFC 6749 §4.1.2: "a maximum authorization code lifetime of 10 minutes"
REFRESH_TTL_S = 7 * 86400.0  # Factorial: a refresh token is valid for one week
SCOPES = frozenset({"read", "write", "recruitment"})
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1


@dataclass
class OAuthApp:
    secret: str
    redirect_uris: tuple[str, ...] = ()


@dataclass
class Code:
    client_id: str
    redirect_uri: str
    scope: str
    expires_at: float
    grant: str
    used: bool = False


@dataclass
class RefreshToken:
    client_id: str
    grant: str
    issued_at: float
    scope: str
    uses: int = 0
    rotated: bool = False  # a newer one replaced it: refused from then on


@dataclass
class AccessToken:
    grant: str
    expires_at: float


@dataclass
class OAuthState:
    access_token_ttl_s: float = 3600.0
    code_ttl_s: float = CODE_TTL_S
    apps: dict[str, OAuthApp] = field(default_factory=dict)
    codes: dict[str, Code] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict)
    access_tokens: dict[str, AccessToken] = field(default_factory=dict)
    revoked_grants: set[str] = field(default_factory=set)

    def clear(self) -> None:
        self.apps.clear()
        self.codes.clear()
        self.refresh_tokens.clear()
        self.access_tokens.clear()
        self.revoked_grants.clear()

    def valid_access(self, token: str) -> bool:
        found = self.access_tokens.get(token)
        return found is not None and found.grant not in self.revoked_grants and time.time() < found.expires_at

    def issue(self, client_id: str, grant: str, scope: str) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        now = time.time()
        self.access_tokens[access] = AccessToken(grant, now + self.access_token_ttl_s)
        self.refresh_tokens[refresh] = RefreshToken(client_id, grant, now, scope)
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": max(1, round(self.access_token_ttl_s)),
            "refresh_token": refresh,
            "scope": scope,
            "created_at": int(now),
        }

    def revoke(self, grant: str | None = None) -> int:
        grants = {t.grant for t in self.refresh_tokens.values()} if grant is None else {grant}
        self.revoked_grants |= grants
        return len(grants)

    def seed_refresh_token(self, client_id: str, token: str) -> None:
        """A refresh token issued before the emulator started (the legacy env-based OAuth)."""
        self.refresh_tokens[token] = RefreshToken(client_id, "seeded", time.time(), "recruitment")


def _error(status: int, error: str, description: str) -> Response[Any]:
    headers = dict(NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="factorial"'
    return Response({"error": error, "error_description": description}, status_code=status, headers=headers)


def _page(status: int, title: str, body: str) -> Response[Any]:
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(text, media_type=MediaType.HTML, status_code=status)


def _redirect(uri: str, **params: str) -> Response[Any]:
    parts = urlsplit(uri)
    query = "&".join(q for q in (parts.query, urlencode(params)) if q)
    return Response(
        b"",
        status_code=HTTP_302_FOUND,
        headers={"Location": urlunsplit(parts._replace(query=query)), **NO_STORE},
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def routes(state: OAuthState) -> list[Any]:
    """The authorization server's routes and its sandbox routes."""

    def client_problem(params: dict[str, str]) -> Response[Any] | None:
        """A 400 page when the client or its redirect URL is not the registered one."""
        app = state.apps.get(params.get("client_id", ""))
        if app is None:
            return _page(400, "Unknown application", "<p>client_id is not a registered OAuth application.</p>")
        if params.get("redirect_uri", "") not in app.redirect_uris:
            return _page(400, "Invalid redirect URL", "<p>redirect_uri is not registered for this application.</p>")
        return None

    def request_problem(params: dict[str, str]) -> Response[Any] | None:
        """RFC 6749 §4.1.2.1: errors once the redirect URL is trusted go back to it."""
        extra = {"state": params["state"]} if params.get("state") else {}
        if params.get("response_type") != "code":
            return _redirect(params["redirect_uri"], error="unsupported_response_type", **extra)
        scopes = set(params.get("scope", "").split())
        if scopes - SCOPES:
            return _redirect(params["redirect_uri"], error="invalid_scope", **extra)
        return None

    @get("/oauth/authorize", media_type=MediaType.HTML, sync_to_thread=False)
    def authorize_page(request: Request[Any, Any, Any]) -> Response[Any]:
        params = {k: request.query_params[k] for k in request.query_params}
        problem = client_problem(params) or request_problem(params)
        if problem is not None:
            return problem
        hidden = "".join(
            f'<input type="hidden" name="{name}" value="{html.escape(params.get(name, ""))}">'
            for name in ("client_id", "redirect_uri", "response_type", "scope", "state")
        )
        body = (
            f"<p>The application <b>{html.escape(params['client_id'])}</b> asks to access your "
            f"company's {html.escape(params.get('scope', '') or 'data')}.</p>"
            f'<form method="post" action="/oauth/authorize">{hidden}'
            '<button type="submit" name="decision" value="authorize">Authorize</button> '
            '<button type="submit" name="decision" value="deny">Deny</button></form>'
        )
        return _page(200, "Authorize application", body)

    @post("/oauth/authorize", media_type=MediaType.HTML, status_code=302)
    async def authorize_decision(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        params = {k: str(v) for k, v in form.items()}
        problem = client_problem(params) or request_problem(params)
        if problem is not None:
            return problem
        extra = {"state": params["state"]} if params.get("state") else {}
        if params.get("decision") != "authorize":
            return _redirect(params["redirect_uri"], error="access_denied", **extra)
        code = secrets.token_urlsafe(24)
        state.codes[code] = Code(
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            scope=params.get("scope", ""),
            expires_at=time.time() + state.code_ttl_s,
            grant=secrets.token_hex(8),
        )
        return _redirect(params["redirect_uri"], code=code, **extra)

    @post("/oauth/token", status_code=200)
    async def token(request: Request[Any, Any, Any]) -> Response[Any]:
        form = {k: str(v) for k, v in (await request.form()).items()}
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                client_id, _, client_secret = base64.b64decode(basic[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return _error(401, "invalid_client", "malformed Basic credentials")
        app = state.apps.get(client_id or "")
        if app is None or not secrets.compare_digest(app.secret.encode(), (client_secret or "").encode()):
            return _error(401, "invalid_client", "client authentication failed")
        assert client_id is not None
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return code_grant(client_id, form)
        if grant_type == "refresh_token":
            return refresh_grant(client_id, form)
        if not grant_type:
            return _error(400, "invalid_request", "grant_type is missing")
        return _error(400, "unsupported_grant_type", f"grant_type {grant_type!r} is not supported")

    def code_grant(client_id: str, form: dict[str, str]) -> Response[Any]:
        if not form.get("code") or not form.get("redirect_uri"):
            return _error(400, "invalid_request", "code and redirect_uri are required")
        code = state.codes.get(form["code"])
        if code is None or code.client_id != client_id:
            return _error(400, "invalid_grant", "the authorization code is invalid")
        if code.used:  # RFC 6749 §4.1.2: refuse, and revoke what the code gave
            state.revoke(code.grant)
            return _error(400, "invalid_grant", "the authorization code was already used")
        if time.time() >= code.expires_at:
            return _error(400, "invalid_grant", "the authorization code expired")
        if code.redirect_uri != form["redirect_uri"]:
            return _error(400, "invalid_grant", "redirect_uri does not match the authorization request")
        code.used = True
        return Response(state.issue(client_id, code.grant, code.scope), headers=NO_STORE)

    def refresh_grant(client_id: str, form: dict[str, str]) -> Response[Any]:
        presented = form.get("refresh_token")
        if not presented:
            return _error(400, "invalid_request", "refresh_token is required")
        found = state.refresh_tokens.get(presented)
        if found is None or found.client_id != client_id:
            return _error(400, "invalid_grant", "the refresh token is invalid")
        found.uses += 1
        if found.rotated:
            return _error(400, "invalid_grant", "the refresh token was already used (rotated)")
        if found.grant in state.revoked_grants:
            return _error(400, "invalid_grant", "the refresh token was revoked")
        if time.time() >= found.issued_at + REFRESH_TTL_S:
            return _error(400, "invalid_grant", "the refresh token expired")
        found.rotated = True
        return Response(state.issue(client_id, found.grant, found.scope), headers=NO_STORE)

    @post("/_sandbox/factorial/oauth/apps", status_code=201)
    async def register_app(request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Sandbox only: register an OAuth app (``client_id``, ``client_secret``, ``redirect_uris``)."""
        body = await request.json()
        state.apps[str(body["client_id"])] = OAuthApp(
            secret=str(body["client_secret"]), redirect_uris=tuple(str(u) for u in body.get("redirect_uris", []))
        )
        return {"client_id": body["client_id"], "redirect_uris": body.get("redirect_uris", [])}

    @post("/_sandbox/factorial/oauth/revoke", status_code=200)
    async def revoke(request: Request[Any, Any, Any]) -> dict[str, int]:
        """Sandbox only: revoke every grant's tokens (or ``{"grant": id}``'s): refresh → invalid_grant."""
        raw = await request.body()
        grant = (await request.json()).get("grant") if raw.strip() else None
        return {"revoked_grants": state.revoke(grant)}

    @get("/_sandbox/factorial/oauth/usage", sync_to_thread=False)
    def usage() -> dict[str, Any]:
        """Sandbox only: every refresh token issued (a hash, never the token) and its uses."""
        return {
            "refresh_tokens": [
                {
                    "token_hash": _hash(token),
                    "grant": info.grant,
                    "uses": info.uses,
                    "rotated": info.rotated,
                    "issued_at": info.issued_at,
                }
                for token, info in sorted(state.refresh_tokens.items(), key=lambda item: item[1].issued_at)
            ],
            "codes_issued": len(state.codes),
            "revoked_grants": sorted(state.revoked_grants),
        }

    return [authorize_page, authorize_decision, token, register_app, revoke, usage]
