"""Factorial over OAuth: an expired access token is refreshed with the connection's client and
refresh token, and the delivery goes through without a failed attempt."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.builders import application, connection_table
from tests.support.emulators import EmulatorFactory


async def test_oauth_token_is_refreshed_once(
    make_relay: Any, emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    factorial = emulator(
        "factorial", oauth_client_id="cid", oauth_client_secret="csecret", oauth_refresh_token="refresh-1"
    )
    monkeypatch.setenv("FACTORIAL_CLIENT_ID", "cid")
    monkeypatch.setenv("FACTORIAL_CLIENT_SECRET", "csecret")
    monkeypatch.setenv("FACTORIAL_REFRESH", "refresh-1")
    relay = make_relay(
        {
            "acme": connection_table(
                "factorial",
                factorial.url,
                _secret="expired-access-token",
                auth="oauth",
                oauth_client_id_env="FACTORIAL_CLIENT_ID",
                oauth_client_secret_env="FACTORIAL_CLIENT_SECRET",
                oauth_refresh_token_env="FACTORIAL_REFRESH",
            )
        }
    )
    await relay.start_worker()
    delivery_id = (await relay.post(application(attachments=[]))).json()["id"]
    record = await relay.wait_for(delivery_id, "delivered")
    assert record["failed_attempts"] == 0
    assert len(factorial.records()["candidates"]) == 1
