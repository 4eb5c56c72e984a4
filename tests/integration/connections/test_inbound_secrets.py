"""Inbound secrets of a connection made at runtime (docs/connections.md, "Inbound secrets"): each
inbound route takes its sealed secret and refuses others; a rotation keeps the old one valid for
its grace only; a revocation made in another process is refused by the web within its reload; the
status callback is signed with the newest; no value in Redis, the listing or the logs."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, post
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from app.connections.inbound_secrets import InboundSecrets
from app.connections.service import NewConnection
from app.core.problems import Problem
from app.log import configure
from app.runtime import Runtime
from app.tracking import callbacks, poll
from connectors.sandbox.common import BackgroundServer
from tests.support.boards import hellowork_payload, post_hellowork
from tests.support.builders import PDF_BYTES, b64, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.inbound import indeed_payload, post_indeed, webhook_headers
from tests.support.privacy import aof_bytes, dump


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def token() -> str:
    return secrets.token_urlsafe(24)


async def create(relay: Relay, factorial: Emulator, conn_id: str, inbound: dict[str, str], **settings: Any) -> None:
    """Made in another process's runtime (through the service), then awaited in the web's registry."""
    maker = Runtime(relay.settings)
    try:
        new = NewConnection(
            id=conn_id,
            connector="factorial",
            base_url=factorial.url,
            credentials={"api_key": "sandbox"},
            settings=settings,
            inbound_secrets=inbound,  # type: ignore[arg-type]  # the kinds, as the API decodes them
        )
        await maker.connections.create(new, "admin")
    finally:
        await maker.close()
    deadline = time.monotonic() + 5
    while conn_id not in relay.web_runtime.registry:
        assert time.monotonic() < deadline, "the web never loaded the connection"
        await asyncio.sleep(0.05)


async def revoke_elsewhere(relay: Relay, conn_id: str, kind: str, secret_id: str) -> None:
    """A revocation made by another process: the web learns it from the version counter."""
    other = Runtime(relay.settings)
    try:
        await other.registry.refresh(force=True)
        await InboundSecrets(other.connection_store, other.registry).revoke(conn_id, kind, secret_id, "admin")
    finally:
        await other.close()


# -- one sender per inbound route: the status it answers for a secret ----------------------------

Send = Callable[[Relay, str, str, int], Awaitable[int]]


async def send_indeed(relay: Relay, conn_id: str, secret: str, n: int) -> int:
    payload = indeed_payload(id=f"{n:064x}")
    return (await post_indeed(relay, payload, secret=secret, connection=conn_id)).status_code


def canonical(n: int) -> bytes:
    document = {
        "candidate": {"first_name": "Łukasz", "last_name": f"Żółć{n}", "email_address": f"lukasz{n}@example.org"},
        "application": {"job_id": "2001"},
        "screening_question_answers": [
            {"question_id": "3002", "answer": "60000"},
            {"question_id": "3001", "answer": "A referral."},
            {"question_id": "3003", "answer": "Yes"},
        ],
        "attachments": [{"name": "CV.pdf", "type": "CV", "data": b64(PDF_BYTES)}],
    }
    return json.dumps(document, ensure_ascii=False).encode()


async def send_webhook(relay: Relay, conn_id: str, secret: str, n: int) -> int:
    body = canonical(n)
    headers = webhook_headers(body, msg_id=f"msg_{n:04d}", secret=secret)
    return (await relay.client.post(f"/inbound/webhooks/{conn_id}", content=body, headers=headers)).status_code


async def send_form(relay: Relay, conn_id: str, secret: str, n: int) -> int:
    data = {
        "first_name": "Zoë",
        "last_name": f"Berg{n}",
        "email": f"zoe{n}@example.org",
        "question_3001": "Because forms should never lose a CV.",
        "question_3003": "Yes",
    }
    files = [("resume", ("CV.pdf", PDF_BYTES, "application/pdf"))]
    headers = {"accept": "application/json", "x-form-token": secret}
    response = await relay.client.post(f"/inbound/forms/{conn_id}/2001", data=data, files=files, headers=headers)
    return response.status_code


async def send_hellowork(relay: Relay, conn_id: str, secret: str, n: int) -> int:
    return (await post_hellowork(relay, hellowork_payload(f"hw-{n}"), connection=conn_id, key=secret)).status_code


ROUTES: dict[str, tuple[Send, Callable[[], str], dict[str, Any]]] = {
    "indeed": (send_indeed, token, {"indeed_questions": {"q_portfolio": "3005"}}),
    "webhook": (send_webhook, whsec, {}),
    "form": (send_form, token, {"form_rate_limit": 0}),
    "hellowork": (send_hellowork, token, {}),
}


@pytest.mark.parametrize("kind", list(ROUTES))
async def test_each_route_takes_its_runtime_secret_rotated_with_grace_then_revoked(
    make_relay: Any, factorial: Emulator, kind: str
) -> None:
    send, new_secret, settings = ROUTES[kind]
    relay = make_relay({})
    old = new_secret()
    await create(relay, factorial, f"rt-{kind}", {kind: old}, **settings)
    conn = f"rt-{kind}"
    assert await send(relay, conn, old, 1) == 202
    assert await send(relay, conn, new_secret(), 2) == 401

    new = new_secret()
    rotated = await relay.client.post(
        f"/v1/connections/{conn}/secrets/{kind}", json={"value": new, "grace_s": 1}, headers=relay.admin
    )
    assert rotated.status_code == 201, rotated.text
    assert "value" not in rotated.json()  # sent, not generated: never echoed
    [replaced] = rotated.json()["replaced"]
    assert replaced["expires_at"] is not None
    assert await send(relay, conn, old, 3) == 202  # the grace: both are taken
    assert await send(relay, conn, new, 4) == 202

    await asyncio.sleep(max(0.0, replaced["expires_at"] - time.time()) + 0.1)
    assert await send(relay, conn, old, 5) == 401  # past expires_at, refused before any prune
    assert await send(relay, conn, new, 6) == 202

    await revoke_elsewhere(relay, conn, kind, rotated.json()["id"])
    revoked_at, n = time.monotonic(), 7
    while (status := await send(relay, conn, new, n)) == 202:
        assert time.monotonic() - revoked_at < 2.5, "still accepted after the registry's reload"
        await asyncio.sleep(0.1)
        n += 1
    assert status == 404  # no secret of that kind left: the route is not configured


async def test_the_api_lists_without_values_generates_validates_and_audits(
    make_relay: Any, factorial: Emulator
) -> None:
    relay = make_relay({"filed": connection_table("factorial", factorial.url)})
    first = whsec()
    await create(relay, factorial, "rt-api", {"webhook": first})
    base = "/v1/connections/rt-api/secrets"
    stream = io.StringIO()
    configure("INFO", stream=stream)  # the web's log lines, as a deployment writes them
    try:
        generated = await relay.client.post(f"{base}/webhook", headers=relay.admin)  # no body: generated
        token_made = await relay.client.post(f"{base}/form", json={}, headers=relay.admin)
    finally:
        configure("WARNING")
    assert generated.status_code == 201, generated.text
    value = generated.json()["value"]
    assert value.startswith("whsec_") and len(base64.b64decode(value[6:])) == 24
    assert generated.headers["cache-control"] == "no-store"
    form_value = token_made.json()["value"]
    assert len(form_value) >= 32 and form_value.replace("-", "").replace("_", "").isalnum()
    logged = [json.loads(line) for line in stream.getvalue().splitlines()]
    added = [e for e in logged if e["event"] == "connection.inbound_secret_added"]
    assert [(e["kind"], e["secret_id"]) for e in added] == [
        ("webhook", generated.json()["id"]),
        ("form", token_made.json()["id"]),
    ]
    assert value not in stream.getvalue() and form_value not in stream.getvalue()  # by id, never the value

    listed = await relay.client.get(base, headers=relay.admin)
    assert listed.status_code == 200
    kinds = listed.json()["kinds"]
    assert set(kinds) == {"indeed", "webhook", "form", "hellowork", "status_callback"}
    assert [s["id"] for s in kinds["webhook"]] == [generated.json()["id"], "webhook_1"]  # newest first
    assert kinds["webhook"][0]["expires_at"] is None and kinds["webhook"][1]["expires_at"] > time.time()
    assert len(kinds["form"]) == 1 and kinds["indeed"] == []
    for secret in (first, value, form_value):
        assert secret not in listed.text

    async def refused(method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> dict[str, Any]:
        response = await relay.client.request(method, path, headers={**relay.admin, **(headers or {})}, **kw)
        assert response.headers["content-type"].startswith("application/problem+json"), response.text
        return {"status": response.status_code, **response.json()}

    bad = await refused("POST", f"{base}/webhook", json={"value": "not-a-whsec-secret"})
    assert (bad["status"], bad["errors"][0]["field"], bad["code"]) == (422, "value", "PLATFORM.INPUT_INVALID")
    assert "not-a-whsec" not in json.dumps(bad)
    short = await refused("POST", f"{base}/hellowork", json={"value": "short"})
    assert (short["status"], short["errors"][0]["field"]) == (422, "value")
    spaced = await refused("POST", f"{base}/form", json={"value": "a token with spaces in it"})
    assert (spaced["status"], spaced["errors"][0]["field"]) == (422, "value")
    grace = await refused("POST", f"{base}/form", json={"grace_s": -1})
    assert (grace["status"], grace["errors"][0]["field"]) == (422, "grace_s")
    extra = await refused("POST", f"{base}/form", json={"secret": "x"})
    assert (extra["status"], extra["errors"][0]["field"]) == (422, "secret")
    garbled = await refused("POST", f"{base}/form", content=b"{", headers={"content-type": "application/json"})
    assert garbled["status"] == 400
    kind = await refused("POST", f"{base}/nope", json={})
    assert (kind["status"], kind["code"], kind["errors"][0]["field"]) == (404, "PLATFORM.NOT_FOUND", "kind")
    twice = await refused("POST", f"{base}/webhook", json={"value": value})
    assert (twice["status"], twice["code"]) == (409, "PLATFORM.CONFLICT")
    unknown = await refused("GET", "/v1/connections/nobody/secrets")
    assert (unknown["status"], unknown["code"]) == (404, "PLATFORM.NOT_FOUND")
    filed = await refused("POST", "/v1/connections/filed/secrets/webhook", json={})
    assert (filed["status"], filed["code"]) == (409, "PLATFORM.CONFLICT") and "environment" in filed["detail"]
    assert (await refused("GET", "/v1/connections/filed/secrets"))["status"] == 409
    gone = await refused("DELETE", f"{base}/webhook/webhook_nope")
    assert (gone["status"], gone["errors"][0]["field"]) == (404, "secret_id")
    anonymous = await relay.client.get(base)
    assert anonymous.status_code == 401

    revoked = await relay.client.delete(f"{base}/webhook/webhook_1", headers=relay.admin)
    assert revoked.status_code == 204
    after = (await relay.client.get(base, headers=relay.admin)).json()["kinds"]
    assert [s["id"] for s in after["webhook"]] == [generated.json()["id"]]

    entries = [json.loads(fields[b"e"]) for _, fields in await relay.redis.xrange("ar:audit")]
    actions = [(e["action"], e["target"]) for e in entries]
    assert ("add_inbound_secret", "rt-api") in actions and ("revoke_inbound_secret", "rt-api") in actions
    assert ("view_inbound_secrets", "rt-api") in actions
    audit_text = json.dumps(entries)
    for secret in (first, value, form_value):
        assert secret not in audit_text

    raw = await dump(relay.redis)
    assert b"ar:conn:s:rt-api" in raw
    for secret in (first, value, form_value):
        assert secret.encode() not in raw  # sealed: a dump of Redis holds none of them
    aof = await aof_bytes(relay.redis)
    assert aof is not None or os.environ.get("REDIS_URL")  # the session's embedded Redis keeps an AOF
    if aof is not None:
        await asyncio.sleep(1.1)  # appendfsync everysec
        aof = await aof_bytes(relay.redis)
        assert aof is not None and b"ar:conn:s:rt-api" in aof  # the file is the right one
        for secret in (first, value, form_value):
            assert secret.encode() not in aof


async def test_concurrent_rotations_lose_none(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({})
    await create(relay, factorial, "rt-many", {"form": token()})
    posts = [
        relay.client.post("/v1/connections/rt-many/secrets/form", json={"grace_s": 600}, headers=relay.admin)
        for _ in range(6)
    ]
    answers = await asyncio.gather(*posts)
    assert [a.status_code for a in answers] == [201] * 6
    listed = (await relay.client.get("/v1/connections/rt-many/secrets", headers=relay.admin)).json()
    ids = {s["id"] for s in listed["kinds"]["form"]}
    assert ids == {a.json()["id"] for a in answers} | {"form_1"}  # each write saw the one before
    for answer in answers:  # and every one of them opens the form route
        assert await send_form(relay, "rt-many", answer.json()["value"], 0) == 202


async def test_grace_zero_replaces_at_once_and_the_last_signing_secret_cannot_go(
    make_relay: Any, factorial: Emulator, receiver: Receiver
) -> None:
    relay = make_relay({})
    old = token()
    await create(relay, factorial, "rt-now", {"indeed": old}, indeed_questions={"q_portfolio": "3005"})
    new = token()
    rotated = await relay.client.post(
        "/v1/connections/rt-now/secrets/indeed", json={"value": new, "grace_s": 0}, headers=relay.admin
    )
    assert rotated.status_code == 201
    assert await send_indeed(relay, "rt-now", old, 1) == 401
    assert await send_indeed(relay, "rt-now", new, 2) == 202
    listed = (await relay.client.get("/v1/connections/rt-now/secrets", headers=relay.admin)).json()
    assert [s["id"] for s in listed["kinds"]["indeed"]] == [rotated.json()["id"]]

    signing = whsec()
    allow = {"fetch_allow_hosts": [f"127.0.0.1:{receiver.server.port}"], "fetch_allow_http": True}
    await create(relay, factorial, "rt-cb", {"status_callback": signing}, status_callback_url=receiver.url, **allow)
    last = await relay.client.delete(
        "/v1/connections/rt-cb/secrets/status_callback/status_callback_1", headers=relay.admin
    )
    assert last.status_code == 409 and last.json()["code"] == "PLATFORM.CONFLICT"
    assert "status_callback" in last.json()["detail"]
    newer = await relay.client.post("/v1/connections/rt-cb/secrets/status_callback", headers=relay.admin)
    assert newer.status_code == 201
    newest = await relay.client.delete(
        f"/v1/connections/rt-cb/secrets/status_callback/{newer.json()['id']}", headers=relay.admin
    )
    assert newest.status_code == 409  # the one left is in its grace: it would sign, then expire
    old_one = await relay.client.delete(
        "/v1/connections/rt-cb/secrets/status_callback/status_callback_1", headers=relay.admin
    )
    assert old_one.status_code == 204  # the newest keeps signing


# -- the status callback ---------------------------------------------------------------------------


class Receiver:
    """The board's endpoint for status callbacks: records each one."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []

        @post("/hooks/status", status_code=200)
        async def hook(request: Request[Any, Any, Any]) -> Response[Any]:
            self.received.append((dict(request.headers), await request.body()))
            return Response({"ok": True})

        self.server = BackgroundServer(Litestar([hook], logging_config=None)).start()
        self.url = f"{self.server.url}/hooks/status"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.stop()


def signed_by(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
    except WebhookVerificationError:
        return False
    return True


async def test_the_status_callback_is_signed_with_the_newest_secret(
    make_relay: Any, factorial: Emulator, receiver: Receiver
) -> None:
    relay = make_relay({})
    await relay.start_worker()
    old = whsec()
    allow = {"fetch_allow_hosts": [f"127.0.0.1:{receiver.server.port}"], "fetch_allow_http": True}
    await create(relay, factorial, "rt-sync", {"status_callback": old}, status_callback_url=receiver.url, **allow)
    body = {
        "connection_id": "rt-sync",
        "application": {"job_id": "2001"},
        "candidate": {"first_name": "Noor", "last_name": "Test", "email_address": "noor@example.org"},
    }
    delivery_id = (await relay.post(body)).json()["id"]
    record = await relay.wait_for(delivery_id, "delivered")
    application_id = record["checkpoints"]["application"]

    tracker = Runtime(relay.settings)  # the worker side that polls the ATS and calls back
    try:
        await tracker.registry.refresh(force=True)
        await poll.sync_once(tracker)
        assert await callbacks.dispatch_due(tracker.redis, tracker.config, tracker.http) == {"sent": 1}
        headers, sent = receiver.received[-1]
        assert signed_by(old, headers, sent)

        rotated = await relay.client.post("/v1/connections/rt-sync/secrets/status_callback", headers=relay.admin)
        assert rotated.status_code == 201, rotated.text
        newest = rotated.json()["value"]
        deadline = time.monotonic() + 5
        while not await tracker.registry.refresh():  # the version moved: this process reloads
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)

        async with httpx.AsyncClient(
            base_url=f"{factorial.url}/api/2026-07-01/resources/", headers={"x-api-key": "sandbox"}
        ) as ats:
            moved = await ats.put(f"ats/applications/{application_id}", json={"id": application_id, "qualified": False})
            moved.raise_for_status()
        later = time.time() + tracker.settings.status_sync_interval_s + 1
        assert (await poll.sync_once(tracker, now=later)).callbacks == 1
        assert await callbacks.dispatch_due(tracker.redis, tracker.config, tracker.http, now=later) == {"sent": 1}
        headers, sent = receiver.received[-1]
        assert signed_by(newest, headers, sent)  # the newest signs, even while the old is in its grace
        assert not signed_by(old, headers, sent)
    finally:
        await tracker.close()


async def test_secrets_sent_at_creation_are_checked_alike(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({})
    maker = Runtime(relay.settings)
    try:
        new = NewConnection(
            id="rt-typo",
            connector="factorial",
            base_url=factorial.url,
            credentials={"api_key": "sandbox"},
            inbound_secrets={"webhook": "whsec_not*base64"},
        )
        with pytest.raises(Problem) as refused:
            await maker.connections.create(new, "admin")
    finally:
        await maker.close()
    assert refused.value.status == 422
    assert [e.field for e in refused.value.errors] == ["inbound_secrets.webhook"]
    assert "not*base64" not in str(refused.value)
    assert await relay.redis.exists("ar:conn:r:rt-typo") == 0
