"""The connections API (docs/connections.md, "The connections API"): made over HTTP against a
live emulator and delivered to by a worker that was running before; a wrong key refused at once
per connector with the ATS's reason; no secret in any answer; credentials rotated; deletion
refused while deliveries are pending, then forced; the file's connections left alone."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from app.connections.service import NewConnection
from app.privacy import audit
from app.runtime import Runtime
from connectors.sandbox.flatchr import COMPANY_ID
from tests.support.builders import PDF_BYTES, application, b64, connection_table
from tests.support.connections import UNUSABLE_BASE_URLS, create, post_until_accepted
from tests.support.emulators import Emulator, EmulatorFactory

FACTORIAL_KEY = "fct-Kq81-live-secret"
FLATCHR_KEY = "flt-Zr55-live-secret"
FLATCHR_JOB = "Vq5r6pYxam9AmMvP"


def flatchr_application(connection_id: str, email: str) -> dict[str, Any]:
    return {
        "connection_id": connection_id,
        "candidate": {"first_name": "Jeanne", "last_name": "Martin", "email_address": email},
        "application": {"job_id": FLATCHR_JOB},
        "screening_question_answers": [
            {"question_id": "q7Hd2LmQx9aB3cTe", "answer": "L'équipe"},
            {"question_id": "q2Kp8ZrW4nYv6JsU", "answer": False},
        ],
        "attachments": [{"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(PDF_BYTES)}],
    }


def flatchr_connection(connection_id: str, flatchr: Emulator, **settings: Any) -> dict[str, Any]:
    """A Flatchr connection's create body, on the emulator's sandbox key."""
    return {
        "id": connection_id,
        "connector": "flatchr",
        "base_url": flatchr.url,
        "credentials": {"api_key": "sandbox"},
        "settings": settings,
    }


async def test_made_over_http_and_delivered_by_a_worker_running_before_it_with_no_secret_shown(
    make_relay: Any, emulator: EmulatorFactory
) -> None:
    factorial = emulator("factorial", api_key=FACTORIAL_KEY)
    relay = make_relay({})
    await relay.start_worker()  # running before the connection exists
    body = {
        "id": "acme-api",
        "connector": "factorial",
        "base_url": factorial.url,
        "credentials": {"api_key": FACTORIAL_KEY},
        "settings": {"concurrency": 3},
    }
    made = await create(relay, body)
    assert made.status_code == 201, made.text
    assert made.headers["location"] == "/v1/connections/acme-api"
    view = made.json()
    assert view["origin"] == "api" and view["connector"] == "factorial" and view["base_url"] == factorial.url
    assert view["settings"] == {"concurrency": 3} and view["concurrency"] == 3
    assert view["credentials"]["kind"] == "api_key" and view["credentials"]["set_at"] >= view["created_at"] > 0
    assert view["paused"] is False and view["counts"]["queued"] == 0

    delivery_id = await post_until_accepted(relay, application(connection_id="acme-api", attachments=[]))
    record = await relay.wait_for(delivery_id, "delivered")
    assert record["connection_id"] == "acme-api"
    assert [c["email"] for c in factorial.records()["candidates"]] == ["zoe.vdb@example.org"]

    one = await relay.client.get("/v1/connections/acme-api", headers=relay.admin)
    listed = await relay.client.get("/v1/connections", headers=relay.admin)
    assert one.status_code == listed.status_code == 200
    assert [c["id"] for c in listed.json()["data"]] == ["acme-api"] and one.json()["id"] == "acme-api"
    entries = await audit.read(relay.redis)
    assert [(e.action, e.target) for e in entries] == [("create_connection", "acme-api")]
    assert entries[0].actor == "admin" and entries[0].detail["connector"] == "factorial"
    for text in (made.text, one.text, listed.text, repr(entries)):
        assert FACTORIAL_KEY not in text


async def test_the_file_s_connections_are_listed_without_their_variables_and_cannot_be_changed(
    make_relay: Any, factorial: Emulator
) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    listed = (await relay.client.get("/v1/connections", headers=relay.admin)).json()["data"]
    assert [(c["id"], c["origin"], c["credentials"]) for c in listed] == [
        ("acme", "file", {"kind": "api_key", "set_at": None})
    ]
    assert "TEST_FACTORIAL_KEY" not in str(listed) and not any(k.endswith("_env") for k in listed[0]["settings"])
    changed = await relay.client.patch("/v1/connections/acme", json={"settings": {}}, headers=relay.admin)
    deleted = await relay.client.delete("/v1/connections/acme?force=true", headers=relay.admin)
    taken = await create(
        relay, {"id": "acme", "connector": "factorial", "base_url": factorial.url, "credentials": {"api_key": "x"}}
    )
    for response in (changed, deleted, taken):
        assert response.status_code == 409, response.text
        assert "file" in response.json()["detail"] and response.json()["code"] == "PLATFORM.CONFLICT"
    assert "acme" in relay.web_runtime.config.connections
    assert factorial.records()["candidates"] == []


@pytest.mark.parametrize(
    ("connector", "reason"),
    [
        ("factorial", "Unauthorized"),
        ("flatchr", "Invalid token"),
        ("otys", "invalid API key"),
        ("laura", "missing or invalid API token"),
    ],
)
async def test_a_wrong_key_is_refused_at_creation_with_the_ats_reason(
    make_relay: Any, emulator: EmulatorFactory, connector: str, reason: str
) -> None:
    served = emulator(connector)
    relay = make_relay({})
    credentials = {"token": "wrong-key"} if connector == "laura" else {"api_key": "wrong-key"}
    settings = {"company_id": COMPANY_ID} if connector == "flatchr" else {}
    body = {"id": f"{connector}-1", "connector": connector, "base_url": served.url, "settings": settings}
    refused = await create(relay, {**body, "credentials": credentials})
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["code"] == "INTEGRATION.AUTHENTICATION_INVALID"
    assert problem["errors"][0]["field"] == "credentials" and reason in problem["errors"][0]["message"]
    assert "wrong-key" not in refused.text
    assert await relay.redis.exists(f"ar:conn:r:{connector}-1") == 0
    right = {"token": "sandbox"} if connector == "laura" else {"api_key": "sandbox"}
    made = await create(relay, {**body, "credentials": right})
    assert made.status_code == 201, made.text
    assert made.json()["credentials"]["kind"] == ("token" if connector == "laura" else "api_key")


async def test_flatchr_refuses_a_key_for_another_company_at_creation(make_relay: Any, flatchr: Emulator) -> None:
    relay = make_relay({})
    body = flatchr_connection("fl", flatchr, company_id="AAAAAAAAAAAAAAAA")
    refused = await create(relay, body)
    assert refused.status_code == 422 and refused.json()["code"] == "INTEGRATION.AUTHENTICATION_INVALID"
    assert "not allowed to access this company" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"connector": "factorial", "credentials": {"api_key": "k"}}, "id", 422),
        ({"id": "a b", "connector": "factorial", "credentials": {"api_key": "k"}}, "id", 422),
        ({"id": "x", "connector": "nope", "credentials": {"api_key": "k"}}, "connector", 422),
        ({"id": "x", "connector": "factorial", "credentials": {"token": "k"}}, "credentials.token", 422),
        ({"id": "x", "connector": "flatchr", "credentials": {"api_key": ""}}, "credentials.api_key", 422),
        ({"id": "x", "connector": "factorial", "credentials": {"api_key": "k"}, "colour": 1}, "colour", 422),
        (
            {"id": "x", "connector": "factorial", "credentials": {"api_key": "k"}, "settings": {"concurrency": -1}},
            "settings.concurrency",
            422,
        ),
        (
            {"id": "x", "connector": "factorial", "credentials": {"api_key": "k"}, "settings": {"x_env": "A"}},
            "settings.x_env",
            422,
        ),
        (  # urlsplit raises on a bracketed host that is no IPv6 address: was a 500
            {
                "id": "x",
                "connector": "factorial",
                "credentials": {"api_key": "k"},
                "settings": {"apply": {"frame_ancestors": ["https://[zz]"]}},
            },
            "settings.apply.frame_ancestors",
            422,
        ),
    ],
)
async def test_a_bad_body_is_a_422_naming_the_field(
    make_relay: Any, factorial: Emulator, body: dict[str, Any], field: str, status: int
) -> None:
    relay = make_relay({})
    refused = await create(relay, {"base_url": factorial.url, **body})
    assert refused.status_code == status, refused.text
    assert refused.json()["errors"][0]["field"] == field, refused.json()
    assert refused.json()["code"] == "PLATFORM.INPUT_INVALID"
    malformed = await relay.client.post(
        "/v1/connections", content=b"{", headers={**relay.admin, "content-type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json()["errors"][0]["field"] == "$"


async def test_an_id_taken_is_a_409_and_the_routes_need_the_admin_scope(make_relay: Any, factorial: Emulator) -> None:
    from app.tokens import ApiToken

    relay = make_relay({}, extra_tokens=[ApiToken("viewer", "viewer-token", frozenset({"read"}))])
    body = {"id": "acme2", "connector": "factorial", "base_url": factorial.url, "credentials": {"api_key": "sandbox"}}
    assert (await create(relay, body)).status_code == 201
    again = await create(relay, body)
    assert again.status_code == 409 and again.json()["errors"] == [{"field": "id", "message": "taken"}]
    viewer = {"authorization": "Bearer viewer-token"}
    assert (await relay.client.get("/v1/connections/acme2", headers=viewer)).status_code == 200
    assert (await relay.client.post("/v1/connections", json=body, headers=viewer)).status_code == 403
    assert (await relay.client.patch("/v1/connections/acme2", json={}, headers=viewer)).status_code == 403
    assert (await relay.client.delete("/v1/connections/acme2", headers=viewer)).status_code == 403
    assert (await relay.client.get("/v1/connections/acme2")).status_code == 401
    assert (await relay.client.get("/v1/connections/nope", headers=relay.admin)).status_code == 404


async def test_rotated_credentials_are_checked_first_and_the_next_delivery_uses_them(
    make_relay: Any, flatchr: Emulator
) -> None:
    relay = make_relay({})
    await relay.start_worker()
    body = flatchr_connection("fl", flatchr, company_id=COMPANY_ID, require_cv=True)
    made = await create(relay, body)
    assert made.status_code == 201, made.text
    first = await post_until_accepted(relay, flatchr_application("fl", "one@example.fr"))
    await relay.wait_for(first, "delivered")

    flatchr.http.post("/_sandbox/flatchr/api-key", json={"api_key": FLATCHR_KEY}).raise_for_status()
    path = "/v1/connections/fl"
    stale = await relay.client.patch(path, json={"credentials": {"api_key": "sandbox"}}, headers=relay.admin)
    assert stale.status_code == 422 and stale.json()["code"] == "INTEGRATION.AUTHENTICATION_INVALID"
    rotated = await relay.client.patch(
        path,
        json={"credentials": {"api_key": FLATCHR_KEY}, "settings": {"concurrency": 2, "require_cv": None}},
        headers=relay.admin,
    )
    assert rotated.status_code == 200, rotated.text
    view = rotated.json()
    assert view["credentials"]["set_at"] > made.json()["credentials"]["set_at"]
    assert view["settings"] == {"company_id": COMPANY_ID, "concurrency": 2}  # merge patch: null removed a key
    assert FLATCHR_KEY not in rotated.text

    worker_registry = relay.worker_runtimes[0].registry
    deadline = time.monotonic() + 5
    while getattr(worker_registry.get("fl"), "credentials", None) != FLATCHR_KEY:  # the worker reloads within a second
        assert time.monotonic() < deadline, "the worker never saw the new key"
        await asyncio.sleep(0.1)
    second = await post_until_accepted(relay, flatchr_application("fl", "two@example.fr"))
    await relay.wait_for(second, "delivered")  # the emulator now takes only the new key
    assert sorted(c["email"] for c in flatchr.records()["candidates"]) == [
        "one@example.fr",
        "two@example.fr",
    ]
    bad = await relay.client.patch(path, json={"settings": {"concurrency": 0}}, headers=relay.admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "settings.concurrency"
    actions = [(e.action, e.detail.get("changed")) for e in await audit.read(relay.redis)]
    assert actions[:2] == [("update_connection", ["settings", "credentials"]), ("create_connection", None)]


async def test_credentials_the_ats_accepts_lift_the_pause_and_deliver_what_it_held(
    make_relay: Any, flatchr: Emulator
) -> None:
    """The key is rotated at the ATS: the worker's next write is refused and pauses the connection.
    A settings change leaves the pause; a PATCH of the new key (checked first) lifts it and the
    held delivery goes out, as a reconnect link would have done."""
    relay = make_relay({})
    await relay.start_worker()
    body = flatchr_connection("fp", flatchr, company_id=COMPANY_ID)
    assert (await create(relay, body)).status_code == 201
    flatchr.http.post("/_sandbox/flatchr/api-key", json={"api_key": FLATCHR_KEY}).raise_for_status()
    held = await post_until_accepted(relay, flatchr_application("fp", "held@example.fr"))
    await relay.wait_for(held, "paused")
    assert await relay.store.paused_reason("fp") is not None

    path = "/v1/connections/fp"
    tuned = await relay.client.patch(path, json={"settings": {"concurrency": 3}}, headers=relay.admin)
    assert tuned.status_code == 200 and tuned.json()["paused"] is True  # not a fix for refused credentials
    fixed = await relay.client.patch(path, json={"credentials": {"api_key": FLATCHR_KEY}}, headers=relay.admin)
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["paused"] is False
    await relay.wait_for(held, "delivered")
    assert [c["email"] for c in flatchr.records()["candidates"]] == ["held@example.fr"]
    entries = await audit.read(relay.redis, count=3)
    assert [e.action for e in entries] == ["update_connection", "resume_connection", "update_connection"]
    assert entries[0].detail["resumed_deliveries"] == 1 and entries[1].detail["via"] == "api-credentials"


async def test_delete_is_refused_while_deliveries_are_pending_then_forced_keeping_history(
    make_relay: Any, factorial: Emulator
) -> None:
    relay = make_relay({})
    await relay.start_worker()
    body = {"id": "gone", "connector": "factorial", "base_url": factorial.url, "credentials": {"api_key": "sandbox"}}
    assert (await create(relay, body)).status_code == 201
    delivered = await post_until_accepted(relay, application(connection_id="gone", attachments=[]))
    await relay.wait_for(delivered, "delivered")
    await relay.store.pause_connection("gone", "the ATS refused the credentials (HTTP 401)")
    pending = []
    for i in range(3):
        payload = application(connection_id="gone", attachments=[])
        payload["candidate"]["email_address"] = f"paused{i}@example.org"
        pending.append(await post_until_accepted(relay, payload))
        await relay.wait_for(pending[-1], "paused")

    refused = await relay.client.delete("/v1/connections/gone", headers=relay.admin)
    assert refused.status_code == 409, refused.text
    assert refused.json()["pending"] == {"queued": 0, "retry_scheduled": 0, "delivering": 0, "paused": 3}
    assert "force=true" in refused.json()["detail"] and refused.json()["code"] == "PLATFORM.CONFLICT"
    assert await relay.redis.exists("ar:conn:r:gone") == 1

    await relay.redis.zadd("ar:ix:cs:gone:queued", {"dlv_orphan": 1})  # an index entry without a record
    forced = await asyncio.wait_for(relay.client.delete("/v1/connections/gone?force=true", headers=relay.admin), 20)
    assert forced.status_code == 200, forced.text
    assert sorted(forced.json()["dead_lettered"]) == sorted(pending) and forced.json()["in_flight"] == []
    for delivery_id in pending:
        record = await relay.delivery(delivery_id)
        assert record["status"] == "failed"
        assert record["last_error"]["code"] == "PLATFORM.INTEGRATION_NOT_FOUND"
        assert "deleted through the API by admin" in record["last_error"]["message"]
    assert (await relay.delivery(delivered))["status"] == "delivered"  # its history stays
    left = sorted([k.decode() async for k in relay.redis.scan_iter(match="*gone*")])
    assert left and all(k.startswith("ar:ix:") for k in left), left  # only the deliveries' indexes
    assert (await relay.client.get("/v1/connections/gone", headers=relay.admin)).status_code == 404
    assert (await relay.client.delete("/v1/connections/gone", headers=relay.admin)).status_code == 404
    late = await relay.post({**application(connection_id="gone", attachments=[]), "source": {"name": "Late"}})
    assert late.status_code in (404, 422), late.text  # intake no longer knows it
    actions = [(e.action, e.detail.get("force")) for e in await audit.read(relay.redis, count=2)]
    assert actions == [("delete_connection", True), ("delete_connection", None)]
    bad = await relay.client.delete("/v1/connections/x?force=yes", headers=relay.admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "force"


async def test_delete_without_pending_deliveries_needs_no_force(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({})
    body = {"id": "idle", "connector": "factorial", "base_url": factorial.url, "credentials": {"api_key": "sandbox"}}
    assert (await create(relay, body)).status_code == 201
    deleted = await relay.client.delete("/v1/connections/idle", headers=relay.admin)
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert await relay.redis.sismember("ar:conn:ids", "idle") == 0
    assert "idle" not in relay.web_runtime.config.connections


async def test_a_new_base_url_is_checked_first_and_then_delivered_to(
    make_relay: Any, emulator: EmulatorFactory
) -> None:
    first, moved = emulator("factorial"), emulator("factorial", api_key="sandbox")  # two tenants, one key
    relay = make_relay({})
    await relay.start_worker()
    body = {"id": "mv", "connector": "factorial", "base_url": first.url, "credentials": {"api_key": "sandbox"}}
    assert (await create(relay, body)).status_code == 201
    path = "/v1/connections/mv"
    dead = "http://127.0.0.1:9"  # nothing listens: the check cannot be made
    unreachable = await relay.client.patch(path, json={"base_url": dead}, headers=relay.admin)
    assert unreachable.status_code == 503 and unreachable.json()["code"] == "REMOTE.SERVICE_UNAVAILABLE"
    assert (await relay.client.get(path, headers=relay.admin)).json()["base_url"] == first.url  # unchanged
    changed = await relay.client.patch(path, json={"base_url": moved.url}, headers=relay.admin)
    assert changed.status_code == 200 and changed.json()["base_url"] == moved.url
    deadline = time.monotonic() + 5
    while getattr(relay.worker_runtimes[0].registry.get("mv"), "base_url", None) != moved.url:
        assert time.monotonic() < deadline, "the worker never saw the new base URL"
        await asyncio.sleep(0.1)
    delivery_id = await post_until_accepted(relay, application(connection_id="mv", attachments=[]))
    await relay.wait_for(delivery_id, "delivered")
    assert len(moved.records()["candidates"]) == 1 and first.records()["candidates"] == []
    unknown_field = await relay.client.patch(path, json={"connector": "otys"}, headers=relay.admin)
    assert unknown_field.status_code == 422 and unknown_field.json()["errors"][0]["field"] == "connector"


async def test_a_connection_made_by_another_process_a_moment_ago_is_found_at_once(
    make_relay: Any, factorial: Emulator
) -> None:
    """The web's registry polls once a second; the API's routes look at the version first."""
    relay = make_relay({})
    maker = Runtime(relay.settings)  # another web process
    try:
        new = NewConnection(
            id="elsewhere", connector="factorial", base_url=factorial.url, credentials={"api_key": "sandbox"}
        )
        await maker.connections.create(new, "admin")
    finally:
        await maker.close()
    found = await relay.client.get("/v1/connections/elsewhere", headers=relay.admin)
    assert found.status_code == 200 and found.json()["origin"] == "api"
    changed = await relay.client.patch(
        "/v1/connections/elsewhere", json={"settings": {"concurrency": 4}}, headers=relay.admin
    )
    assert changed.status_code == 200 and changed.json()["concurrency"] == 4


@pytest.mark.parametrize(
    ("connector", "read"),
    [
        ("factorial", "GET /api/2026-07-01/resources/api_public/credentials"),
        ("flatchr", f"GET /company/{COMPANY_ID}/columns"),
        ("otys", "POST /jservice.php"),
        ("laura", "GET /api/v1.2/jobs"),
    ],
)
async def test_the_check_is_one_cheap_authenticated_read(
    make_relay: Any, emulator: EmulatorFactory, connector: str, read: str
) -> None:
    """Each connector's `verify_credentials`: the read its docs/connections.md row names, and only it."""
    served = emulator(connector)
    relay = make_relay({})
    credentials = {"token": "sandbox"} if connector == "laura" else {"api_key": "sandbox"}
    settings = {"company_id": COMPANY_ID} if connector == "flatchr" else {}
    body = {"id": "cheap", "connector": connector, "base_url": served.url, "settings": settings}
    made = await create(relay, {**body, "credentials": credentials})
    assert made.status_code == 201, made.text
    records = served.records()
    if connector == "otys":  # one login, and the session given back when the check's connector closes
        assert records["calls"] == {"loginByUid": 1, "logout": 1} and records["requests"] == {read: 2}
    else:
        assert records["requests"] == {read: 1}


async def test_a_forced_delete_lets_a_running_delivery_finish_its_run(make_relay: Any, factorial: Emulator) -> None:
    """The sweep takes each delivery's lease: one mid-run is not overwritten, it ends as its run does."""
    relay = make_relay({})
    await relay.start_worker()
    body = {"id": "busy", "connector": "factorial", "base_url": factorial.url, "credentials": {"api_key": "sandbox"}}
    assert (await create(relay, body)).status_code == 201
    factorial.faults(latency_ms=2500, path_regex="ats/candidates$")
    running = await post_until_accepted(relay, application(connection_id="busy", attachments=[]))
    await relay.wait_for(running, "delivering")
    forced = await relay.client.delete("/v1/connections/busy?force=true", headers=relay.admin)
    assert forced.status_code == 200, forced.text
    assert forced.json()["pending"]["delivering"] == 1 and forced.json()["dead_lettered"] == []
    assert (await relay.delivery(running))["status"] == "delivered"  # its run went through, untouched
    assert len(factorial.records()["candidates"]) == 1


async def test_empty_credentials_in_a_patch_are_refused_not_ignored(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({})
    body = {"id": "e", "connector": "factorial", "base_url": factorial.url, "credentials": {"api_key": "sandbox"}}
    assert (await create(relay, body)).status_code == 201
    for change in ({"credentials": {}}, {"credentials": {}, "settings": {"concurrency": 2}}):
        refused = await relay.client.patch("/v1/connections/e", json=change, headers=relay.admin)
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "credentials"
    assert (await relay.client.get("/v1/connections/e", headers=relay.admin)).json()["concurrency"] != 2


@pytest.mark.parametrize("base_url", list(UNUSABLE_BASE_URLS.values()), ids=list(UNUSABLE_BASE_URLS))
async def test_a_base_url_no_request_can_be_sent_to_is_a_422_before_the_ats_is_asked(
    make_relay: Any, factorial: Emulator, base_url: str
) -> None:
    relay = make_relay({})
    body = {"id": "bad-url", "connector": "factorial", "credentials": {"api_key": "sandbox"}}
    refused = await create(relay, {**body, "base_url": base_url.format(ats=factorial.url)})
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in refused.json()["errors"]] == ["base_url"], refused.json()
    assert refused.json()["code"] == "PLATFORM.INPUT_INVALID"
    assert [k async for k in relay.redis.scan_iter("ar:conn:*") if k != b"ar:conn:version"] == []
    assert (await relay.client.get("/v1/connections", headers=relay.admin)).json()["data"] == []
    assert not factorial.records().get("requests")  # the credentials were not sent anywhere
