"""The operator API on deliveries: every filter, cursor pagination, counts, detail with timeline
and audited PII, retry / retry attachments / bulk retry / purge, scopes, /metrics and /ready —
against a real Redis, a real worker and the Factorial emulator over HTTP."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import time
from typing import Any

import pytest

from tests.support.builders import connection_table
from tests.support.dashboard import (
    CANDIDATE_FIRST,
    CANDIDATE_LAST,
    accept_from_board,
    add_token,
    audit_entries,
    fail_candidates,
    make_failed,
    post,
    wait_bulk,
)
from tests.support.emulators import Emulator
from tests.support.harness import Relay

READ_SECRET = "read-only-secret-0123456789"
RETRY_SECRET = "retry-secret-0123456789abc"
PII_SECRET = "pii-secret-0123456789abcdef"


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay(
        {"acme": connection_table("factorial", factorial.url), "beta": connection_table("factorial", factorial.url)}
    )


async def ids_of(relay: Relay, headers: dict[str, str] | None = None, **params: Any) -> list[str]:
    response = await relay.client.get("/v1/deliveries", params=params, headers=headers or relay.admin)
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["data"]]


async def test_every_filter(relay: Relay) -> None:
    a1 = await post(relay, 1)
    b1 = await post(relay, 2, "beta")
    t_mid = time.time()
    await asyncio.sleep(0.02)
    i1 = await accept_from_board(relay, 3, board_application_id="IND-777")
    w1 = await accept_from_board(relay, 4, connection="beta", channel="webhook", board="stepstone")

    assert await ids_of(relay) == [w1, i1, b1, a1]  # newest received first
    assert await ids_of(relay, connection="acme") == [i1, a1]
    assert await ids_of(relay, connection="beta") == [w1, b1]
    assert await ids_of(relay, connector="factorial") == [w1, i1, b1, a1]
    assert await ids_of(relay, connector="otys") == []
    assert await ids_of(relay, channel="api") == [b1, a1]
    assert await ids_of(relay, channel="indeed") == [i1]
    assert await ids_of(relay, board="stepstone") == [w1]
    assert await ids_of(relay, channel="webhook", connection="beta", board="stepstone") == [w1]
    assert await ids_of(relay, channel="webhook", connection="acme") == []
    assert await ids_of(relay, received_from=t_mid) == [w1, i1]
    assert await ids_of(relay, received_to=t_mid) == [b1, a1]
    iso = dt.datetime.fromtimestamp(t_mid, dt.UTC).isoformat()
    assert await ids_of(relay, received_from=iso, connection="beta") == [w1]
    assert await ids_of(relay, status="queued") == [w1, i1, b1, a1]
    assert await ids_of(relay, status="queued", connection="acme") == [i1, a1]
    assert await ids_of(relay, status="failed") == []
    # text search: a delivery id (with or without its prefix), a board's application id
    assert await ids_of(relay, q=a1) == [a1]
    assert await ids_of(relay, q=a1.removeprefix("dlv_")) == [a1]
    assert await ids_of(relay, q="IND-777") == [i1]
    assert await ids_of(relay, q="IND-777", connection="beta") == []
    assert await ids_of(relay, q="nothing-like-it") == []


async def test_cursor_pagination_walks_everything_once_while_new_ones_arrive(relay: Relay) -> None:
    created = [await post(relay, n) for n in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = (await relay.client.get("/v1/deliveries", params=params, headers=relay.admin)).json()
        seen += [row["id"] for row in body["data"]]
        pages += 1
        if pages == 1:
            await post(relay, 100)  # arrives after the first page: newer, so not on later pages
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created)) and pages == 3
    # the same with a filter (an intersection of indexes)
    first = (
        await relay.client.get(
            "/v1/deliveries", params={"limit": 4, "status": "queued", "connection": "acme"}, headers=relay.admin
        )
    ).json()
    rest = (
        await relay.client.get(
            "/v1/deliveries",
            params={"limit": 4, "status": "queued", "connection": "acme", "cursor": first["next_cursor"]},
            headers=relay.admin,
        )
    ).json()
    assert len(first["data"]) == 4 and len(rest["data"]) == 4 and rest["next_cursor"] is None
    assert not {r["id"] for r in first["data"]} & {r["id"] for r in rest["data"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"cursor": "%%%not-a-cursor"}, "cursor"),
        ({"received_from": "yesterday"}, "received_from"),
        ({"received_from": "2030-01-01", "received_to": "2020-01-01"}, "received_from"),
        # floats Python reads and Redis refuses as a score bound: they were a 500
        ({"received_to": "nan"}, "received_to"),
        ({"received_from": "NaN"}, "received_from"),
        ({"received_from": "inf"}, "received_from"),
        ({"received_to": "-Infinity"}, "received_to"),
        ({"received_to": "1e400"}, "received_to"),
        ({"cursor": base64.urlsafe_b64encode(b"nan|dlv_x").decode()}, "cursor"),  # a forged cursor
        ({"limit": "many"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "100000"}, "limit"),
    ],
)
async def test_bad_filters_are_422_naming_the_field(relay: Relay, params: dict[str, str], field: str) -> None:
    """A value the route does not take is a 422 (as on every route), never clamped silently."""
    response = await relay.client.get("/v1/deliveries", params=params, headers=relay.admin)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text and response.json()["code"] == "PLATFORM.INPUT_INVALID"
    if field != "limit":  # Litestar's own parameter check words its errors differently
        assert [e["field"] for e in response.json()["errors"]] == [field], response.json()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
async def test_a_bulk_retry_with_a_non_finite_time_is_refused_before_it_starts(relay: Relay, value: str) -> None:
    """It was a 202, and the background job then failed on Redis's refusal of the bound."""
    ops = add_token(relay, "ops", "read+retry", RETRY_SECRET)
    await post(relay, 1)
    for body in ({"received_from": value}, {"status": "failed", "received_to": value}):
        response = await relay.client.post("/v1/deliveries/retry", json=body, headers=ops)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        field = next(iter(k for k in body if k.startswith("received")))
        assert [e["field"] for e in response.json()["errors"]] == [field], response.json()
        assert response.json()["code"] == "PLATFORM.INPUT_INVALID"
    assert await relay.redis.keys("ar:bulk:*") == []  # nothing started
    assert not [e for e in await audit_entries(relay) if e.action == "bulk_retry"]


async def test_list_rows_carry_no_candidate_data(relay: Relay) -> None:
    await post(relay, 1)
    text = (await relay.client.get("/v1/deliveries", headers=relay.admin)).text
    assert CANDIDATE_FIRST not in text and "zoe1@example.org" not in text


async def test_counts_per_status_and_connection(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    [failed] = await make_failed(relay, factorial, 1)
    delivered = await post(relay, 10, "beta")
    await relay.wait_for(delivered, "delivered")
    body = (await relay.client.get("/v1/deliveries/counts", headers=relay.admin)).json()
    assert body["by_status"]["failed"] == 1 and body["by_status"]["delivered"] == 1 and body["total"] == 2
    assert body["by_connection"]["acme"]["failed"] == 1 and body["by_connection"]["acme"]["delivered"] == 0
    assert body["by_connection"]["beta"]["delivered"] == 1 and body["by_connection"]["beta"]["failed"] == 0
    assert await ids_of(relay, status="failed") == [failed]


async def test_detail_has_timeline_and_shows_the_name_only_to_pii_with_an_audit_entry(
    relay: Relay, factorial: Emulator
) -> None:
    read_only = add_token(relay, "viewer", "read", READ_SECRET)
    pii = add_token(relay, "dpo", "read+pii", PII_SECRET)
    await relay.start_worker()
    [delivery_id] = await make_failed(relay, factorial, 1)
    body = (await relay.client.get(f"/v1/deliveries/{delivery_id}", headers=read_only)).json()
    events = [e["event"] for e in body["timeline"]]
    assert events[0] == "accepted" and events[-1] == "dead_lettered" and "attempt" in events
    attempt = next(e for e in body["timeline"] if e["event"] == "attempt" and e["outcome"] == "permanent")
    assert attempt["http_status"] == 422 and attempt["step"] == "candidate"
    assert "candidate" not in body and CANDIDATE_FIRST not in str(body)
    assert not [e for e in await audit_entries(relay) if e.action == "view_detail"]

    refused = await relay.client.get(
        f"/v1/deliveries/{delivery_id}", params={"include": "candidate"}, headers=read_only
    )
    assert refused.status_code == 403
    shown = (
        await relay.client.get(f"/v1/deliveries/{delivery_id}", params={"include": "candidate"}, headers=pii)
    ).json()
    assert shown["candidate"]["first_name"] == CANDIDATE_FIRST and shown["candidate"]["last_name"] == CANDIDATE_LAST
    assert shown["candidate"]["email_address"].endswith("@example.org")  # name and address, for `pii` only
    [entry] = [e for e in await audit_entries(relay) if e.action == "view_detail"]
    assert (entry.actor, entry.target) == ("dpo", delivery_id)
    missing = await relay.client.get("/v1/deliveries/dlv_nope", headers=read_only)
    assert missing.status_code == 404


async def test_retry_resumes_and_is_idempotent_with_audit(relay: Relay, factorial: Emulator) -> None:
    ops = add_token(relay, "ops", "read+retry", RETRY_SECRET)
    await relay.start_worker()
    [delivery_id] = await make_failed(relay, factorial, 1)
    response = await relay.client.post(f"/v1/deliveries/{delivery_id}/retry", headers=ops)
    assert response.status_code == 202 and response.json() == {"id": delivery_id, "status": "queued", "changed": True}
    record = await relay.wait_for(delivery_id, "delivered")
    assert record["runs"] == 2
    again = await relay.client.post(f"/v1/deliveries/{delivery_id}/retry", headers=ops)
    assert again.status_code == 200 and again.json()["changed"] is False
    assert len(factorial.records()["candidates"]) == 1
    retries = [e for e in await audit_entries(relay) if e.action == "retry"]
    assert [(e.actor, e.target, e.detail["changed"]) for e in retries] == [
        ("ops", delivery_id, False),
        ("ops", delivery_id, True),
    ]
    assert (await relay.client.post("/v1/deliveries/dlv_nope/retry", headers=ops)).status_code == 404


async def test_retry_attachments_resends_unconfirmed_files(relay: Relay, factorial: Emulator) -> None:
    from tests.support.builders import PDF_BYTES, b64

    await relay.start_worker()
    factorial.faults(error_rate=1.0, error_status=422, path_regex="/ats/messages$|/files|attachments", methods=["POST"])
    body = {
        "connection_id": "acme",
        "application": {"job_id": "2001"},
        "candidate": {"first_name": "A", "last_name": "B", "email_address": "ab@example.org"},
        "attachments": [{"name": "cv.pdf", "type": "CV", "data": b64(PDF_BYTES)}],
    }
    delivery_id = (await relay.post(body)).json()["id"]
    record = await relay.wait_for(delivery_id, "failed")
    assert record["attachments"] and not record["attachments"][0].get("confirmed")
    factorial.faults()
    response = await relay.client.post(f"/v1/deliveries/{delivery_id}/retry-attachments", headers=relay.admin)
    assert response.status_code == 202 and response.json()["changed"] is True
    record = await relay.wait_for(delivery_id, "delivered")
    assert record["attachments"][0]["confirmed"]
    assert len(factorial.records()["files"]) == 1 and len(factorial.records()["candidates"]) == 1
    assert [e.action for e in await audit_entries(relay)].count("retry_attachments") == 1


async def test_bulk_retry_by_filter_in_the_background(relay: Relay, factorial: Emulator) -> None:
    ops = add_token(relay, "ops", "read+retry", RETRY_SECRET)
    await relay.start_worker()
    failed = await make_failed(relay, factorial, 4)
    fail_candidates(factorial)
    other = await post(relay, 50, "beta")
    await relay.wait_for(other, "failed")
    factorial.faults()
    delivered = await post(relay, 60)
    await relay.wait_for(delivered, "delivered")

    response = await relay.client.post(
        "/v1/deliveries/retry", json={"status": "failed", "connection": "acme"}, headers=ops
    )
    assert response.status_code == 202, response.text
    progress = await wait_bulk(relay.client, response.headers["location"], ops)
    assert progress["status"] == "done" and progress["percent"] == 100
    assert (progress["total"], progress["done"], progress["retried"], progress["errors"]) == (4, 4, 4, 0)
    assert progress["filter"] == {"status": "failed", "connection": "acme"}
    for delivery_id in failed:
        await relay.wait_for(delivery_id, "delivered")
    assert (await relay.delivery(other))["status"] == "failed"  # another connection: untouched
    [entry] = [e for e in await audit_entries(relay) if e.action == "bulk_retry"]
    assert entry.actor == "ops" and entry.target == progress["id"]

    # no filter is refused, nothing is retried; "all" says it on purpose
    for empty in (b"", b"{}"):
        refused = await relay.client.post(
            "/v1/deliveries/retry", content=empty, headers={**ops, "content-type": "application/json"}
        )
        assert refused.status_code == 422 and refused.json()["code"] == "PLATFORM.FILTER_REQUIRED", refused.text
    assert (await relay.delivery(other))["status"] == "failed"
    response = await relay.client.post("/v1/deliveries/retry", json={"all": True}, headers=ops)
    progress = await wait_bulk(relay.client, response.headers["location"], ops)
    assert progress["total"] == 6 and progress["retried"] == 1 and progress["unchanged"] == 5
    await relay.wait_for(other, "delivered")

    for body, field in (({"status": "gone"}, "status"), ({"colour": "red"}, "colour"), ({"all": "yes"}, "all")):
        bad = await relay.client.post("/v1/deliveries/retry", json=body, headers=ops)
        assert bad.status_code == 422 and field in bad.text and bad.json()["code"], bad.text
    both = await relay.client.post("/v1/deliveries/retry", json={"all": True, "status": "failed"}, headers=ops)
    assert both.status_code == 422
    assert (await relay.client.get("/v1/bulk-retries/blk_nope", headers=ops)).status_code == 404


async def test_purge_drops_payload_and_files_and_keeps_a_tombstone(relay: Relay, factorial: Emulator) -> None:
    ops = add_token(relay, "ops", "read+retry", RETRY_SECRET)
    await relay.start_worker()
    [delivery_id] = await make_failed(relay, factorial, 1)
    queued = await post(relay, 9)  # not a dead letter (no worker run needed to check)
    assert await relay.redis.exists(f"ar:p:{delivery_id}")

    assert (await relay.client.delete(f"/v1/deliveries/{delivery_id}", headers=ops)).status_code == 403
    response = await relay.client.delete(f"/v1/deliveries/{delivery_id}", headers=relay.admin)
    assert response.status_code == 200 and response.json()["payload_purged"] is True
    assert not await relay.redis.exists(f"ar:p:{delivery_id}")
    assert not await relay.redis.keys(f"ar:f:{delivery_id}:*")
    record = await relay.delivery(delivery_id)
    assert record["status"] == "failed" and record["payload_purged"] and record["attempts"]
    assert (await relay.client.post(f"/v1/deliveries/{delivery_id}/retry", headers=ops)).status_code == 409
    pii = await relay.client.get(f"/v1/deliveries/{delivery_id}", params={"include": "candidate"}, headers=relay.admin)
    assert pii.json()["candidate"] is None

    refused = await relay.client.delete(f"/v1/deliveries/{queued}", headers=relay.admin)
    # (its status may move on between two reads: the refusal, not the wording of the moment, is tested)
    assert refused.status_code == 409 and "only failed deliveries can be purged" in refused.text
    assert await relay.redis.exists(f"ar:p:{queued}")  # nothing was purged
    assert (await relay.client.delete("/v1/deliveries/dlv_nope", headers=relay.admin)).status_code == 404
    assert [e.target for e in await audit_entries(relay) if e.action == "purge"] == [delivery_id]


@pytest.mark.parametrize(
    ("method", "path", "scope_needed"),
    [
        ("GET", "/v1/deliveries", "read"),
        ("GET", "/v1/deliveries/counts", "read"),
        ("GET", "/v1/deliveries/dlv_x", "read"),
        ("POST", "/v1/deliveries/dlv_x/retry", "retry"),
        ("POST", "/v1/deliveries/dlv_x/retry-attachments", "retry"),
        ("POST", "/v1/deliveries/retry", "retry"),
        ("GET", "/v1/bulk-retries/blk_x", "read"),
        ("DELETE", "/v1/deliveries/dlv_x", "erase"),
        ("GET", "/metrics", "read"),
    ],
)
async def test_auth_refused_without_token_and_without_the_scope(
    relay: Relay, method: str, path: str, scope_needed: str
) -> None:
    assert (await relay.client.request(method, path)).status_code == 401
    assert (
        await relay.client.request(method, path, headers={"authorization": "Bearer wrong-token"})
    ).status_code == 401
    other_scopes = {"read": "pii", "retry": "read", "erase": "read+retry"}[scope_needed]
    headers = add_token(relay, "limited", other_scopes, "limited-secret-0123456789")
    response = await relay.client.request(method, path, headers=headers)
    assert response.status_code == 403 and scope_needed in response.text


async def test_metrics_are_computed_from_redis_across_processes(relay: Relay, factorial: Emulator) -> None:
    worker = relay.spawn_worker()  # the worker counts in its own process; the web answers
    try:
        [failed] = await make_failed(relay, factorial, 1)
        factorial.faults(script=["error"], error_status=503, path_regex="/ats/candidates$", methods=["POST"])
        flaky = await post(relay, 20)
        await relay.wait_for(flaky, "retry_scheduled")
        await relay.run_due_jobs()
        await relay.wait_for(flaky, "delivered")
        await relay.client.post(f"/v1/deliveries/{failed}/retry", headers=relay.admin)
        await relay.wait_for(failed, "delivered")
    finally:
        relay.kill(worker)
    await accept_from_board(relay, 30)  # queued, no worker
    text = (await relay.client.get("/metrics", headers=relay.admin)).text
    assert 'applyrelay_accepted_total{channel="api",connection="acme",connector="factorial"} 2.0' in text
    assert 'applyrelay_accepted_total{channel="indeed",connection="acme",connector="factorial"} 1.0' in text
    assert 'applyrelay_delivered_total{connection="acme",connector="factorial"} 2.0' in text
    assert 'applyrelay_failed_total{connection="acme",connector="factorial"} 1.0' in text
    assert 'applyrelay_retries_total{connector="factorial",status_code="503"} 1.0' in text
    assert 'applyrelay_retries_total{connector="factorial",status_code="manual"} 1.0' in text
    assert 'applyrelay_delivery_latency_seconds_count{connector="factorial"} 2.0' in text
    assert 'applyrelay_delivery_latency_seconds_bucket{connector="factorial",le="+Inf"} 2.0' in text
    assert 'applyrelay_queue_jobs{state="due"} 1.0' in text
    assert 'applyrelay_deliveries{connection="acme",status="queued"} 1.0' in text
    age = next(line for line in text.splitlines() if line.startswith("applyrelay_oldest_queued_age_seconds "))
    assert 0 <= float(age.split()[1]) < 60
    assert CANDIDATE_FIRST not in text and "example.org" not in text


async def test_ready_needs_a_fresh_worker_heartbeat(relay: Relay) -> None:
    response = await relay.client.get("/ready")
    assert response.status_code == 503 and "worker" in response.json()["detail"]
    await relay.start_worker()
    deadline = time.monotonic() + 10
    while (await relay.client.get("/ready")).status_code != 200:
        assert time.monotonic() < deadline, "the worker's heartbeat never made /ready pass"
        await asyncio.sleep(0.05)
    assert (await relay.client.get("/health")).status_code == 200


@pytest.mark.parametrize(("intersect_max", "scan_max"), [(0, 20_000), (0, 3)])
async def test_large_filter_sets_are_walked_not_intersected(
    relay: Relay, monkeypatch: pytest.MonkeyPatch, intersect_max: int, scan_max: int
) -> None:
    """Past INTERSECT_MAX the query walks the smallest set and checks the others; bounded walks
    return short pages with a cursor, and the pages still add up to exactly the matches."""
    from redis.asyncio import Redis

    from app.delivery.store import DeliveryStore
    from app.operator import query

    acme = [await post(relay, n) for n in range(5)]
    beta = [await post(relay, 10 + n, "beta") for n in range(4)]
    board = await accept_from_board(relay, 30, connection="beta")
    monkeypatch.setattr(query, "INTERSECT_MAX", intersect_max)
    monkeypatch.setattr(query, "SCAN_MAX", scan_max)
    redis = Redis.from_url(relay.redis_url)
    store = DeliveryStore(redis)
    try:
        for params, expected in (
            ({"status": "queued", "connection": "beta"}, [board, *reversed(beta)]),
            ({"status": "queued", "channel": "api"}, [*reversed(beta), *reversed(acme)]),
            ({"connection": "beta", "channel": "api"}, list(reversed(beta))),
            ({"status": "failed", "channel": "api"}, []),
        ):
            f = query.build_filter(params)
            seen: list[str] = []
            cursor = None
            for _ in range(50):
                page = await query.find(store, f, limit=2, cursor=cursor)
                seen += [d.id for d in page.deliveries]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == expected, params
    finally:
        await redis.aclose()


async def test_unindex_takes_a_delivery_out_of_every_list(relay: Relay) -> None:
    from redis.asyncio import Redis

    from app.delivery.store import DeliveryStore, secondary_index_keys

    board = await accept_from_board(relay, 1, board_application_id="IND-9")
    redis = Redis.from_url(relay.redis_url)
    try:
        store = DeliveryStore(redis)
        delivery = await store.get(board)
        assert delivery is not None
        await store.unindex(delivery)
        for key in secondary_index_keys(delivery):
            assert await redis.zscore(key, board) is None, key
    finally:
        await redis.aclose()
    for params in ({}, {"status": "queued"}, {"connection": "acme"}, {"channel": "indeed"}, {"q": "IND-9"}):
        assert board not in await ids_of(relay, **params)
