"""One Factorial OAuth token chain shared by every process (app/connections/oauth.py): two worker
processes, one of them killed and replaced, and the web spend access tokens that expire every
second; Factorial (the emulator) rotates the refresh token on each refresh and refuses a spent one.
A refresh token presented twice would be refused and pause the connection; it never is."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from app.connections.oauth import TokenStore
from app.privacy.crypto import AesGcmSealer
from tests.support.connections import post_until_accepted
from tests.support.emulators import Emulator, EmulatorFactory
from tests.support.factorial_oauth import (
    candidate_application,
    create_oauth_connection,
    grant,
    oauth_env,
    usage,
)

pytestmark = pytest.mark.slow

REFRESHES = 50


def worker_logs(tmp_path: Path) -> str:
    return "".join(path.read_text() for path in sorted(tmp_path.glob("worker-*.log")))


async def between_refreshes(store: TokenStore, factorial: Emulator) -> None:
    """Wait for a moment when no refresh is under way: the live refresh token is the stored one and
    the access token has half its second left, well before the next refresh (at 0.8 s). (A process
    killed between Factorial's rotation and the write-back loses the chain, which nothing can save:
    docs/connections.md, "Failures".)"""
    while True:
        stored = await store.get("acme-oauth")
        live = [row for row in await asyncio.to_thread(usage, factorial) if not row["rotated"]]
        if (
            stored is not None
            and stored.expires_at is not None
            and stored.expires_at - time.time() > 0.5
            and [hashlib.sha256(stored.refresh_token.encode()).hexdigest()[:16]] == [r["token_hash"] for r in live]
        ):
            return
        await asyncio.sleep(0.02)


def refreshes(rows: list[dict[str, Any]]) -> int:
    return sum(1 for row in rows if row["rotated"])


async def test_two_workers_and_a_restart_share_one_token_chain_through_50_refreshes(
    make_relay: Any, emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    factorial = emulator("factorial", access_token_ttl_s=1)
    oauth_env(monkeypatch)
    relay = make_relay({})
    first = grant(factorial)
    await create_oauth_connection(relay, factorial, "acme-oauth", first)
    store = TokenStore(relay.redis, AesGcmSealer(relay.settings.data_keys))
    workers = [relay.spawn_worker(), relay.spawn_worker()]
    ids = [await post_until_accepted(relay, candidate_application(0, "acme-oauth"))]
    deadline, restarted, n = time.monotonic() + 300, False, 1
    while (done := refreshes(await asyncio.to_thread(usage, factorial))) < REFRESHES:
        assert time.monotonic() < deadline, f"only {done} refreshes"
        if not restarted and done >= REFRESHES // 2:  # kill -9 one worker mid-way, start another
            await between_refreshes(store, factorial)
            relay.kill(workers[0])
            workers.append(relay.spawn_worker())
            restarted = True
        ids.append(await post_until_accepted(relay, candidate_application(n, "acme-oauth")))
        n += 1
        await asyncio.sleep(0.5)
    assert restarted
    records = [await relay.wait_for(i, "delivered", "failed", "paused", timeout=120) for i in ids]
    assert [r["id"] for r in records if r["status"] != "delivered"] == []
    assert not any(a["outcome"] == "auth" for r in records for a in r["attempts"])
    assert await relay.store.paused_reason("acme-oauth") is None
    rows = await asyncio.to_thread(usage, factorial)
    assert refreshes(rows) >= REFRESHES
    assert [row["uses"] for row in rows if row["rotated"]] == [1] * refreshes(rows)  # each spent exactly once
    assert [row["uses"] for row in rows if not row["rotated"]] == [0]  # one live link: the stored one
    assert len(factorial.records()["candidates"]) == len(ids)
    last = await store.get("acme-oauth")
    assert last is not None
    logs = await asyncio.to_thread(worker_logs, tmp_path)
    assert "delivery" in logs  # the workers did log
    for secret in (first["access_token"], first["refresh_token"], last.access_token, last.refresh_token):
        assert secret not in logs  # no token in the workers' logs
