"""Bad input gets a clear 4xx problem+json naming the field, and nothing is stored or enqueued."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from app.blobs.store import file_blob_name
from app.delivery.record import Delivery
from tests.support.builders import PDF_BYTES, b64, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay


def valid() -> dict[str, Any]:
    return {
        "connection_id": "acme",
        "candidate": {"first_name": "Ana", "last_name": "López", "email_address": "ana@example.org"},
        "application": {"job_id": "2001"},
        "attachments": [{"name": "cv.pdf", "type": "CV", "data": b64(PDF_BYTES)}],
    }


def mutate(path: str, value: Any) -> dict[str, Any]:
    body = valid()
    target: Any = body
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is KeyError:
        del target[last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value
    return body


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay(
        {"acme": connection_table("factorial", factorial.url, max_file_bytes=50_000, max_application_bytes=80_000)}
    )


async def assert_nothing_stored(relay: Relay) -> None:
    """Nothing of the application: the catalog's cache of the job (ar:cat:*) may be filled."""
    assert await relay.queued_jobs() == 0
    assert [k for k in await relay.redis.keys("ar:*") if not k.startswith(b"ar:cat")] == []


CASES = [
    ("wrong type", mutate("candidate.first_name", 42), 422, "candidate.first_name"),
    ("missing name", mutate("candidate.last_name", KeyError), 422, "candidate"),
    ("empty name", mutate("candidate.first_name", ""), 422, "candidate.first_name"),
    ("bad email", mutate("candidate.email_address", "ana@"), 422, "candidate.email_address"),
    ("bad gender", mutate("candidate.gender", "robot"), 422, "candidate.gender"),
    ("bad country", mutate("candidate.location", {"country": "Spain"}), 422, "candidate.location.country"),
    ("unknown field", mutate("candidate.nickname", "x"), 422, "candidate"),
    ("bad base64", mutate("attachments.0.data", "not base64 at all!"), 422, "attachments[0].data"),
    ("data and url", mutate("attachments.0.data_url", "https://files.example.org/cv.pdf"), 422, "attachments[0]"),
    ("bad type", mutate("attachments.0.type", "PHOTO"), 422, "attachments[0].type"),
    ("executable as pdf", mutate("attachments.0.data", b64(b"MZ\x90\x00" + b"\x00" * 100)), 422, "attachments[0]"),
    (
        "declared pdf is text",
        mutate(
            "attachments.0",
            {"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(b"just some text")},
        ),
        422,
        "attachments[0]",
    ),
    (
        "http data_url",
        mutate("attachments.0", {"name": "cv.pdf", "type": "CV", "data_url": "http://example.org/cv"}),
        422,
        "attachments[0].data_url",
    ),
    (
        "private data_url",
        mutate(
            "attachments.0", {"name": "cv.pdf", "type": "CV", "data_url": "https://169.254.169.254/latest/meta-data"}
        ),
        422,
        "attachments[0].data_url",
    ),
    (
        "loopback data_url",
        mutate("attachments.0", {"name": "cv.pdf", "type": "CV", "data_url": "https://127.0.0.1/x"}),
        422,
        "attachments[0].data_url",
    ),
    (
        "localhost data_url",
        mutate("attachments.0", {"name": "cv.pdf", "type": "CV", "data_url": "https://localhost/x"}),
        422,
        "attachments[0].data_url",
    ),
    ("file too large", mutate("attachments.0.data", b64(PDF_BYTES * 40)), 413, "attachments[0].data"),
    (
        "application too large",
        mutate("attachments", [{"name": f"{i}.pdf", "type": "OTHER", "data": b64(PDF_BYTES * 15)} for i in range(3)]),
        413,
        "attachments[2]",
    ),
    ("unknown connection", mutate("connection_id", "nope"), 404, "connection_id"),
    (
        "answer twice",
        mutate(
            "screening_question_answers",
            [{"question_id": "3001", "answer": "a"}, {"question_id": "3001", "answer": "b"}],
        ),
        422,
        "screening_question_answers[1].question_id",
    ),
]


@pytest.mark.parametrize(("name", "body", "status", "field"), CASES, ids=[c[0] for c in CASES])
async def test_bad_input_is_refused_with_the_field(relay: Relay, name: str, body: Any, status: int, field: str) -> None:
    response = await relay.post(body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == status and problem["title"]
    assert any(e["field"] == field for e in problem["errors"]), problem
    await assert_nothing_stored(relay)


SLOPPY_BASE64 = {
    "wrapped at 76 columns": "\r\n".join(b64(PDF_BYTES)[i : i + 76] for i in range(0, len(b64(PDF_BYTES)), 76)),
    "data URL": "data:application/pdf;base64," + b64(PDF_BYTES),
    "url-safe, unpadded": base64.urlsafe_b64encode(PDF_BYTES).decode().rstrip("="),
}


@pytest.mark.parametrize("form", list(SLOPPY_BASE64))
async def test_base64_as_boards_send_it_is_accepted_byte_exact(relay: Relay, form: str) -> None:
    """msgspec decodes clean base64 while parsing; what it refuses gets a lenient second pass."""
    body = valid()
    body["attachments"][0]["data"] = SLOPPY_BASE64[form]
    body["screening_question_answers"] = [
        {"question_id": "3005", "answer": {"name": "letter.pdf", "data": SLOPPY_BASE64[form]}},
        {"question_id": "3001", "answer": "Because."},  # 2001's mandatory questions
        {"question_id": "3003", "answer": "Yes"},
    ]
    response = await relay.post(body)
    assert response.status_code == 202, response.text
    delivery_id = response.json()["id"]
    assert await relay.store.load_file(delivery_id, 0) == PDF_BYTES
    assert await relay.store.load_file(delivery_id, 1) == PDF_BYTES


async def test_bad_base64_in_a_file_answer_names_the_answer(relay: Relay) -> None:
    body = mutate("screening_question_answers", [{"question_id": "3005", "answer": {"name": "a.pdf", "data": "%%%"}}])
    response = await relay.post(body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "screening_question_answers[0].answer.data"
    await assert_nothing_stored(relay)


async def test_malformed_json_is_a_400(relay: Relay) -> None:
    for raw in (b"{not json", b"", b"[]", b'{"connection_id": "acme",'):
        response = await relay.post(None, raw=raw)
        assert response.status_code in (400, 422), raw
        assert response.headers["content-type"].startswith("application/problem+json")
    await assert_nothing_stored(relay)


async def test_oversized_body_is_a_413(relay: Relay) -> None:
    huge = json.dumps(valid()).encode()[:-1] + b', "x": "' + b"a" * 2_000_000 + b'"}'
    response = await relay.post(None, raw=huge)
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    await assert_nothing_stored(relay)


async def test_no_token_no_intake_and_no_admin_api(relay: Relay) -> None:
    response = await relay.client.post("/v1/applications", json=valid())
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    response = await relay.client.post("/v1/applications", json=valid(), headers={"authorization": "Bearer nope"})
    assert response.status_code == 401
    assert (await relay.client.get("/v1/deliveries/x")).status_code == 401
    assert (await relay.client.post("/v1/deliveries/x/retry")).status_code == 401
    await assert_nothing_stored(relay)


async def test_bad_idempotency_key_is_refused(relay: Relay) -> None:
    response = await relay.post(valid(), key="x" * 300)
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "Idempotency-Key", "message": "1 to 255 printable ASCII characters"}]
    twice = [("authorization", relay.admin["authorization"]), ("idempotency-key", "a"), ("idempotency-key", "b")]
    response = await relay.client.post("/v1/applications", json=valid(), headers=twice)
    assert response.status_code == 400 and response.json()["code"] == "PLATFORM.INPUT_INVALID", response.text
    assert response.json()["errors"][0]["message"] == "sent more than once"  # which one would name it?
    await assert_nothing_stored(relay)


async def test_health(relay: Relay) -> None:
    assert (await relay.client.get("/health")).json() == {"status": "ok"}
    assert (await relay.client.get("/ready")).status_code == 503  # no worker heartbeat yet
    await relay.start_worker()
    for _ in range(200):
        if (await relay.client.get("/ready")).status_code == 200:
            break
        await asyncio.sleep(0.05)
    assert (await relay.client.get("/ready")).status_code == 200


async def test_an_accepted_application_costs_one_redis_round_trip(relay: Relay) -> None:
    """Claim, store, index, enqueue and the erasure-tombstone check are one script (bench P1)."""
    first = valid()
    assert (await relay.post(first)).status_code == 202  # loads the pseudonym key, once per process
    await relay.redis.config_resetstat()
    second = mutate("candidate.email_address", "luis@example.org")
    assert (await relay.post(second)).status_code == 202
    stats = await relay.redis.info("commandstats")  # counts the script's own commands too
    calls = {name.removeprefix("cmdstat_"): v["calls"] for name, v in stats.items()}
    # the CV is in its blob (noted pending around the write), no file key: the script alone
    assert calls["evalsha"] == 1 and "multi" not in calls, calls
    assert not {"script|exists", "script|load", "eval"} & calls.keys(), calls
    assert calls["exists"] == 1, calls  # the tombstone check, inside the script


async def test_a_repeat_leaves_no_file_behind_and_a_flushed_script_cache_is_reloaded(relay: Relay) -> None:
    """The CV is SET beside the intake script (not through it); a duplicate deletes it again in
    the same transaction, and after a Redis restart (no scripts) intake loads the script again."""
    first = await relay.post(valid(), key="same")
    await relay.redis.script_flush()
    again = await relay.post(valid(), key="same")
    assert first.status_code == again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert set(await relay.blobs_held()) == {file_blob_name(first.json()["id"], 0)}
    await relay.redis.script_flush()
    other = mutate("candidate.email_address", "eva@example.org")
    new = await relay.post(other, key="other")
    assert new.status_code == 202
    assert await relay.store.load_file(new.json()["id"], 0) == PDF_BYTES
    assert not await relay.redis.keys("ar:f:*") and await relay.redis.zcard("ar:blobs:pending") == 0


async def test_the_same_intake_transaction_sent_twice_keeps_its_files(relay: Relay) -> None:
    """redis-py sends a transaction again when its reply timed out: the second run finds its own
    id under the idempotency key and answers "created", instead of deleting the files as a duplicate's."""
    store = relay.store
    delivery = Delivery(
        id="dlv_replayed",
        connection_id="acme",
        connector="factorial",
        status="queued",
        created_at=1.0,
        updated_at=1.0,
        idempotency_key_hash="replayed",
        channel="api",
    )
    first = await store.create(delivery, b"payload", [PDF_BYTES], "replayed")
    again = await store.create(delivery, b"payload", [PDF_BYTES], "replayed")
    assert first.created and again.created and again.delivery_id == "dlv_replayed"
    assert await store.load_file("dlv_replayed", 0) == PDF_BYTES
    assert await store.sweep_orphans(older_than_s=-60) == 0  # its blob is the stored delivery's
    assert await store.load_file("dlv_replayed", 0) == PDF_BYTES


async def test_malformed_json_after_sloppy_base64_is_a_400_not_a_500(relay: Relay) -> None:
    """msgspec stops at the file it refuses; the lenient pass parses the rest and meets the error."""
    wrapped = json.dumps(valid())[:-1].replace(
        b64(PDF_BYTES), SLOPPY_BASE64["wrapped at 76 columns"].replace("\r\n", "\\r\\n")
    )
    for raw in (wrapped.encode(), wrapped.encode() + b"} trailing"):
        response = await relay.post(None, raw=raw)
        assert response.status_code == 400, response.text
        assert response.json()["title"] == "Malformed JSON"
    await assert_nothing_stored(relay)


async def test_an_attachment_action_takes_sloppy_base64_and_refuses_broken_json_with_a_400(relay: Relay) -> None:
    url = "/v1/connections/acme/applications/42/attachments"
    wrapped = SLOPPY_BASE64["wrapped at 76 columns"]
    body = {"attachment": {"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": wrapped}}
    accepted = await relay.client.post(url, json=body, headers=relay.admin)
    assert accepted.status_code == 202, accepted.text
    broken = json.dumps(body).encode()[:-1]
    refused = await relay.client.post(url, content=broken, headers={**relay.admin, "content-type": "application/json"})
    assert refused.status_code == 400 and refused.json()["title"] == "Malformed JSON", refused.text
