"""Dashboard sessions: a token exchanged once at the login form for a random session id in a
Secure, HttpOnly, SameSite=Strict cookie. Redis keeps only a hash of the id (a leaked dump does
not yield live sessions), the token's *name* (revoking the token revokes its sessions at once)
and the session's CSRF token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.redis.client import awaited
from app.redis.keys import login_failures_key, session_key
from app.tokens import ApiToken

COOKIE = "applyrelay_session"
LOGIN_CSRF_COOKIE = "applyrelay_login_csrf"
SESSION_TTL_S = 8 * 3600
MAX_LOGIN_FAILURES = 20  # per client address and LOGIN_FAILURE_WINDOW_S
LOGIN_FAILURE_WINDOW_S = 300


@dataclass(frozen=True)
class Session:
    token_name: str
    csrf: str
    created_at: float


def _key(session_id: str) -> str:
    return session_key(hashlib.sha256(session_id.encode()).hexdigest())


async def create(redis: Redis, token: ApiToken) -> tuple[str, Session]:
    session_id = secrets.token_urlsafe(32)
    session = Session(token_name=token.name, csrf=secrets.token_urlsafe(32), created_at=time.time())
    await awaited(
        redis.hset(
            _key(session_id),
            mapping={"token": session.token_name, "csrf": session.csrf, "created_at": session.created_at},
        )
    )
    await redis.expire(_key(session_id), SESSION_TTL_S)
    return session_id, session


async def load(redis: Redis, session_id: str | None) -> Session | None:
    if not session_id or len(session_id) > 100:
        return None
    raw = await awaited(redis.hgetall(_key(session_id)))
    if not raw:
        return None
    data = {k.decode(): v.decode() for k, v in raw.items()}
    return Session(token_name=data["token"], csrf=data["csrf"], created_at=float(data["created_at"]))


async def destroy(redis: Redis, session_id: str | None) -> None:
    if session_id:
        await redis.delete(_key(session_id))


def token_named(tokens: list[ApiToken], name: str) -> ApiToken | None:
    return next((t for t in tokens if t.name == name), None)


def csrf_ok(expected: str | None, presented: Any) -> bool:
    """Constant-time comparison of a form's CSRF field with the session's (or login cookie's)."""
    if not expected or not isinstance(presented, str) or not presented:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


async def login_blocked(redis: Redis, client: str) -> bool:
    raw = await redis.get(login_failures_key(client))
    return raw is not None and int(raw) >= MAX_LOGIN_FAILURES


async def login_failed(redis: Redis, client: str) -> None:
    """Count a failed login; tokens are long random secrets, this only slows down a guesser."""
    pipe = redis.pipeline(transaction=True)
    pipe.incr(login_failures_key(client))
    pipe.expire(login_failures_key(client), LOGIN_FAILURE_WINDOW_S, nx=True)
    await pipe.execute()
