"""Sync only created applications: the relay follows their stage/outcome in the ATS (Factorial
emulator), shows it on the delivery and posts Standard Webhooks–signed callbacks, retried."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, post
from standardwebhooks.webhooks import Webhook

from app.config import ConfigError, parse_config
from app.redis.keys import CALLBACKS_DUE
from app.runtime import Runtime
from app.settings import Settings
from app.tracking import callbacks, poll
from app.worker import create_worker, cron_jobs
from connectors.sandbox.common import BackgroundServer
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class Receiver:
    """The origin's endpoint: records what it gets, answers with scripted statuses (then 200)."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.script: list[int] = []

        @post("/hooks/status", status_code=200)
        async def hook(request: Request[Any, Any, Any]) -> Response[Any]:
            self.received.append((dict(request.headers), await request.body()))
            return Response({"ok": True}, status_code=self.script.pop(0) if self.script else 200)

        self.server = BackgroundServer(Litestar([hook], logging_config=None)).start()
        self.url = f"{self.server.url}/hooks/status"

    def events(self) -> list[dict[str, Any]]:
        webhook = Webhook(SECRET)
        for headers, body in self.received:  # every attempt carries a valid signature
            webhook.verify(body, headers)
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver() -> Any:
    r = Receiver()
    yield r
    r.server.stop()


def sync_runtime(relay: Relay, factorial: Emulator, callback_url: str, **extra: Any) -> Runtime:
    """A worker-side runtime whose connection has a status callback (secret from its environment)."""
    table = connection_table(
        "factorial",
        factorial.url,
        status_callback_url=callback_url,
        status_callback_secret_env="TEST_STATUS_SECRET",
        **extra,
    )
    config = parse_config(
        {"connections": {"acme": table}}, {"TEST_FACTORIAL_KEY": "sandbox", "TEST_STATUS_SECRET": SECRET}
    )
    return Runtime(
        Settings(redis_url=relay.redis_url, config=config, job_timeout_s=8.0, data_keys=relay.settings.data_keys)
    )


@pytest.fixture
async def relay(make_relay: Any, factorial: Emulator) -> AsyncIterator[Relay]:
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    await relay.start_worker()
    yield relay


async def deliver(relay: Relay, n: int) -> tuple[str, str]:
    body = {
        "connection_id": "acme",
        "application": {"job_id": "2001"},
        "candidate": {"first_name": "Noor", "last_name": f"Test{n}", "email_address": f"noor{n}@example.org"},
    }
    delivery_id = (await relay.post(body)).json()["id"]
    record = await relay.wait_for(delivery_id, "delivered")
    return delivery_id, record["checkpoints"]["application"]


def ats(factorial: Emulator) -> httpx.Client:
    return httpx.Client(base_url=f"{factorial.url}/api/2026-07-01/resources/", headers={"x-api-key": "sandbox"})


async def test_status_changes_are_synced_and_called_back(relay: Relay, factorial: Emulator, receiver: Receiver) -> None:
    first, first_app = await deliver(relay, 1)
    second, second_app = await deliver(relay, 2)
    allow = {"fetch_allow_hosts": [f"127.0.0.1:{receiver.server.port}"], "fetch_allow_http": True}
    runtime = sync_runtime(relay, factorial, receiver.url, **allow)
    try:
        report = await poll.sync_once(runtime)
        assert report.enrolled == 2 and report.checked == 2 and sorted(report.changed) == sorted([first, second])
        record = await relay.delivery(first)
        status = record["remote_status"]
        assert (status["stage_id"], status["stage_name"], status["outcome"]) == ("200101", "New", "PENDING")
        assert await callbacks.dispatch_due(runtime.redis, runtime.config, runtime.http) == {"sent": 2}
        initial = receiver.events()
        assert sorted(e["data"]["delivery_id"] for e in initial) == sorted([first, second])
        assert all(e["type"] == "application.status_changed" and e["data"]["previous_status"] is None for e in initial)
        assert b"noor" not in b"".join(body for _, body in receiver.received)  # ids and stages, no PII

        # In the ATS: the first is disqualified in Screening, the second is hired.
        with ats(factorial) as http:
            http.put(f"ats/applications/{first_app}", json={"id": first_app, "qualified": False}).raise_for_status()
            http.post(
                "ats/applications/move_to_phase", json={"id": first_app, "ats_application_phase_id": "200102"}
            ).raise_for_status()
            http.post(
                "ats/applications/move_to_phase", json={"id": second_app, "ats_application_phase_id": "200105"}
            ).raise_for_status()
        too_soon = await poll.sync_once(runtime)
        assert too_soon.checked == 0  # each application is checked once per interval
        later = runtime.settings.status_sync_interval_s + 1 + time.time()
        report = await poll.sync_once(runtime, now=later)
        assert report.checked == 2 and report.callbacks == 2
        assert (await relay.delivery(first))["remote_status"]["outcome"] == "DECLINED"
        hired = (await relay.delivery(second))["remote_status"]
        assert (hired["stage_name"], hired["outcome"]) == ("Hired", "HIRED")

        receiver.script = [503, 503]  # the origin is down for the first attempts
        assert await callbacks.dispatch_due(runtime.redis, runtime.config, runtime.http, now=later) == {
            "retry_scheduled": 2
        }
        due = await runtime.redis.zrange(CALLBACKS_DUE, 0, -1, withscores=True)
        assert all(15 * 0.8 - 1 <= score - later <= 15 * 1.2 + 1 for _, score in due)  # the delivery schedule
        sent = await callbacks.dispatch_due(runtime.redis, runtime.config, runtime.http, now=later + 20)
        assert sent == {"sent": 2}
        events = receiver.events()
        assert len(events) == 6
        retried = [h["webhook-id"] for h, _ in receiver.received[2:]]
        assert sorted(retried[:2]) == sorted(retried[2:])  # the same webhook-id on each attempt
        change = next(e for e in events[4:] if e["data"]["delivery_id"] == first)["data"]
        assert change["status"]["outcome"] == "DECLINED" and change["status"]["stage_name"] == "Screening"
        assert change["previous_status"]["outcome"] == "PENDING"
        assert change["application_id"] == first_app

        unchanged = await poll.sync_once(runtime, now=later + 2 * runtime.settings.status_sync_interval_s)
        assert unchanged.checked == 2 and unchanged.changed == [] and unchanged.callbacks == 0
    finally:
        await runtime.close()


async def test_callback_urls_go_through_the_ssrf_guard(relay: Relay, factorial: Emulator) -> None:
    await deliver(relay, 3)
    runtime = sync_runtime(relay, factorial, "http://10.1.2.3/hooks", fetch_allow_http=True)
    try:
        report = await poll.sync_once(runtime)
        assert report.callbacks == 1
        assert await callbacks.dispatch_due(runtime.redis, runtime.config, runtime.http) == {"failed": 1}
        [callback_key] = [k for k in await runtime.redis.keys("ar:cb:msg_*")]
        callback = await callbacks.get(runtime.redis, callback_key.decode().removeprefix("ar:cb:"))
        assert callback is not None and callback.status == "failed"
        assert "unsafe callback URL" in (callback.last_error or "")
    finally:
        await runtime.close()


def test_status_callback_config_needs_url_and_secret() -> None:
    table = connection_table("factorial", "http://127.0.0.1:9", status_callback_url="https://board.example/h")
    with pytest.raises(ConfigError, match="status_callback"):
        parse_config({"connections": {"acme": table}}, {"TEST_FACTORIAL_KEY": "k"})
    table["status_callback_secret_env"] = "MISSING_SECRET"
    with pytest.raises(ConfigError, match="MISSING_SECRET"):
        parse_config({"connections": {"acme": table}}, {"TEST_FACTORIAL_KEY": "k"})


def test_sync_and_callbacks_run_on_the_workers_schedule(relay: Relay) -> None:
    names = {job.name for job in cron_jobs(relay.settings)}
    assert {"sync_application_status", "dispatch_status_callbacks", "check_connections"} <= names
    # arq holds a killed worker's jobs for the longest function timeout + 10 s: the cron jobs must
    # not lengthen that past the delivery job's own timeout.
    worker = create_worker(relay.settings)
    assert worker.in_progress_timeout_s == relay.settings.job_timeout_s + 10
