"""Credentials of connections made through the API, sealed at rest (docs/connections.md): no
plaintext in a raw dump of every key nor in the AOF, re-sealed by `keys rotate` (the old key can
then go), never in a log line."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

import structlog

from app.cli.keys import rotate
from app.connections.store import ConnectionStore
from app.privacy import crypto
from app.privacy.crypto import AesGcmSealer, key_id, parse_keys
from app.runtime import Runtime
from tests.support.builders import application
from tests.support.connections import create, post_until_accepted
from tests.support.emulators import EmulatorFactory
from tests.support.harness import DATA_KEY
from tests.support.privacy import aof_bytes

KEY = "fct-sealed-Hh72-secret"
NEXT_KEY = "fct-sealed-Pp09-rotated"


async def test_no_dump_aof_or_log_line_holds_a_credential(make_relay: Any, emulator: EmulatorFactory) -> None:
    factorial = emulator("factorial", api_key=KEY)
    relay = make_relay({})
    await relay.start_worker()
    body = {"id": "sealed-1", "connector": "factorial", "base_url": factorial.url, "credentials": {"api_key": KEY}}
    before = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))  # info lines too
    try:
        with structlog.testing.capture_logs() as logs:
            assert (await create(relay, body)).status_code == 201
            wrong = await create(relay, {**body, "id": "sealed-2", "credentials": {"api_key": KEY + "x"}})
            assert wrong.status_code == 422
            delivery_id = await post_until_accepted(relay, application(connection_id="sealed-1", attachments=[]))
            await relay.wait_for(delivery_id, "delivered")
    finally:
        structlog.configure(**before)
    events = {e["event"] for e in logs}
    assert {"connection.created", "delivery.delivered"} <= events
    assert KEY not in repr(logs)

    dumped = b"".join([await relay.redis.dump(k) or b"" async for k in relay.redis.scan_iter(count=1000)])
    assert b"sealed-1" in dumped and KEY.encode() not in dumped
    sealed = await relay.redis.get("ar:conn:s:sealed-1")
    assert sealed is not None and sealed[1:5] == key_id(parse_keys(DATA_KEY)[0])  # the data key's seal

    aof = await aof_bytes(relay.redis)
    deadline = time.monotonic() + 5
    while aof is not None and delivery_id.encode() not in aof:  # appendfsync everysec
        assert time.monotonic() < deadline, "the AOF never caught up"
        await asyncio.sleep(0.2)
        aof = await aof_bytes(relay.redis)
    assert aof is not None, "the session's embedded Redis keeps an AOF"
    assert b"ar:conn:s:sealed-1" in aof and KEY.encode() not in aof


async def test_keys_rotate_reseals_connection_secrets_and_the_old_key_can_go(
    make_relay: Any, emulator: EmulatorFactory
) -> None:
    factorial = emulator("factorial", api_key=KEY)
    relay = make_relay({})
    body = {"id": "rot-1", "connector": "factorial", "base_url": factorial.url, "credentials": {"api_key": KEY}}
    assert (await create(relay, body)).status_code == 201
    new = crypto.new_key()
    both = AesGcmSealer(parse_keys(f"{new},{DATA_KEY}"))  # keys new, put first
    report = await rotate(relay.redis, both, blobs=relay.blobs)
    assert report.resealed >= 1 and report.unreadable == 0
    sealed = await relay.redis.get("ar:conn:s:rot-1")
    assert sealed is not None and sealed[1:5] == both.current != key_id(parse_keys(DATA_KEY)[0])
    assert KEY.encode() not in sealed

    only_new = dataclasses.replace(relay.settings, data_keys=parse_keys(new))  # the old key dropped
    secrets = await ConnectionStore(relay.redis, AesGcmSealer(only_new.data_keys)).secrets("rot-1")
    assert secrets is not None and secrets.credentials == {"api_key": KEY}
    runtime = Runtime(only_new)
    try:
        await runtime.registry.refresh(force=True)
        assert runtime.config.connections["rot-1"].credentials == KEY  # loads, and would deliver
    finally:
        await runtime.close()
