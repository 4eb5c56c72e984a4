"""Encryption at rest: nothing a candidate wrote is readable in Redis (keys, values, arq's job
records, the AOF on disk) and rotation keeps every record readable."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from app.cli.keys import rotate
from app.config import ConfigError
from app.delivery.store import DeliveryStore
from app.privacy import crypto
from app.privacy.crypto import AesGcmSealer, SealError, key_id, parse_keys
from app.runtime import Runtime
from app.settings import load_settings
from app.worker import create_worker
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import DATA_KEY, Relay
from tests.support.old_formats import to_old_format
from tests.support.privacy import Person, aof_bytes, dump, leaks


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay({"acme": connection_table("factorial", factorial.url)})


def test_sealer_round_trip_key_ids_and_tampering() -> None:
    k1, k2 = parse_keys(crypto.new_key()), parse_keys(crypto.new_key())
    old, both = AesGcmSealer(k1), AesGcmSealer(k2 + k1)
    blob = old.seal(b"secret CV")
    assert b"secret" not in blob and blob[1:5] == key_id(k1[0])
    assert both.open(blob) == b"secret CV"  # reads find the key the blob names
    assert both.seal(b"x")[1:5] == key_id(k2[0])  # writes use the first key
    assert old.seal(b"same") != old.seal(b"same")  # a fresh nonce each time
    with pytest.raises(SealError, match="not in APPLYRELAY_DATA_KEY"):
        AesGcmSealer(k2).open(blob)
    with pytest.raises(SealError, match="authentication"):
        old.open(blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(SealError, match="not sealed"):
        old.open(b"plain text payload, written without encryption")


def test_malformed_keys_are_named_not_echoed() -> None:
    with pytest.raises(crypto.KeyConfigError, match=r"APPLYRELAY_DATA_KEY\[1\]: must decode to 32 bytes"):
        parse_keys(DATA_KEY + ",c2hvcnQ")
    with pytest.raises(crypto.KeyConfigError, match="twice"):
        parse_keys(f"{DATA_KEY},{DATA_KEY}")


def test_production_refuses_to_start_without_a_key_and_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "applyrelay.toml"
    config.write_text("")
    for name in list(os.environ):
        if name.startswith("APPLYRELAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("APPLYRELAY_CONFIG", str(config))
    monkeypatch.setenv("APPLYRELAY_ADMIN_TOKEN", "x" * 24)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")
    with pytest.raises(ConfigError, match=r"APPLYRELAY_DATA_KEY: not set.*applyrelay keys new"):
        load_settings()
    monkeypatch.setenv("APPLYRELAY_DATA_KEY", "not-a-key")
    with pytest.raises(ConfigError, match=r"APPLYRELAY_DATA_KEY\[0\]"):
        load_settings()
    monkeypatch.setenv("APPLYRELAY_DATA_KEY", DATA_KEY)
    assert load_settings().data_keys == parse_keys(DATA_KEY)
    monkeypatch.setenv("APPLYRELAY_KEEP_DELIVERED_DAYS", "0")
    with pytest.raises(ConfigError, match="APPLYRELAY_KEEP_DELIVERED_DAYS"):
        load_settings()


def test_dev_mode_generates_a_key_under_var_and_keeps_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("app.settings.VAR_DIR", tmp_path / "var")
    for name in list(os.environ):
        if name.startswith("APPLYRELAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1")
    first = load_settings()
    key_file = tmp_path / "var" / "data-key"
    assert first.dev and key_file.exists() and oct(key_file.stat().st_mode)[-3:] == "600"
    assert load_settings().data_keys == first.data_keys == parse_keys(key_file.read_text())


async def test_redis_holds_no_plaintext_candidate_data(relay: Relay, factorial: Emulator) -> None:
    people = [Person("a"), Person("b")]
    ids = []
    for person in people:
        response = await relay.post(person.application())
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    # stored and enqueued, nothing run yet: payload, files, idempotency, indexes, arq's job records
    assert await relay.redis.keys("arq:job:*") and len(await relay.blobs_held()) == 2
    blob = await dump(relay.redis)
    for person in people:
        assert leaks(blob, person) == []
    # the relay itself reads it all back
    store = relay.store
    assert person.first.encode() in (await store.load_payload(ids[1]) or b"")
    assert await store.load_file(ids[1], 0) == people[1].cv

    # and through delivery: a retry in between, then delivered (attempt logs, checkpoints, audit)
    factorial.faults(script=["error"], error_status=503)
    await relay.start_worker()
    await relay.wait_for(ids[0], "retry_scheduled", "delivered")
    await relay.run_due_jobs()
    for delivery_id in ids:
        await relay.wait_for(delivery_id, "delivered")
    viewed = await relay.client.get(f"/v1/deliveries/{ids[0]}", params={"include": "candidate"}, headers=relay.admin)
    assert viewed.json()["candidate"]["email_address"] == people[0].email  # decrypted for a pii token
    blob = await dump(relay.redis)
    for person in people:
        assert leaks(blob, person) == []
    assert sorted(c["email"] for c in factorial.records()["candidates"]) == sorted(p.email for p in people)

    aof = await aof_bytes(relay.redis)
    assert aof is not None or os.environ.get("REDIS_URL")  # the session's embedded Redis keeps an AOF
    if aof is not None:  # the embedded test Redis: its append-only file is on this disk
        await asyncio.sleep(1.1)  # appendfsync everysec
        aof = await aof_bytes(relay.redis)
        assert aof is not None and ids[0].encode() in aof  # the file is the right one
        for person in people:
            assert leaks(aof, person) == []


async def test_key_rotation_keeps_every_record_readable(relay: Relay, factorial: Emulator) -> None:
    people = [Person(str(i)) for i in range(4)]
    ids = [(await relay.post(p.application(cv=i % 2 == 0))).json()["id"] for i, p in enumerate(people)]
    old_kid = key_id(parse_keys(DATA_KEY)[0])
    index_key = await runtime_index_key(relay.settings)  # keys the email index and tombstones
    new = crypto.new_key()
    rotated = AesGcmSealer(parse_keys(f"{new},{DATA_KEY}"))

    # one of the two CVs as the first blob-store release stored it (a file key naming a random blob)
    assert await to_old_format(relay, ids[2], as_ref=True) == 1
    report = await rotate(relay.redis, rotated, blobs=relay.blobs)
    sealed = [k async for k in relay.redis.scan_iter(match="ar:[pf]:*")] + [b"ar:keys:index"]
    blobs = [name for name in await relay.blobs_held() if name != ".tmp"]
    assert len(sealed) == 4 + 1 + 1 and len(blobs) == 2  # the payloads, one file key, the index key
    assert report.resealed == len(sealed) - 1 + len(blobs) and report.unreadable == 0
    for key in sealed:
        blob = await relay.redis.get(key)
        if blob.startswith(b"blob:"):  # a file: the reference names its sealed blob
            blob = await relay.blobs.get(blob[5:].decode())
        assert blob[1:5] == rotated.current != old_kid
    for name in blobs:  # the other CV: in its derived blob, re-sealed too
        assert (await relay.blobs.get(name))[1:5] == rotated.current
    again = await rotate(relay.redis, rotated, blobs=relay.blobs)
    assert again.resealed == 0 and again.current == len(sealed) - 1 + len(blobs)

    # the old key can go: a relay holding only the new key reads and delivers everything
    only_new = dataclasses.replace(relay.settings, data_keys=parse_keys(new))
    store = DeliveryStore(relay.redis, sealer=AesGcmSealer(only_new.data_keys))
    for person, delivery_id in zip(people, ids, strict=True):
        assert person.email.encode() in (await store.load_payload(delivery_id) or b"")
    runtime = Runtime(only_new)
    worker = create_worker(only_new, runtime=runtime)
    worker.handle_signals = False
    task = asyncio.create_task(worker.async_run())
    try:
        for delivery_id in ids:
            await relay.wait_for(delivery_id, "delivered")
    finally:
        await worker.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runtime.close()
    assert sorted(c["email"] for c in factorial.records()["candidates"]) == sorted(p.email for p in people)
    assert len(factorial.records()["files"]) == 2
    assert await runtime_index_key(only_new) == index_key  # re-sealed, not replaced: tombstones still match


async def runtime_index_key(settings: Any) -> bytes:
    runtime = Runtime(settings)
    try:
        return await runtime.pseudonyms.index_key()
    finally:
        await runtime.close()


async def test_a_missing_key_is_a_retryable_error_not_a_lost_delivery(relay: Relay) -> None:
    delivery_id = (await relay.post(Person().application())).json()["id"]
    relay.settings.data_keys = parse_keys(crypto.new_key())  # the worker lacks the key that sealed it
    await relay.start_worker()
    record = await relay.wait_for(delivery_id, "retry_scheduled")
    assert "not in APPLYRELAY_DATA_KEY" in record["last_error"]["message"]
    assert await relay.redis.exists(f"ar:p:{delivery_id}")  # nothing lost


def test_keys_new_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    main(["keys", "new"])
    out = capsys.readouterr()
    name, _, value = out.out.strip().partition("=")
    assert name == "APPLYRELAY_DATA_KEY" and len(base64.urlsafe_b64decode(value + "=")) == 32
    assert "keys rotate" in out.err


async def test_a_store_without_a_sealer_never_stores_or_returns_candidate_data(relay: Relay) -> None:
    delivery_id = (await relay.post(Person().application())).json()["id"]
    bare = DeliveryStore(relay.redis)
    assert (await bare.get(delivery_id)) is not None  # states carry no candidate data: readable
    with pytest.raises(RuntimeError, match="no sealer"):
        await bare.load_payload(delivery_id)
    with pytest.raises(RuntimeError, match="no sealer"):
        await bare.store_file(delivery_id, 0, b"%PDF-1.4 clear")


async def test_inbound_channels_store_nothing_in_clear_and_are_erasable(
    make_relay: Any, factorial: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An Indeed Apply application (signed webhook, its own field names) goes through the same
    intake: sealed, indexed for erasure."""
    from tests.support.inbound import inbound_connection, inbound_env, indeed_payload, lenient_b64, post_indeed

    inbound_env(monkeypatch)
    relay = make_relay({"acme": inbound_connection(factorial.url)})
    person = Person()
    payload = indeed_payload(id="e" * 64)
    payload["applicant"].update(
        {
            "fullName": f"{person.first} {person.last}",
            "email": person.email,
            "phoneNumber": person.phone,
            "coverletter": person.answer,
            "resume": {
                "file": {
                    "fileName": f"{person.first}.pdf",
                    "contentType": "application/pdf",
                    "data": lenient_b64(person.cv),
                }
            },
        }
    )
    response = await post_indeed(relay, payload)
    assert response.status_code in (200, 201, 202), response.text
    assert await relay.redis.keys("ar:p:*")
    assert leaks(await dump(relay.redis), person) == []
    erased = await relay.client.post("/v1/erasure", json={"email": person.email}, headers=relay.admin)
    assert erased.json()["deliveries_erased"] == 1
    assert await relay.redis.keys("ar:p:*") == [] and await relay.redis.keys("ar:f:*") == []


def test_tools_use_the_environment_s_key_or_the_development_one_never_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.settings import data_keys_for_tools

    monkeypatch.setattr("app.settings.VAR_DIR", tmp_path / "var")
    assert data_keys_for_tools({"APPLYRELAY_DATA_KEY": DATA_KEY}) == parse_keys(DATA_KEY)
    with pytest.raises(ConfigError, match="APPLYRELAY_DATA_KEY: not set"):
        data_keys_for_tools({})
    assert not (tmp_path / "var").exists()  # nothing generated
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "data-key").write_text(DATA_KEY + "\n")
    assert data_keys_for_tools({}) == parse_keys(DATA_KEY)  # development: the one `applyrelay run` made
    with pytest.raises(ConfigError):
        data_keys_for_tools({"APPLYRELAY_CONFIG": "/etc/applyrelay.toml"})  # production: the environment only
