"""Factorial OAuth: the relay's OAuth app, the authorization-code exchange, and one token chain per
connection shared by every process (docs/connections.md, "Factorial OAuth").

Factorial rotates the refresh token on every refresh and refuses the old one, so a chain must be
spent by one process at a time and its new link written where every other process reads it. The
tokens are kept sealed at ``ar:oauth:<id>``; a refresh holds ``ar:oauth-lock:<id>`` (SET NX PX
with a random token, released by compare-and-delete), re-reads the tokens under it (another
process may have refreshed while this one waited: then its tokens are used and the ATS is not
called), and writes the rotated pair back before the lock is released. A refusal for good
(``invalid_grant``: revoked, expired, spent) is an AuthError, which pauses the connection
(app/delivery/engine.py) with a reason that says to reconnect; a transport failure or a 5xx is a
TransientError (retried, never a pause).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
import msgspec
from redis.asyncio import Redis

from app.config import Connection
from app.privacy.crypto import AesGcmSealer
from app.redis.keys import oauth_lock_key, oauth_tokens_key
from connectors.base import AuthError, TransientError

CLIENT_ID_ENV = "APPLYRELAY_FACTORIAL_CLIENT_ID"
CLIENT_SECRET_ENV = "APPLYRELAY_FACTORIAL_CLIENT_SECRET"  # noqa: S105 (a variable's name)
PUBLIC_URL_ENV = "APPLYRELAY_PUBLIC_URL"
SCOPE = "recruitment"  # the scope of Factorial's ATS endpoints
CALLBACK_PATH = "/connect/oauth/factorial/callback"
RECONNECT = "reconnect with a fresh connect link"
LOCK_MS = 30_000  # longer than a token call may take (its timeout), so the lock outlives it
WAIT_S = 35.0  # how long a process waits for another's refresh before giving up (TransientError)
POLL_S = 0.05


@dataclass(frozen=True)
class OAuthApp:
    """The relay's OAuth app registered in Factorial (docs/connectors/factorial.md, "OAuth app")."""

    client_id: str
    client_secret: str = field(repr=False)
    public_url: str | None = None  # where the employer's browser reaches the relay (the redirect URL)
    scope: str = SCOPE

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, public_url: str | None = None) -> OAuthApp | None:
        """The app from the environment; `public_url`: the relay's (Settings.public_url, which is
        APPLYRELAY_PUBLIC_URL), else the variable itself."""
        env = os.environ if env is None else env
        client_id, client_secret = env.get(CLIENT_ID_ENV), env.get(CLIENT_SECRET_ENV)
        if not (client_id and client_secret):
            return None
        return cls(client_id, client_secret, (public_url or env.get(PUBLIC_URL_ENV) or "").rstrip("/") or None)

    def redirect_uri(self, request_base: str) -> str:
        """The callback URL, as registered in Factorial: on the public URL, else the request's base."""
        return (self.public_url or request_base.rstrip("/")) + CALLBACK_PATH

    def authorize_url(self, base_url: str, redirect_uri: str, state: str) -> str:
        query = urlencode(
            {
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": self.scope,
                "state": state,
            }
        )
        return f"{base_url.rstrip('/')}/oauth/authorize?{query}"


class Tokens(msgspec.Struct, kw_only=True):
    """One link of a chain. `expires_at` None: unknown (given by hand), found out at the first 401.
    `seed`: the fingerprint of the tokens a file connection's environment gave (legacy_chain)."""

    access_token: str
    refresh_token: str
    expires_at: float | None = None
    lifetime_s: float | None = None
    refreshed_at: float = 0.0
    seed: str = ""

    def expiring(self, now: float) -> bool:
        """Refresh a little before the end (a fifth of its life, at most a minute) rather than
        spend a call on a 401."""
        if self.expires_at is None:
            return False
        margin = min(60.0, 0.2 * (self.lifetime_s or 0.0))
        return now >= self.expires_at - margin


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Tokens)

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class TokenStore:
    """The sealed tokens of each connection (``ar:oauth:<id>``, re-sealed by `keys rotate`)."""

    def __init__(self, redis: Redis, sealer: AesGcmSealer) -> None:
        self.redis = redis
        self.sealer = sealer
        self._release = redis.register_script(_RELEASE)

    async def get(self, connection_id: str) -> Tokens | None:
        raw = await self.redis.get(oauth_tokens_key(connection_id))
        return _decode.decode(self.sealer.open(raw)) if raw is not None else None

    async def put(self, connection_id: str, tokens: Tokens) -> None:
        await self.redis.set(oauth_tokens_key(connection_id), self.sealer.seal(_encode(tokens)))

    async def delete(self, connection_id: str) -> None:
        await self.redis.delete(oauth_tokens_key(connection_id))

    async def lock(self, connection_id: str) -> str | None:
        """The lock's token if this caller got it, else None."""
        token = secrets.token_urlsafe(16)
        got = await self.redis.set(oauth_lock_key(connection_id), token, nx=True, px=LOCK_MS)
        return token if got else None

    async def unlock(self, connection_id: str, token: str) -> None:
        await self._release(keys=[oauth_lock_key(connection_id)], args=[token])


async def token_call(http: httpx.AsyncClient, base_url: str, form: dict[str, str], timeout_s: float) -> Tokens:
    """POST {base}/oauth/token: the new tokens, AuthError when refused (RFC 6749 §5.2 body: its
    `error`, never a token, in the message), TransientError when Factorial cannot answer."""
    try:
        response = await http.post(f"{base_url.rstrip('/')}/oauth/token", data=form, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise TransientError(f"oauth token call: {type(exc).__name__}") from None
    status = response.status_code
    if status == 429 or status >= 500:
        raise TransientError(f"oauth token call: HTTP {status}", status=status)
    try:
        body = response.json()
    except ValueError:
        body = None
    if status != 200:
        error = body.get("error") if isinstance(body, dict) else None
        description = body.get("error_description") if isinstance(body, dict) else None
        reason = f"{error}: {description}" if error and description else (error or f"HTTP {status}")
        raise AuthError(f"Factorial refused the OAuth grant ({str(reason)[:200]})", status=status)
    if not (isinstance(body, dict) and isinstance(body.get("access_token"), str) and body.get("refresh_token")):
        raise TransientError("oauth token call: an answer without access_token and refresh_token", status=status)
    now = time.time()
    expires_in = body.get("expires_in")
    lifetime = float(expires_in) if isinstance(expires_in, int | float) and expires_in > 0 else None
    return Tokens(
        access_token=body["access_token"],
        refresh_token=str(body["refresh_token"]),
        expires_at=now + lifetime if lifetime else None,
        lifetime_s=lifetime,
        refreshed_at=now,
    )


async def exchange_code(
    http: httpx.AsyncClient, app: OAuthApp, base_url: str, code: str, redirect_uri: str, timeout_s: float = 20.0
) -> Tokens:
    """The authorization code for the first tokens (one-time: Factorial gives one pair per code)."""
    form = {
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "code": code,
        "grant_type": "authorization_code",
        "redirect_uri": redirect_uri,
    }
    return await token_call(http, base_url, form, timeout_s)


def _refused(exc: AuthError) -> AuthError:
    return AuthError(f"{exc.detail}: {RECONNECT}", status=exc.status)


@dataclass
class Refresher:
    """Calls the refresh-token grant for one connection's app."""

    http: httpx.AsyncClient
    base_url: str
    app: OAuthApp | None
    timeout_s: float = 20.0

    async def refresh(self, tokens: Tokens) -> Tokens:
        if self.app is None:
            raise AuthError(f"no Factorial OAuth app is configured ({CLIENT_ID_ENV}, {CLIENT_SECRET_ENV})")
        form = {
            "client_id": self.app.client_id,
            "client_secret": self.app.client_secret,
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
        }
        fresh = await token_call(self.http, self.base_url, form, self.timeout_s)
        fresh.seed = tokens.seed
        return fresh


class TokenChain:
    """connectors.base.TokenSource over the shared, sealed tokens of one connection. `seed`: tokens
    a file connection's environment gives (written when Redis holds none, or other ones)."""

    def __init__(self, store: TokenStore, connection_id: str, refresher: Refresher, seed: Tokens | None = None) -> None:
        self.store = store
        self.connection_id = connection_id
        self.refresher = refresher
        self.seed = seed

    async def _load(self) -> Tokens:
        tokens = await self.store.get(self.connection_id)
        if self.seed is not None and (tokens is None or tokens.seed != self.seed.seed):
            await self.store.put(self.connection_id, self.seed)  # the operator gave new ones
            tokens = self.seed
        if tokens is None:
            raise AuthError(f"no OAuth tokens are stored for this connection: {RECONNECT}")
        return tokens

    async def access_token(self) -> str:
        tokens = await self._load()
        if tokens.expiring(time.time()):
            return await self.refreshed(tokens.access_token)
        return tokens.access_token

    async def refreshed(self, stale: str) -> str:
        """A token newer than `stale`: another process's if it refreshed meanwhile, else one this
        process gets under the lock, the rotated refresh token stored before the lock is let go."""
        deadline = time.monotonic() + WAIT_S
        while True:
            current = await self._load()
            if current.access_token != stale and not current.expiring(time.time()):
                return current.access_token
            lock = await self.store.lock(self.connection_id)
            if lock is not None:
                try:
                    return await self._refresh_locked(stale)
                finally:
                    await self.store.unlock(self.connection_id, lock)
            if time.monotonic() > deadline:
                raise TransientError("oauth token refresh: another process held the lock too long")
            await asyncio.sleep(POLL_S)

    async def _refresh_locked(self, stale: str) -> str:
        current = await self._load()  # read again under the lock: the holder before may have rotated
        if current.access_token != stale and not current.expiring(time.time()):
            return current.access_token
        try:
            fresh = await self.refresher.refresh(current)
        except AuthError as exc:
            after = await self.store.get(self.connection_id)
            if after is not None and after.refresh_token != current.refresh_token:
                return after.access_token  # rotated meanwhile by a holder whose lock had lapsed
            raise _refused(exc) from None
        await self.store.put(self.connection_id, fresh)
        return fresh.access_token


class PendingTokens:
    """The tokens of a connection being made (or reconnected), in memory until it is stored: the
    check against the ATS may refresh them, and a refused check must leave nothing behind
    (ConnectionService calls `persist` once the connection is written)."""

    def __init__(self, store: TokenStore, connection_id: str, refresher: Refresher, tokens: Tokens) -> None:
        self.store = store
        self.connection_id = connection_id
        self.refresher = refresher
        self.tokens = tokens

    async def access_token(self) -> str:
        if self.tokens.expiring(time.time()):
            return await self.refreshed(self.tokens.access_token)
        return self.tokens.access_token

    async def refreshed(self, stale: str) -> str:
        if self.tokens.access_token == stale:
            try:
                self.tokens = await self.refresher.refresh(self.tokens)
            except AuthError as exc:
                raise _refused(exc) from None
        return self.tokens.access_token

    async def persist(self) -> None:
        """Write them under the chain's lock (a process refreshing the previous chain of a
        reconnected connection finishes first, and cannot overwrite these afterwards)."""
        deadline = time.monotonic() + WAIT_S
        lock = await self.store.lock(self.connection_id)
        while lock is None and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
            lock = await self.store.lock(self.connection_id)
        try:
            await self.store.put(self.connection_id, self.tokens)
        finally:
            if lock is not None:
                await self.store.unlock(self.connection_id, lock)


def fingerprint(access_token: str, refresh_token: str) -> str:
    return hashlib.sha256(f"{access_token}\0{refresh_token}".encode()).hexdigest()[:32]


def file_chain_seed(connection: Connection) -> tuple[OAuthApp | None, Tokens] | None:
    """A file connection with Factorial's env-based OAuth (``auth = "oauth"``, ``oauth_*_env``):
    its app and the tokens its environment gives, so its chain is shared like an API
    connection's (else each process would spend the same refresh token: docs/connections.md)."""
    settings = connection.settings
    if connection.origin != "file" or connection.connector != "factorial" or getattr(settings, "auth", "") != "oauth":
        return None
    refresh = os.environ.get(getattr(settings, "oauth_refresh_token_env", None) or "")
    if not refresh:
        return None
    client_id = os.environ.get(getattr(settings, "oauth_client_id_env", None) or "")
    client_secret = os.environ.get(getattr(settings, "oauth_client_secret_env", None) or "")
    app = OAuthApp(client_id, client_secret) if client_id and client_secret else None
    seed = Tokens(
        access_token=connection.credentials,
        refresh_token=refresh,
        seed=fingerprint(connection.credentials, refresh),
    )
    return app, seed
