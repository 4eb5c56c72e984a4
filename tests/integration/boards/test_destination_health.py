"""Destination health on Svix's model, with a controlled clock: messages that exhaust their retries
raise `message.attempt.exhausted`; a destination failing every attempt for the disable period is
disabled (event, API, /metrics) until an operator enables it; "recover failed messages since T"
re-sends exactly the failed ones, in the background, with progress. The HelloWork emulator is the
destination, over HTTP; the operator side is the relay's API."""

from __future__ import annotations

import asyncio
import base64
import re
import secrets as pysecrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar import Litestar, Request, Response, post

from app.config import parse_config
from app.delivery.record import Delivery, Status
from app.runtime import Runtime
from app.settings import Settings
from app.tracking import boards, callbacks, poll
from connectors.sandbox.common import BackgroundServer
from tests.support.boards import HELLOWORK_KEY
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import ADMIN_TOKEN, Relay

DAY = 24 * 3600.0


@pytest.fixture
async def relay(
    make_relay: Callable[..., Relay], factorial: Emulator, hellowork: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Relay:
    monkeypatch.setenv("TEST_HELLOWORK_KEY", HELLOWORK_KEY)
    table = connection_table(
        "factorial",
        factorial.url,
        hellowork_secret_env="TEST_HELLOWORK_KEY",
        hellowork_status_hosts=[f"127.0.0.1:{hellowork.server.port}"],
        fetch_allow_http=True,  # test-only: loopback emulator over http
        retry_schedule=[15, 60],  # three attempts per message
    )
    return make_relay({"acme": table})


@pytest.fixture
async def runtime(relay: Relay) -> AsyncIterator[Runtime]:
    runtime = Runtime(relay.settings)
    yield runtime
    await runtime.close()


async def dashboard_login(relay: Relay) -> tuple[dict[str, str], str]:
    """Log in to the dashboard as a browser would: (the session cookie header, its CSRF token)."""
    page = await relay.client.get("/dashboard/login")
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text)
    pre = page.headers["set-cookie"].split("=", 1)[1].split(";", 1)[0]
    assert login_csrf is not None
    response = await relay.client.post(
        "/dashboard/login",
        data={"token": ADMIN_TOKEN, "login_csrf": login_csrf.group(1), "next": "/dashboard"},
        headers={"cookie": f"applyrelay_login_csrf={pre}"},
    )
    session = next(v for v in response.headers.get_list("set-cookie") if v.startswith("applyrelay_session="))
    cookie = {"cookie": "applyrelay_session=" + session.split("=", 1)[1].split(";", 1)[0]}
    board = await relay.client.get("/dashboard", headers=cookie)
    csrf = re.search(r'name="csrf" value="([^"]+)"', board.text)
    assert csrf is not None
    return cookie, csrf.group(1)


async def report(runtime: Runtime, hellowork: Emulator, name: str, at: float) -> str:
    delivery = Delivery(
        id=f"d-{name}",
        connection_id="acme",
        connector="factorial",
        status=Status.DELIVERED,
        created_at=at,
        updated_at=at,
        idempotency_key_hash="x",
        channel="hellowork",
        board="hellowork",
        board_application_id=name,
        job_id="2001",
    )
    body = {"status": "New", "eventDate": boards.iso(at), "created": boards.iso(at), "jobId": "2001"}
    url = f"{hellowork.url}/v1/applications/{name}/status"
    return (await boards.enqueue(runtime.redis, "hellowork", delivery, body, at, at, url)).id


async def dispatch(runtime: Runtime, at: float) -> dict[str, int]:
    return await boards.dispatch_due(runtime.redis, runtime.config, runtime.http, now=at)


async def test_down_for_the_period_disables_and_recover_resends_exactly_the_failed(
    relay: Relay, runtime: Runtime, hellowork: Emulator
) -> None:
    t0 = time.time()
    await report(runtime, hellowork, "ok-before", t0 - 10)
    assert await dispatch(runtime, t0 - 10) == {"sent": 1}

    hellowork.faults(error_rate=1.0)  # HelloWork is down from here
    await report(runtime, hellowork, "old", t0 - 5)  # fails too, but before the recover's T
    for name in ("b", "c"):
        await report(runtime, hellowork, name, t0)
    assert await dispatch(runtime, t0) == {"retry_scheduled": 3}
    assert await dispatch(runtime, t0 + 20) == {"retry_scheduled": 3}
    assert await dispatch(runtime, t0 + 100) == {"failed": 3}  # retries exhausted
    events = (await relay.client.get("/v1/events?type=message.attempt.exhausted", headers=relay.admin)).json()
    assert sorted(e["delivery_id"] for e in events["data"]) == ["d-b", "d-c", "d-old"]

    await report(runtime, hellowork, "d", t0 + 4 * DAY)
    assert await dispatch(runtime, t0 + 4 * DAY) == {"retry_scheduled": 1}  # 4 days: not yet
    destinations = (await relay.client.get("/v1/destinations", headers=relay.admin)).json()
    assert destinations["disabled"] == []
    assert await dispatch(runtime, t0 + 5 * DAY + 1) == {"retry_scheduled": 1}  # this failure disables it
    destinations = (await relay.client.get("/v1/destinations", headers=relay.admin)).json()
    assert destinations["disabled"] == ["hellowork:acme"]
    [row] = destinations["data"]
    assert row["attempts"] == 12 and row["successes"] == 1 and row["failures"] == 11
    assert row["failing_since"] == pytest.approx(t0, abs=0.01)  # the first failed attempt
    disabled = (await relay.client.get("/v1/events?type=endpoint.disabled", headers=relay.admin)).json()["data"]
    assert len(disabled) == 1 and disabled[0]["destination"] == "hellowork:acme"

    await report(runtime, hellowork, "e", t0 + 5 * DAY + 2)
    calls_before = hellowork.records()["faults_injected"]["error"]
    assert await dispatch(runtime, t0 + 6 * DAY) == {"failed": 2}  # d and e: no attempt while disabled
    assert hellowork.records()["faults_injected"]["error"] == calls_before

    metrics = (await relay.client.get("/metrics", headers=relay.admin)).text
    assert (
        'applyrelay_operational_events_total{destination_kind="hellowork",type="message.attempt.exhausted"} 3.0'
        in metrics
    )
    assert 'applyrelay_operational_events_total{destination_kind="hellowork",type="endpoint.disabled"} 1.0' in metrics
    assert 'applyrelay_destinations_disabled{destination="hellowork:acme"} 1.0' in metrics

    banner = (await relay.client.get("/dashboard", headers=relay.admin)).text
    assert 'id="destinations-disabled"' in banner and "hellowork:acme" in banner

    assert 'id="destinations"' in banner and 'action="/dashboard/destinations/hellowork:acme/enable"' in banner

    hellowork.faults()  # back: an operator enables it from the dashboard (a session and its CSRF token)
    cookie, csrf = await dashboard_login(relay)
    refused = await relay.client.post(
        "/dashboard/destinations/hellowork:acme/enable", data={"csrf": "wrong"}, headers=cookie
    )
    assert refused.status_code == 403
    enabled = await relay.client.post(
        "/dashboard/destinations/hellowork:acme/enable", data={"csrf": csrf}, headers=cookie
    )
    assert enabled.status_code == 303
    again = await relay.client.post("/v1/destinations/hellowork:acme/enable", headers=relay.admin)
    assert again.status_code == 200 and again.json()["enabled"] is False  # already enabled
    kinds = [e["type"] for e in (await relay.client.get("/v1/events", headers=relay.admin)).json()["data"]]
    assert kinds.count("endpoint.enabled") == 1
    started = await relay.client.post(
        "/v1/destinations/hellowork:acme/recover", json={"since": t0 - 1}, headers=relay.admin
    )
    assert started.status_code == 202, started.text
    progress: dict[str, Any] = {}
    for _ in range(200):
        progress = (await relay.client.get(started.headers["location"], headers=relay.admin)).json()
        if progress["status"] != "running":
            break
        await asyncio.sleep(0.02)
    assert (progress["status"], progress["total"], progress["requeued"]) == ("done", 4, 4)
    assert await dispatch(runtime, time.time()) == {"sent": 4}
    received = sorted(s["applicationId"] for s in hellowork.records()["statuses"])
    assert received == ["b", "c", "d", "e", "ok-before"]  # not "old" (before T), "ok-before" once
    assert (await relay.client.get("/v1/destinations/hellowork:acme", headers=relay.admin)).json()["disabled"] is False
    assert 'id="destinations-disabled"' not in (await relay.client.get("/dashboard", headers=relay.admin)).text


async def test_destination_api_refuses_unknown_names(relay: Relay) -> None:
    for path in ("/v1/destinations/nope:acme", "/v1/destinations/hellowork:ghost"):
        response = await relay.client.get(path, headers=relay.admin)
        assert response.status_code == 404 and response.json()["code"] == "PLATFORM.NOT_FOUND"
    bad = await relay.client.post("/v1/destinations/hellowork:acme/recover", json={}, headers=relay.admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "since"
    for since in (int("9" * 400), 1e300, "not a date"):  # 400 digits overflowed float(): a 500
        bad = await relay.client.post(
            "/v1/destinations/hellowork:acme/recover", json={"since": since}, headers=relay.admin
        )
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "since", bad.text
    assert (await relay.client.get("/v1/destinations")).status_code == 401  # a token is needed


async def test_status_callbacks_count_toward_their_destination(
    make_relay: Callable[..., Relay], factorial: Emulator
) -> None:

    answers: list[int] = []
    received: list[str] = []

    @post("/hook", status_code=200)
    async def hook(request: Request[Any, Any, Any]) -> Response[Any]:
        received.append(request.headers["webhook-id"])
        return Response({}, status_code=answers.pop(0) if answers else 200)

    server = BackgroundServer(Litestar([hook], logging_config=None)).start()
    secret = "whsec_" + base64.b64encode(pysecrets.token_bytes(24)).decode()
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    await relay.start_worker()
    body = {
        "connection_id": "acme",
        "application": {"job_id": "2001"},
        "candidate": {"first_name": "Noor", "last_name": "Health", "email_address": "noor.health@example.org"},
    }
    await relay.wait_for((await relay.post(body)).json()["id"], "delivered")
    table = connection_table(
        "factorial",
        factorial.url,
        status_callback_url=f"{server.url}/hook",
        status_callback_secret_env="CB_SECRET",
        fetch_allow_hosts=[f"127.0.0.1:{server.port}"],
        fetch_allow_http=True,
        retry_schedule=[15],
    )
    config = parse_config({"connections": {"acme": table}}, {"TEST_FACTORIAL_KEY": "sandbox", "CB_SECRET": secret})
    runtime = Runtime(Settings(redis_url=relay.redis_url, config=config, data_keys=relay.settings.data_keys))
    try:
        answers.extend([503, 503])
        now = time.time()
        assert (await poll.sync_once(runtime, now=now)).callbacks == 1
        assert await callbacks.dispatch_due(runtime.redis, runtime.config, runtime.http, now=now) == {
            "retry_scheduled": 1
        }
        assert await callbacks.dispatch_due(runtime.redis, runtime.config, runtime.http, now=now + 20) == {"failed": 1}
        dest = (await relay.client.get("/v1/destinations/callback:acme", headers=relay.admin)).json()
        assert (dest["attempts"], dest["failures"], dest["failed_messages"]) == (2, 2, 1)
        assert [a["http_status"] for a in dest["recent_attempts"]] == [503, 503]
        events = (await relay.client.get("/v1/events?type=message.attempt.exhausted", headers=relay.admin)).json()
        assert [e["destination"] for e in events["data"]] == ["callback:acme"]

        started = await relay.client.post(
            "/v1/destinations/callback:acme/recover", json={"since": "2020-01-01T00:00:00Z"}, headers=relay.admin
        )
        for _ in range(200):
            progress = (await relay.client.get(started.headers["location"], headers=relay.admin)).json()
            if progress["status"] != "running":
                break
            await asyncio.sleep(0.02)
        assert progress["requeued"] == 1
        assert await callbacks.dispatch_due(runtime.redis, runtime.config, runtime.http) == {"sent": 1}
        assert len(received) == 3 and len(set(received)) == 1  # the same webhook-id, recovered
    finally:
        await runtime.close()
        server.stop()
