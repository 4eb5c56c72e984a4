"""Standard Webhooks: the canonical JSON signed with webhook-id/-timestamp/-signature; rotation,
±5 min, every verification failure a 401 (never a 500), webhook-id as the idempotency key."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.support.builders import PDF_BYTES, b64
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.inbound import (
    EXE,
    WEBHOOK_SECRET,
    WEBHOOK_SECRET_NEW,
    answers_of,
    assert_nothing_stored,
    inbound_connection,
    inbound_env,
    stored,
    webhook_headers,
)


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator, monkeypatch: pytest.MonkeyPatch) -> Relay:
    inbound_env(monkeypatch)
    monkeypatch.setenv("TEST_BROKEN_WEBHOOK_SECRET", "whsec_***not base64***")
    return make_relay(
        {
            "acme": inbound_connection(factorial.url),
            "nosecret": inbound_connection(factorial.url, webhook_secret_env="TEST_UNSET_WEBHOOK"),
            "broken": inbound_connection(factorial.url, webhook_secret_env="TEST_BROKEN_WEBHOOK_SECRET"),
            "small": inbound_connection(factorial.url, webhook_max_body_bytes=20_000, max_file_bytes=1_000),
        }
    )


def canonical(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "candidate": {"first_name": "Łukasz", "last_name": "Żółć", "email_address": "lukasz@example.org"},
        "application": {"job_id": "2001"},
        "screening_question_answers": [
            {"question_id": "3002", "answer": "60000"},
            {"question_id": "3001", "answer": "A referral."},  # 2001's mandatory questions
            {"question_id": "3003", "answer": "Yes"},
        ],
        "attachments": [{"name": "Łukasz CV.pdf", "type": "CV", "data": b64(PDF_BYTES)}],
        "source": {"name": "Referral"},
    }
    body.update(overrides)
    return body


def encode(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


async def send(relay: Relay, body: bytes, headers: dict[str, str], connection: str = "acme") -> Any:
    return await relay.client.post(f"/inbound/webhooks/{connection}", content=body, headers=headers)


def test_signing_matches_the_research_vector() -> None:
    body = '{"type":"application.received","timestamp":"2023-11-14T22:13:20Z","data":{"id":"app_1"}}'
    when = dt.datetime.fromtimestamp(1700000000, tz=dt.UTC)
    assert (
        Webhook(WEBHOOK_SECRET).sign("msg_demo_0001", when, body) == "v1,ZXOEssuzFiofeMEOqme72sppIIEpRCPyIVfQnng2WXM="
    )


async def test_signed_canonical_json_arrives_in_factorial(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    body = encode(canonical())
    response = await send(relay, body, webhook_headers(body, msg_id="msg_e2e"))
    assert response.status_code == 202, response.text
    delivery = await relay.wait_for(response.json()["id"], "delivered")
    records = factorial.records()
    [candidate] = records["candidates"]
    assert (candidate["first_name"], candidate["last_name"]) == ("Łukasz", "Żółć")
    assert records["applications"][0]["source_id"] == "4004"
    assert [f["filename"] for f in records["files"]] == ["Łukasz CV.pdf"]
    assert delivery["channel"] == "webhook" and delivery["board_application_id"] == "msg_e2e"


async def test_rotation_several_signatures_and_the_envelope(relay: Relay) -> None:
    body = encode(canonical())
    headers = webhook_headers(body, msg_id="msg_new", secret=WEBHOOK_SECRET_NEW)  # the second configured secret
    assert (await send(relay, body, headers)).status_code == 202
    other = Webhook("whsec_" + b64(b"a secret nobody configured here!")).sign(
        "msg_multi", dt.datetime.now(tz=dt.UTC), body.decode()
    )
    headers = webhook_headers(body, msg_id="msg_multi")
    headers["webhook-signature"] = f"v1a,ignored-asymmetric {other} {headers['webhook-signature']}"
    assert (await send(relay, body, headers)).status_code == 202
    envelope = encode(
        {"type": "application.created", "timestamp": "2026-11-23T12:00:00Z", "data": canonical(connection_id="acme")}
    )
    response = await send(relay, envelope, webhook_headers(envelope, msg_id="msg_env"))
    assert response.status_code == 202, response.text
    assert answers_of(await stored(relay, response.json()["id"]))["3002"] == "60000"


async def test_a_delayed_delivery_within_five_minutes_is_accepted(relay: Relay) -> None:
    body = encode(canonical())
    now = dt.datetime.now(tz=dt.UTC)
    for i, skew in enumerate((-270, 270)):
        headers = webhook_headers(body, msg_id=f"msg_skew_{i}", at=now + dt.timedelta(seconds=skew))
        assert (await send(relay, body, headers)).status_code == 202


async def test_webhook_id_is_the_idempotency_key(relay: Relay) -> None:
    body = encode(canonical())
    first = await send(relay, body, webhook_headers(body, msg_id="msg_same"))
    again = await send(relay, body, webhook_headers(body, msg_id="msg_same"))  # a redelivery, new timestamp
    assert first.status_code == again.status_code == 202
    assert again.json() == {**first.json(), "duplicate": True}
    assert await relay.queued_jobs() == 1


def _bad_headers(body: bytes) -> list[tuple[str, dict[str, str]]]:
    good = webhook_headers(body, msg_id="msg_bad")
    now = dt.datetime.now(tz=dt.UTC)
    cases = [
        (f"no {name}", {k: v for k, v in good.items() if k != name})
        for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
    ]
    # Headers carry whole seconds and the server checks a moment later: 30 s clear of the ±5 min edge.
    cases += [
        ("old", webhook_headers(body, msg_id="msg_bad", at=now - dt.timedelta(seconds=330))),
        ("future", webhook_headers(body, msg_id="msg_bad", at=now + dt.timedelta(seconds=330))),
        ("wrong secret", webhook_headers(body, msg_id="msg_bad", secret="whsec_" + b64(b"x" * 32))),
        ("other id", {**good, "webhook-id": "msg_other"}),
        ("no comma", {**good, "webhook-signature": "garbage"}),
        ("two commas", {**good, "webhook-signature": "v1,a,b"}),
        ("bad base64", {**good, "webhook-signature": "v1,!!!!"}),
        ("text timestamp", {**good, "webhook-timestamp": "yesterday"}),
        ("huge timestamp", {**good, "webhook-timestamp": "9" * 400}),
        ("v1a only", {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v1a,")}),
    ]
    return cases


async def test_every_verification_failure_is_a_401(relay: Relay) -> None:
    body = encode(canonical())
    for name, headers in _bad_headers(body):
        response = await send(relay, body, headers)
        assert response.status_code == 401, (name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), name
    tampered = body.replace(b"lukasz@", b"mallory@")
    assert (await send(relay, tampered, webhook_headers(body, msg_id="msg_t"))).status_code == 401
    not_utf8 = b'{"candidate": "\xff\xfe"}'
    headers = webhook_headers(b"{}", msg_id="msg_u")
    assert (await send(relay, not_utf8, headers)).status_code == 401
    await assert_nothing_stored(relay)


async def test_unconfigured_or_broken_secret_is_a_404(relay: Relay) -> None:
    body = encode(canonical())
    for connection in ("nosecret", "broken", "nobody"):
        assert (await send(relay, body, webhook_headers(body), connection)).status_code == 404
        assert (await send(relay, body, {}, connection)).status_code == 404
    await assert_nothing_stored(relay)


@pytest.mark.parametrize(
    ("document", "status", "field"),
    [
        (canonical(connection_id="another"), 422, "connection_id"),
        (
            canonical(candidate={"first_name": "A", "last_name": "B", "email_address": "nope"}),
            422,
            "candidate.email_address",
        ),
        (canonical(attachments=[{"name": "cv.pdf", "type": "CV", "data": b64(EXE)}]), 422, "attachments[0]"),
        ([1, 2, 3], 422, "$"),
    ],
    ids=["other connection", "bad email", "executable", "not an object"],
)
async def test_signed_but_invalid_is_refused_with_the_field(
    relay: Relay, document: Any, status: int, field: str
) -> None:
    body = encode(document)
    response = await send(relay, body, webhook_headers(body, msg_id="msg_invalid"))
    assert response.status_code == status, response.text
    assert any(e["field"] == field for e in response.json()["errors"]), response.json()
    await assert_nothing_stored(relay)


async def test_signed_malformed_json_is_a_400(relay: Relay) -> None:
    body = b'{"candidate": '
    assert (await send(relay, body, webhook_headers(body))).status_code == 400
    await assert_nothing_stored(relay)


async def test_too_large_is_a_413(relay: Relay) -> None:
    body = encode(canonical(connection_id="small"))  # the CV alone is over the 1 kB file limit
    response = await send(relay, body, webhook_headers(body, msg_id="msg_file"), "small")
    assert response.status_code == 413 and response.json()["errors"][0]["field"] == "attachments[0].data"
    big = encode(
        canonical(connection_id="small", attachments=[{"name": "cv.pdf", "type": "CV", "data": b64(PDF_BYTES * 10)}])
    )
    response = await send(relay, big, webhook_headers(big, msg_id="msg_body"), "small")
    assert response.status_code == 413  # over the route's body limit, refused before parsing
    await assert_nothing_stored(relay)
