"""The Factorial emulator's OAuth server, held to Factorial's OAuth guides and RFC 6749: consent
and redirect, one-time codes bound to their client and redirect URL, expiring access tokens,
refresh tokens rotated and the spent one refused (connectors/sandbox/factorial_oauth.py)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.support.emulators import Emulator, EmulatorFactory
from tests.support.factorial_oauth import (
    CLIENT_ID,
    CLIENT_SECRET,
    consent,
    grant,
    redirect_params,
    register_app,
    usage,
)

REDIRECT = "https://relay.example/connect/oauth/factorial/callback"
API = "/api/2026-07-01/resources/api_public/credentials"


def authorize_url(factorial: Emulator, **overrides: str) -> str:
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "recruitment",
        "state": "st-1",
        **overrides,
    }
    return str(httpx.URL(f"{factorial.url}/oauth/authorize", params=query))


def token(factorial: Emulator, **form: str) -> httpx.Response:
    return factorial.http.post("/oauth/token", data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **form})


def code_for(factorial: Emulator) -> str:
    with httpx.Client() as client:
        return redirect_params(consent(client, authorize_url(factorial)))["code"]


def bearer(factorial: Emulator, access: str) -> int:
    return factorial.http.get(API, headers={"authorization": f"Bearer {access}"}).status_code


@pytest.fixture
def fac(emulator: EmulatorFactory) -> Emulator:
    factorial = emulator("factorial", access_token_ttl_s=2)
    register_app(factorial, REDIRECT)
    return factorial


def test_consent_redirects_with_code_and_state_or_access_denied(fac: Emulator) -> None:
    with httpx.Client() as client:
        page = client.get(authorize_url(fac))
        assert page.status_code == 200 and 'value="authorize"' in page.text and 'method="post"' in page.text
        granted = redirect_params(consent(client, authorize_url(fac)))
        denied = redirect_params(consent(client, authorize_url(fac), decision="deny"))
    assert granted["state"] == "st-1" and granted["code"]
    assert denied == {"error": "access_denied", "state": "st-1"}


@pytest.mark.parametrize(
    "override", [{"client_id": "someone-else"}, {"redirect_uri": "https://evil.example/cb"}, {"redirect_uri": ""}]
)
def test_an_unknown_client_or_redirect_url_is_a_400_page_never_a_redirect(
    fac: Emulator, override: dict[str, str]
) -> None:
    answer = httpx.get(authorize_url(fac, **override), follow_redirects=False)
    assert answer.status_code == 400 and "location" not in answer.headers


def test_a_bad_response_type_or_scope_goes_back_to_the_client(fac: Emulator) -> None:
    assert redirect_params(httpx.get(authorize_url(fac, response_type="token")))["error"] == "unsupported_response_type"
    assert redirect_params(httpx.get(authorize_url(fac, scope="everything")))["error"] == "invalid_scope"


def test_the_code_gives_tokens_once_and_its_reuse_revokes_them(fac: Emulator) -> None:
    code = code_for(fac)
    first = token(fac, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    body = first.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 2 and body["refresh_token"]
    assert bearer(fac, body["access_token"]) == 200
    again = token(fac, grant_type="authorization_code", code=code, redirect_uri=REDIRECT)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert set(again.json()) == {"error", "error_description"}  # RFC 6749 §5.2
    assert bearer(fac, body["access_token"]) == 401  # what the reused code gave is revoked
    refused = token(fac, grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_the_code_is_bound_to_its_redirect_url_and_client(fac: Emulator) -> None:
    code = code_for(fac)
    wrong = token(fac, grant_type="authorization_code", code=code, redirect_uri="https://relay.example/other")
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    bad_secret = fac.http.post(
        "/oauth/token",
        data={"client_id": CLIENT_ID, "client_secret": "nope", "grant_type": "authorization_code", "code": code},
    )
    assert bad_secret.status_code == 401 and bad_secret.json()["error"] == "invalid_client"
    assert token(fac, grant_type="password").json()["error"] == "unsupported_grant_type"
    assert token(fac, grant_type="authorization_code", code="made-up", redirect_uri=REDIRECT).status_code == 400


def test_refresh_rotates_and_the_spent_refresh_token_is_refused(fac: Emulator) -> None:
    tokens: dict[str, Any] = grant(fac, REDIRECT)
    second = token(fac, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] != tokens["refresh_token"]
    spent = token(fac, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"
    assert token(fac, grant_type="refresh_token", refresh_token=second.json()["refresh_token"]).status_code == 200
    assert [t["uses"] for t in usage(fac)] == [2, 1, 0]  # the spent one was presented twice


def test_access_tokens_expire_after_the_option(fac: Emulator) -> None:
    tokens = grant(fac, REDIRECT)
    assert bearer(fac, tokens["access_token"]) == 200
    time.sleep(2.2)
    assert bearer(fac, tokens["access_token"]) == 401


def test_revoking_refuses_the_refresh_token_and_the_access_token(fac: Emulator) -> None:
    tokens = grant(fac, REDIRECT)
    assert fac.http.post("/_sandbox/factorial/oauth/revoke").json() == {"revoked_grants": 1}
    assert bearer(fac, tokens["access_token"]) == 401
    refused = token(fac, grant_type="refresh_token", refresh_token=tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
