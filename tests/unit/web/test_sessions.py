"""Dashboard sessions (app/web/sessions.py) on a real Redis: only a hash of the session id is
stored, sessions expire and can be destroyed, CSRF tokens compare safely, failed logins are
counted per client and block after the limit."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from app.redis.keys import login_failures_key, session_key
from app.tokens import ApiToken
from app.web import sessions

OPS = ApiToken("ops", "ops-secret-0123456789abcdef", frozenset({"read"}))


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_a_session_is_stored_under_a_hash_of_its_id_with_the_token_name_only(redis: Redis) -> None:
    session_id, session = await sessions.create(redis, OPS)
    assert len(session_id) >= 40 and session.token_name == "ops" and len(session.csrf) >= 40
    key = session_key(hashlib.sha256(session_id.encode()).hexdigest())
    assert await redis.keys("*") == [key.encode()]  # the id itself is nowhere
    stored = await redis.hgetall(key)
    assert set(stored) == {b"token", b"csrf", b"created_at"}
    assert session_id.encode() not in b"".join(stored.values()) and OPS.secret.encode() not in b"".join(stored.values())
    assert 0 < await redis.ttl(key) <= sessions.SESSION_TTL_S
    assert await sessions.load(redis, session_id) == session


async def test_unknown_missing_or_oversized_ids_load_nothing(redis: Redis) -> None:
    session_id, _ = await sessions.create(redis, OPS)
    for presented in (None, "", "not-a-session", session_id + "x", "a" * 101):
        assert await sessions.load(redis, presented) is None, presented


async def test_a_destroyed_session_is_gone(redis: Redis) -> None:
    session_id, _ = await sessions.create(redis, OPS)
    other_id, other = await sessions.create(redis, OPS)
    await sessions.destroy(redis, session_id)
    await sessions.destroy(redis, None)  # logging out without a session is a no-op
    assert await sessions.load(redis, session_id) is None
    assert await sessions.load(redis, other_id) == other  # only that one


def test_token_named_and_csrf_comparison() -> None:
    dpo = ApiToken("dpo", "dpo-secret-0123456789abcd", frozenset({"read", "pii"}))
    assert sessions.token_named([OPS, dpo], "dpo") is dpo
    assert sessions.token_named([OPS, dpo], "revoked") is None
    assert sessions.csrf_ok("c5rf-token", "c5rf-token")
    for expected, presented in (
        ("c5rf-token", "other"),
        ("c5rf-token", ""),
        (None, "x"),
        ("", ""),
        ("t", None),
        ("t", 1),
    ):
        assert not sessions.csrf_ok(expected, presented), (expected, presented)


async def test_failed_logins_block_a_client_after_the_limit_for_the_window(redis: Redis) -> None:
    for _ in range(sessions.MAX_LOGIN_FAILURES - 1):
        await sessions.login_failed(redis, "203.0.113.7")
    assert not await sessions.login_blocked(redis, "203.0.113.7")
    await sessions.login_failed(redis, "203.0.113.7")
    assert await sessions.login_blocked(redis, "203.0.113.7")
    assert not await sessions.login_blocked(redis, "198.51.100.1")  # per client address
    ttl = await redis.ttl(login_failures_key("203.0.113.7"))
    assert 0 < ttl <= sessions.LOGIN_FAILURE_WINDOW_S  # set by the first failure, not pushed back by later ones
