"""Driving the Factorial emulator's OAuth server as an employer's browser would: register the
relay's OAuth app, consent on the authorize page, get the code (connectors/sandbox/factorial_oauth.py);
and what the relay's OAuth tests share: the app in the environment, a connection made with tokens."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.connections import oauth
from app.connections.service import NewConnection
from app.runtime import Runtime
from tests.support.builders import application
from tests.support.emulators import Emulator
from tests.support.harness import Relay

CLIENT_ID = "relay-app"
CLIENT_SECRET = "relay-app-secret"


def register_app(factorial: Emulator, *redirect_uris: str) -> None:
    factorial.http.post(
        "/_sandbox/factorial/oauth/apps",
        json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": list(redirect_uris)},
    ).raise_for_status()


def consent_form(page: str) -> dict[str, str]:
    """The hidden fields of the consent page's form."""
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))


def consent(client: httpx.Client, authorize_url: str, decision: str = "authorize") -> httpx.Response:
    """Open the authorize URL and press the button; the answer is the redirect (not followed)."""
    shown = client.get(authorize_url)
    shown.raise_for_status()
    form = {**consent_form(shown.text), "decision": decision}
    return client.post(str(shown.url.copy_with(query=None)), data=form, follow_redirects=False)


def redirect_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["location"]).query).items()}


def grant(factorial: Emulator, redirect_uri: str = "https://relay.example/cb") -> dict[str, Any]:
    """A fresh token pair through the whole authorization-code flow (the app registered here)."""
    register_app(factorial, redirect_uri)
    query = {"client_id": CLIENT_ID, "redirect_uri": redirect_uri, "response_type": "code", "scope": "recruitment"}
    with httpx.Client(base_url=factorial.url) as client:
        answer = consent(client, str(httpx.URL(f"{factorial.url}/oauth/authorize", params=query)))
        code = redirect_params(answer)["code"]
        tokens = client.post(
            "/oauth/token",
            data={
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "code": code,
                "grant_type": "authorization_code",
                "redirect_uri": redirect_uri,
            },
        )
    tokens.raise_for_status()
    return tokens.json()


def usage(factorial: Emulator) -> list[dict[str, Any]]:
    return factorial.http.get("/_sandbox/factorial/oauth/usage").raise_for_status().json()["refresh_tokens"]


def oauth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The relay's Factorial OAuth app (read when a Runtime starts, and by spawned processes)."""
    monkeypatch.setenv(oauth.CLIENT_ID_ENV, CLIENT_ID)
    monkeypatch.setenv(oauth.CLIENT_SECRET_ENV, CLIENT_SECRET)
    monkeypatch.delenv(oauth.PUBLIC_URL_ENV, raising=False)


async def create_oauth_connection(relay: Relay, factorial: Emulator, cid: str, tokens: dict[str, Any]) -> None:
    maker = Runtime(relay.settings)  # another process's runtime, as an API call would make it
    try:
        creds = {"access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"]}
        await maker.connections.create(
            NewConnection(id=cid, connector="factorial", base_url=factorial.url, credentials=creds), "admin"
        )
    finally:
        await maker.close()


def candidate_application(n: int, cid: str) -> dict[str, Any]:
    body = application(connection_id=cid, attachments=[])
    body["candidate"] = {**body["candidate"], "email_address": f"candidate{n}@example.org"}
    return body
