"""Connection operations over real HTTP: pause on 401 and resume, status, degraded alerts, passthrough."""

from __future__ import annotations

import time
from typing import Any

import pytest
import structlog

from app.delivery.store import DeliveryStore
from app.operator.connection_health import connection_statuses, report_degraded
from app.privacy import audit
from app.tokens import ApiToken
from app.worker import cron_jobs
from connectors.sandbox.factorial import COMPANY_ID
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay

VIEWER = "viewer-token-0123456789"


def application(n: int = 0) -> dict[str, Any]:
    return {
        "connection_id": "acme",
        "application": {"job_id": "2001"},
        "candidate": {"first_name": "Ana", "last_name": f"Test{n}", "email_address": f"ana{n}@example.org"},
    }


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    relay = make_relay(
        {
            "acme": connection_table("factorial", factorial.url),
            "other": connection_table("factorial", factorial.url, concurrency=3, rate_per_s=4),
        }
    )
    relay.server.server.config.app.state.tokens.append(ApiToken("viewer", VIEWER, frozenset({"read"})))
    return relay


def viewer() -> dict[str, str]:
    return {"authorization": f"Bearer {VIEWER}"}


async def test_401_pauses_the_connection_and_resume_delivers(relay: Relay, factorial: Emulator) -> None:
    # intake's read of the job, cached before the fault (a refused write is what pauses)
    assert (await relay.client.get("/v1/connections/acme/jobs/2001", headers=relay.admin)).status_code == 200
    factorial.faults(script=["error"], error_status=401)
    await relay.start_worker()
    first = (await relay.post(application(1))).json()["id"]
    record = await relay.wait_for(first, "paused")
    assert record["failed_attempts"] == 0 and record["last_error"]["http_status"] == 401
    second = (await relay.post(application(2))).json()["id"]
    await relay.wait_for(second, "paused")  # the pause holds every delivery of the connection
    assert factorial.records()["candidates"] == []

    listing = (await relay.client.get("/v1/connections", headers=viewer())).json()["data"]
    acme = next(c for c in listing if c["id"] == "acme")
    assert acme["paused"] is True and "HTTP 401" in acme["paused_reason"]
    assert acme["counts"]["paused"] == 2 and acme["failing"] == 2
    other = next(c for c in listing if c["id"] == "other")
    assert other["paused"] is False and other["concurrency"] == 3 and other["rate_per_s"] == 4

    assert (await relay.client.post("/v1/connections/acme/resume", headers=viewer())).status_code == 403
    assert (await relay.client.post("/v1/connections/acme/resume")).status_code == 401
    assert (await relay.client.post("/v1/connections/nope/resume", headers=relay.admin)).status_code == 404
    resumed = await relay.client.post("/v1/connections/acme/resume", headers=relay.admin)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json() == {"id": "acme", "paused": False, "was_paused": True, "resumed_deliveries": 2}
    for delivery_id in (first, second):
        delivered = await relay.wait_for(delivery_id, "delivered")
        assert delivered["failed_attempts"] == 0
    assert len(factorial.records()["applications"]) == 2
    [entry] = [e for e in await audit.read(relay.redis) if e.action == "resume_connection"]
    assert entry.actor == "admin" and entry.target == "acme"
    listing = (await relay.client.get("/v1/connections", headers=viewer())).json()["data"]
    assert next(c for c in listing if c["id"] == "acme")["paused"] is False


async def test_a_connection_failing_for_hours_is_reported(
    relay: Relay, factorial: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    factorial.faults(error_rate=1.0, error_status=503)
    await relay.start_worker()
    delivery_id = (await relay.post(application())).json()["id"]
    await relay.wait_for(delivery_id, "retry_scheduled")
    store, config = DeliveryStore(relay.redis), relay.settings.config

    now = time.time()
    fresh = {s.id: s for s in await connection_statuses(store, config, now=now, threshold_s=3600)}
    assert fresh["acme"].failing == 1 and not fresh["acme"].degraded
    later = await connection_statuses(store, config, now=now + 3 * 3600, threshold_s=3600)
    by_id = {s.id: s for s in later}
    assert by_id["acme"].degraded and by_id["acme"].oldest_failing_s > 3 * 3600 - 5
    assert not by_id["other"].degraded
    with structlog.testing.capture_logs() as logs:
        assert await report_degraded(relay.redis, later) == ["acme"]
        await report_degraded(relay.redis, list(fresh.values()))
    events = [(e["event"], e.get("connection")) for e in logs]
    assert ("connection.degraded", "acme") in events and ("connection.recovered", "acme") in events
    degraded = next(e for e in logs if e["event"] == "connection.degraded")
    assert degraded["oldest_failing_s"] >= 3 * 3600 - 5 and degraded["log_level"] == "warning"

    relay.settings.degraded_after_s = 0  # APPLYRELAY_DEGRADED_AFTER_S=0: every failing connection is degraded
    metrics = await relay.client.get("/metrics", headers=viewer())
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    lines = metrics.text.splitlines()
    assert 'applyrelay_connection_degraded{connection="acme",connector="factorial"} 1' in lines
    assert 'applyrelay_connection_degraded{connection="other",connector="factorial"} 0' in lines
    assert any(
        line.startswith('applyrelay_connection_oldest_failing_seconds{connection="acme"')
        and float(line.rsplit(" ", 1)[1]) > 0
        for line in lines
    )
    assert (
        'applyrelay_connection_deliveries{connection="acme",connector="factorial",status="retry_scheduled"} 1' in lines
    )
    queued = [line for line in lines if line.startswith("applyrelay_queue_jobs{")]
    assert sum(float(line.split()[1]) for line in queued) >= 1  # the retry (and maybe a cron job)
    assert (await relay.client.get("/metrics")).status_code == 401
    names = [job.name for job in cron_jobs(relay.settings)]
    assert "check_connections" in names


async def test_passthrough_with_the_connection_credentials(relay: Relay, factorial: Emulator) -> None:
    url = "/v1/connections/acme/passthrough"
    ok = await relay.client.post(
        url, headers=relay.admin, json={"method": "GET", "path": "ats/job_postings", "query": {"limit": "1"}}
    )
    assert ok.status_code == 200, ok.text
    answer = ok.json()
    assert answer["status"] == 200 and len(answer["body"]["data"]) == 1
    assert answer["headers"]["content-type"].startswith("application/json")
    created = await relay.client.post(
        url,
        headers=relay.admin,
        json={
            "method": "POST",
            "path": "ats/candidates",
            "body": {"first_name": "Pat", "last_name": "Through", "email": "pat@example.org", "company_id": COMPANY_ID},
        },
    )
    assert created.json()["status"] == 201
    assert [c["email"] for c in factorial.records()["candidates"]] == ["pat@example.org"]
    missing = await relay.client.post(url, headers=relay.admin, json={"method": "GET", "path": "ats/nothing"})
    assert missing.status_code == 200 and missing.json()["status"] == 404  # the ATS's own answer, relayed

    [entry, *_] = [e for e in await audit.read(relay.redis) if e.action == "passthrough"]
    assert entry.actor == "admin" and entry.target == "acme"
    assert entry.detail == {"method": "GET", "path": "ats/nothing", "query_keys": [], "status": 404}


@pytest.mark.parametrize(
    "path",
    [
        "https://evil.example/steal",
        "//evil.example/x",
        "/api/v1/ats",
        "../oauth/token",
        "ats/../../oauth/token",
        "ats/%2e%2e/%2e%2e/oauth",
        "ats/job_postings?x=1",
        "ats\\..\\x",
        "ats//x",
        "ats/%0a",
        "http://[zz]/",  # urlsplit raises on it: was a 500
    ],
)
async def test_passthrough_paths_stay_under_the_api_base(relay: Relay, path: str) -> None:
    response = await relay.client.post(
        "/v1/connections/acme/passthrough", headers=relay.admin, json={"method": "GET", "path": path}
    )
    assert response.status_code == 422, (path, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "path" and response.json()["code"] == "PLATFORM.INPUT_INVALID"


async def test_passthrough_is_admin_only_and_checks_its_input(relay: Relay) -> None:
    url = "/v1/connections/acme/passthrough"
    call = {"method": "GET", "path": "ats/job_postings"}
    assert (await relay.client.post(url, json=call)).status_code == 401
    assert (await relay.client.post(url, json=call, headers=viewer())).status_code == 403
    unknown = await relay.client.post("/v1/connections/nope/passthrough", json=call, headers=relay.admin)
    assert unknown.status_code == 404
    bad_method = await relay.client.post(url, json={**call, "method": "TRACE"}, headers=relay.admin)
    assert bad_method.status_code == 422 and bad_method.json()["errors"][0]["field"] == "method"
    no_path = await relay.client.post(url, json={"method": "GET"}, headers=relay.admin)
    assert no_path.status_code == 422 and no_path.json()["errors"][0]["field"] == "path"
    extra = await relay.client.post(url, json={**call, "host": "evil.example"}, headers=relay.admin)
    assert extra.status_code == 422
    garbage = await relay.client.post(
        url, content=b"{nope", headers={**relay.admin, "content-type": "application/json"}
    )
    assert garbage.status_code == 400
