"""The token chain itself (app/connections/oauth.py), against the Factorial emulator and the
session's Redis: concurrent refreshes spend the refresh token once, a 5xx or a dropped call at the
token endpoint is transient (never a pause), a refusal for good says to reconnect, a check that
fails leaves no tokens behind, and a file connection's env-based OAuth is shared the same way."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from app.connections.oauth import CALLBACK_PATH, RECONNECT, OAuthApp, Refresher, TokenChain, Tokens, TokenStore
from app.connections.service import NewConnection
from app.core.problems import Problem
from app.privacy.crypto import AesGcmSealer
from app.runtime import Runtime
from connectors.base import AuthError, TransientError
from tests.support.builders import connection_table
from tests.support.emulators import Emulator, EmulatorFactory
from tests.support.factorial_oauth import CLIENT_ID, CLIENT_SECRET, grant, oauth_env, usage
from tests.support.harness import Relay


@pytest.fixture
def factorial(emulator: EmulatorFactory) -> Emulator:
    return emulator("factorial", access_token_ttl_s=2)


async def seeded(relay: Relay, factorial: Emulator, http: httpx.AsyncClient, cid: str, **kw: Any) -> TokenChain:
    store = TokenStore(relay.redis, AesGcmSealer(relay.settings.data_keys))
    tokens = grant(factorial)
    await store.put(cid, Tokens(access_token=tokens["access_token"], refresh_token=tokens["refresh_token"]))
    app = OAuthApp(CLIENT_ID, CLIENT_SECRET)
    return TokenChain(store, cid, Refresher(http, factorial.url, app, timeout_s=5), **kw)


async def test_many_concurrent_refreshes_of_one_stale_token_spend_the_refresh_token_once(
    make_relay: Any, factorial: Emulator
) -> None:
    relay = make_relay({})
    async with httpx.AsyncClient() as http:
        chains = [await seeded(relay, factorial, http, "c1")]
        chains += [TokenChain(chains[0].store, "c1", chains[0].refresher) for _ in range(5)]  # other processes
        stale = await chains[0].access_token()
        fresh = await asyncio.gather(*(chain.refreshed(stale) for chain in chains for _ in range(4)))
    assert len(set(fresh)) == 1 and stale not in fresh
    assert [row["uses"] for row in usage(factorial)] == [1, 0]
    assert await relay.redis.exists("ar:oauth-lock:c1") == 0  # released


async def test_a_5xx_or_a_dropped_token_call_is_transient_and_the_chain_survives(
    make_relay: Any, factorial: Emulator
) -> None:
    relay = make_relay({})
    async with httpx.AsyncClient() as http:
        chain = await seeded(relay, factorial, http, "c2")
        stale = await chain.access_token()
        factorial.faults(script=["error", "drop"], path_regex="/oauth/token$")
        for _ in range(2):
            with pytest.raises(TransientError):
                await chain.refreshed(stale)
        assert await chain.refreshed(stale) != stale  # the stored refresh token still works
    assert await relay.redis.exists("ar:oauth-lock:c2") == 0


async def test_a_revoked_chain_is_an_auth_error_saying_to_reconnect(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({})
    async with httpx.AsyncClient() as http:
        chain = await seeded(relay, factorial, http, "c3")
        factorial.http.post("/_sandbox/factorial/oauth/revoke").raise_for_status()
        with pytest.raises(AuthError) as refused:
            await chain.refreshed(await chain.access_token())
        assert RECONNECT in refused.value.detail and "invalid_grant" in refused.value.detail
        missing = TokenChain(chain.store, "nothing-stored", chain.refresher)
        with pytest.raises(AuthError, match=RECONNECT):
            await missing.access_token()


async def test_a_refused_check_leaves_no_tokens_and_an_accepted_one_stores_the_refreshed_pair(
    make_relay: Any, factorial: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    oauth_env(monkeypatch)
    relay = make_relay({})
    maker = Runtime(relay.settings)
    try:
        bad = NewConnection(
            id="bad",
            connector="factorial",
            base_url=factorial.url,
            credentials={"access_token": "made-up", "refresh_token": "made-up-too"},
        )
        with pytest.raises(Problem) as refused:
            await maker.connections.create(bad, "admin")
        assert refused.value.code == "INTEGRATION.AUTHENTICATION_INVALID" and RECONNECT in refused.value.detail
        assert await relay.redis.exists("ar:oauth:bad", "ar:conn:r:bad") == 0
        tokens = grant(factorial)
        factorial.http.post("/_sandbox/factorial/revoke-tokens").raise_for_status()  # the access token is dead
        good = NewConnection(
            id="good",
            connector="factorial",
            base_url=factorial.url,
            credentials={"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"]},
        )
        await maker.connections.create(good, "admin")  # the check refreshed the pair in memory...
        stored = await maker.oauth_tokens.get("good")
    finally:
        await maker.close()
    assert stored is not None and stored.refresh_token != tokens["refresh_token"]  # ...and kept the rotated one
    assert [row["uses"] for row in usage(factorial)] == [1, 0]


async def test_a_file_connection_with_env_oauth_shares_its_chain_across_runtimes(
    make_relay: Any, emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    factorial = emulator(
        "factorial", oauth_client_id="cid", oauth_client_secret="csecret", oauth_refresh_token="refresh-env"
    )
    for name, value in (("F_ID", "cid"), ("F_SECRET", "csecret"), ("F_REFRESH", "refresh-env")):
        monkeypatch.setenv(name, value)
    table = connection_table(
        "factorial",
        factorial.url,
        _secret="expired-access-token",
        auth="oauth",
        oauth_client_id_env="F_ID",
        oauth_client_secret_env="F_SECRET",
        oauth_refresh_token_env="F_REFRESH",
    )
    relay = make_relay({"acme": table})
    runtimes = [Runtime(relay.settings) for _ in range(3)]  # three processes, each seeded from the same env
    try:
        for runtime in runtimes:  # each process's first call: 401, then a refresh
            await runtime.connectors.get("acme").verify_credentials()
    finally:
        for runtime in runtimes:
            await runtime.close()
    assert [row["uses"] for row in usage(factorial)] == [1, 0]  # the env's refresh token spent once


def test_the_redirect_url_is_on_the_public_url_when_set_and_the_authorize_url_asks_for_recruitment() -> None:
    env = {"APPLYRELAY_FACTORIAL_CLIENT_ID": "cid", "APPLYRELAY_FACTORIAL_CLIENT_SECRET": "sec"}
    assert OAuthApp.from_env({}) is None  # no app: Connect with Factorial answers 503
    behind_proxy = OAuthApp.from_env(env, public_url="https://relay.example/")
    assert behind_proxy is not None and "sec" not in repr(behind_proxy)
    assert (
        behind_proxy.redirect_uri("http://10.0.0.5:8000/") == "https://relay.example/connect/oauth/factorial/callback"
    )
    direct = OAuthApp.from_env(env)
    assert direct is not None and direct.redirect_uri("http://relay.local/") == "http://relay.local" + CALLBACK_PATH
    url = httpx.URL(direct.authorize_url("https://api.factorialhr.com/", CALLBACK_PATH, "st"))
    assert url.path == "/oauth/authorize"
    assert dict(url.params) == {
        "client_id": "cid",
        "redirect_uri": CALLBACK_PATH,
        "response_type": "code",
        "scope": "recruitment",
        "state": "st",
    }
