"""Connect with Factorial end to end over HTTP (app/web/connect/oauth.py): a connect link, the
relay's redirect to Factorial's consent page, the employer's "Authorize", the callback making the
connection; the state and the code one-time; a revoked refresh token pausing the connection with
the reason, and a reconnect link resuming it with its queued deliveries delivered."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.config import Connection
from app.connections import links
from app.connections.links import ConnectLink
from app.connections.oauth import CALLBACK_PATH, RECONNECT, TokenStore
from app.privacy.crypto import AesGcmSealer
from tests.support.connections import post_until_accepted
from tests.support.emulators import Emulator, EmulatorFactory
from tests.support.factorial_oauth import (
    candidate_application,
    consent_form,
    create_oauth_connection,
    grant,
    oauth_env,
    register_app,
)
from tests.support.harness import Relay


async def new_link(relay: Relay, factorial: Emulator, cid: str, *, reconnect: bool = False, **extra: Any) -> str:
    now = time.time()
    link = ConnectLink(
        connection_id=cid,
        connector=extra.pop("connector", "factorial"),
        created_at=now,
        expires_at=now + extra.pop("ttl", 600),
        created_by="admin",
        base_url=factorial.url,
        reconnect=reconnect,
    )
    return await links.create(relay.redis, link)


async def to_consent(client: httpx.AsyncClient, relay: Relay, token: str) -> httpx.Response:
    """The employer follows the link: the relay sends them to Factorial's consent page."""
    page = await client.get(f"{relay.server.url}/connect/{token}/oauth/factorial", follow_redirects=True)
    assert page.status_code == 200 and 'value="authorize"' in page.text, page.text
    return page


async def press(client: httpx.AsyncClient, page: httpx.Response, decision: str = "authorize") -> httpx.Response:
    """Press a button of the consent page; the answer is Factorial's redirect to the callback."""
    form = {**consent_form(page.text), "decision": decision}
    answer = await client.post(str(page.url.copy_with(query=None)), data=form)
    assert answer.status_code == 302
    return answer


async def connect(relay: Relay, token: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        page = await to_consent(client, relay, token)
        return await client.get((await press(client, page)).headers["location"])


@pytest.fixture
def factorial_app(
    emulator: EmulatorFactory, make_relay: Any, monkeypatch: pytest.MonkeyPatch
) -> tuple[Relay, Emulator]:
    factorial = emulator("factorial")
    oauth_env(monkeypatch)
    relay = make_relay({})
    register_app(factorial, relay.server.url + CALLBACK_PATH)
    return relay, factorial


async def test_connect_with_factorial_makes_a_connection_that_delivers(factorial_app: tuple[Relay, Emulator]) -> None:
    relay, factorial = factorial_app
    await relay.start_worker()
    token = await new_link(relay, factorial, "acme-oauth")
    done = await connect(relay, token)
    assert done.status_code == 200 and "Factorial is connected" in done.text
    stored = relay.web_runtime.registry["acme-oauth"]
    assert isinstance(stored, Connection) and stored.oauth_tokens
    assert await links.peek(relay.redis, token) is None  # the link is spent
    delivery_id = await post_until_accepted(relay, candidate_application(1, "acme-oauth"))
    assert (await relay.wait_for(delivery_id, "delivered"))["failed_attempts"] == 0
    again = await httpx.AsyncClient().get(f"{relay.server.url}/connect/{token}/oauth/factorial")
    assert again.status_code == 400  # a used link cannot start another authorization
    raw = b"".join([await relay.redis.dump(k) or b"" for k in await relay.redis.keys("ar:oauth*")])
    assert raw and b"Bearer" not in raw and b"refresh_token" not in raw  # sealed


async def test_the_state_is_one_time_and_a_code_cannot_be_exchanged_twice(
    factorial_app: tuple[Relay, Emulator],
) -> None:
    relay, factorial = factorial_app
    async with httpx.AsyncClient(timeout=30) as client:
        page = await to_consent(client, relay, await new_link(relay, factorial, "acme-oauth"))
        callback = (await press(client, page)).headers["location"]
        assert (await client.get(callback)).status_code == 200
        replay = await client.get(callback)
        assert replay.status_code == 400 and "used already" in replay.text  # the state was spent
        # the same code under a new, valid state (another link): Factorial refuses it, nothing is made
        second = await new_link(relay, factorial, "acme-two")
        start = await client.get(f"{relay.server.url}/connect/{second}/oauth/factorial")
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        code = parse_qs(urlsplit(callback).query)["code"][0]
        reused = await client.get(f"{relay.server.url}{CALLBACK_PATH}", params={"code": code, "state": state})
    assert reused.status_code == 400 and "refused" in reused.text
    assert "acme-two" not in relay.web_runtime.registry
    assert await links.peek(relay.redis, second) is not None  # given back: the employer may try again
    assert await relay.redis.exists("ar:oauth:acme-two") == 0


async def test_denied_unknown_or_expired_is_a_400_page_and_a_denied_link_stays_usable(
    factorial_app: tuple[Relay, Emulator],
) -> None:
    relay, factorial = factorial_app
    token = await new_link(relay, factorial, "acme-oauth")
    async with httpx.AsyncClient(timeout=30) as client:
        page = await to_consent(client, relay, token)
        denied = await client.get((await press(client, page, "deny")).headers["location"])
        assert denied.status_code == 400 and "declined" in denied.text
        assert await links.peek(relay.redis, token) is not None
        base = relay.server.url
        assert (await client.get(f"{base}/connect/not-a-link/oauth/factorial")).status_code == 400
        flatchr = await new_link(relay, factorial, "acme-f", connector="flatchr")
        assert (await client.get(f"{base}/connect/{flatchr}/oauth/factorial")).status_code == 400
        for query in ({}, {"state": "made-up", "code": "x"}, {"state": "x" * 500}):
            answer = await client.get(f"{base}{CALLBACK_PATH}", params=query)
            assert answer.status_code == 400 and answer.headers["content-type"].startswith("text/html")
    assert "acme-oauth" not in relay.web_runtime.registry


async def test_a_revoked_refresh_token_pauses_and_a_reconnect_link_resumes_the_queued_deliveries(
    emulator: EmulatorFactory, make_relay: Any, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    factorial = emulator("factorial", access_token_ttl_s=2)
    oauth_env(monkeypatch)
    relay = make_relay({})
    await relay.start_worker()
    revoked = grant(factorial, "https://relay.example/cb")
    await create_oauth_connection(relay, factorial, "acme-oauth", revoked)
    register_app(factorial, relay.server.url + CALLBACK_PATH, "https://relay.example/cb")
    first = await post_until_accepted(relay, candidate_application(1, "acme-oauth"))
    await relay.wait_for(first, "delivered")
    factorial.http.post("/_sandbox/factorial/oauth/revoke").raise_for_status()  # the employer disconnected
    await asyncio.sleep(2.1)  # the access token expires: the next call must refresh, and is refused
    queued = [await post_until_accepted(relay, candidate_application(n, "acme-oauth")) for n in (2, 3)]
    paused = [await relay.wait_for(i, "paused") for i in queued]
    assert {p["last_error"]["code"] for p in paused} == {"INTEGRATION.AUTHENTICATION_INVALID"}
    reason = await relay.store.paused_reason("acme-oauth")
    assert reason is not None and RECONNECT in reason and "invalid_grant" in reason
    listed = (await relay.client.get("/v1/connections", headers=relay.admin)).json()
    shown = next(c for c in listed["data"] if c["id"] == "acme-oauth")
    assert shown["paused"] and RECONNECT in shown["paused_reason"]

    done = await connect(relay, await new_link(relay, factorial, "acme-oauth", reconnect=True))
    assert done.status_code == 200 and "Factorial is connected" in done.text
    for delivery_id in queued:
        assert (await relay.wait_for(delivery_id, "delivered", timeout=30))["status"] == "delivered"
    assert await relay.store.paused_reason("acme-oauth") is None
    assert len(factorial.records()["candidates"]) == 3
    now = await TokenStore(relay.redis, AesGcmSealer(relay.settings.data_keys)).get("acme-oauth")
    assert now is not None and now.refresh_token != revoked["refresh_token"]
    logs = "".join(capfd.readouterr())
    assert "connection.paused" in logs  # the logs were captured
    for secret in (revoked["access_token"], revoked["refresh_token"], now.access_token, now.refresh_token):
        assert secret not in logs  # no token logged, not even the refused one
