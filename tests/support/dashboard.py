"""Shared by the dashboard tests: extra operator tokens, seeding deliveries through the real
intake (any origin), and making dead letters with the Factorial emulator's faults."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import httpx
import msgspec

from app.core.model import Origin
from app.intake.accept import Intake
from app.intake.decode import decode_application
from app.privacy import audit
from app.runtime import Runtime
from app.tokens import ApiToken
from tests.support.emulators import Emulator
from tests.support.harness import Relay

CANDIDATE_FIRST, CANDIDATE_LAST = "Zoë", "Van der Berg-Ñúñez"


def add_token(relay: Relay, name: str, scopes: str, secret: str) -> dict[str, str]:
    """Give the running web app another operator token; returns its auth header."""
    relay.server.server.config.app.state.tokens.append(ApiToken(name, secret, frozenset(scopes.split("+"))))
    return {"authorization": f"Bearer {secret}"}


def application(n: int, connection: str = "acme", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "connection_id": connection,
        "candidate": {
            "first_name": CANDIDATE_FIRST,
            "last_name": CANDIDATE_LAST,
            "email_address": f"zoe{n}@example.org",
        },
        "application": {"job_id": "2001"},
    }
    body.update(overrides)
    return body


async def post(relay: Relay, n: int, connection: str = "acme") -> str:
    response = await relay.post(application(n, connection))
    assert response.status_code == 202, response.text
    return response.json()["id"]


async def accept_from_board(
    relay: Relay,
    n: int,
    *,
    connection: str = "acme",
    channel: str = "indeed",
    board: str = "indeed",
    board_application_id: str | None = None,
) -> str:
    """An application as an inbound adapter hands it over (channel, board, board's own id)."""
    runtime = Runtime(relay.settings)  # this loop's own clients (the web app's live in its thread)
    try:
        intake = Intake(runtime.store, runtime.config, runtime.connectors.get)
        app = decode_application(msgspec.json.encode(application(n, connection)))
        origin = Origin(
            channel=channel,
            received_at=time.time(),
            board=board,
            board_application_id=board_application_id or f"{board}-{n}",
        )
        return (await intake.accept(app, origin)).delivery_id
    finally:
        await runtime.close()


def fail_candidates(factorial: Emulator) -> None:
    """Every candidate creation answers 422: deliveries are dead-lettered at once."""
    factorial.faults(error_rate=1.0, error_status=422, path_regex="/ats/candidates$", methods=["POST"])


async def make_failed(relay: Relay, factorial: Emulator, count: int, start: int = 0) -> list[str]:
    fail_candidates(factorial)
    ids = [await post(relay, start + i) for i in range(count)]
    for delivery_id in ids:
        await relay.wait_for(delivery_id, "failed")
    factorial.faults()  # clear: the next attempts succeed
    return ids


async def audit_entries(relay: Relay) -> list[audit.AuditEntry]:
    return await audit.read(relay.redis, count=1000)


async def wait_bulk(
    client: httpx.AsyncClient, location: str, headers: dict[str, str], timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        progress = (await client.get(location, headers=headers)).json()
        if progress["status"] != "running":
            return progress
        if time.monotonic() > deadline:
            raise AssertionError(f"bulk retry still running: {progress}")
        await asyncio.sleep(0.05)


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """name → the cookie's value (httpx's jar would not send Secure cookies over http)."""
    return {
        line.split("=", 1)[0]: line.split("=", 1)[1].split(";", 1)[0]
        for line in response.headers.get_list("set-cookie")
    }


async def login(relay: Relay, token: str) -> tuple[dict[str, str], str]:
    """Log in to the dashboard as a browser would: returns (cookie header, the session's CSRF token)."""
    page = await relay.client.get("/dashboard/login")
    found = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    assert found, page.text
    response = await relay.client.post(
        "/dashboard/login",
        data={"token": token, "login_csrf": found.group(1), "next": "/dashboard"},
        headers={"cookie": f"applyrelay_login_csrf={set_cookies(page)['applyrelay_login_csrf']}"},
    )
    assert response.status_code == 303, response.text
    headers = {"cookie": f"applyrelay_session={set_cookies(response)['applyrelay_session']}"}
    board = await relay.client.get("/dashboard", headers=headers)
    csrf = re.search(r'name="csrf" value="([^"]+)"', board.text)
    assert csrf, board.text
    return headers, csrf.group(1)
