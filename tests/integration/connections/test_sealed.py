"""Credentials of connections made through the API, sealed at rest (docs/connections.md): no
plaintext in a raw dump of every key nor in the AOF, re-sealed by `keys rotate` (the old key can
then go), never in a log line."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import structlog

from app.connections.store import ConnectionStore
from app.privacy import crypto
from app.privacy.crypto import AesGcmSealer, key_id, parse_keys
from app.redis.embedded import EmbeddedRedis
from app.runtime import Runtime
from tests.support.builders import application
from tests.support.connections import create, post_until_accepted
from tests.support.emulators import EmulatorFactory
from tests.support.harness import ADMIN_TOKEN, DATA_KEY, REPO, Relay, blob_env
from tests.support.privacy import aof_bytes

KEY = "fct-sealed-Hh72-secret"
NEXT_KEY = "fct-sealed-Pp09-rotated"


async def test_no_dump_aof_or_log_line_holds_a_credential(tmp_path: Path, emulator: EmulatorFactory) -> None:
    """On a Redis of its own, append-only with every write synced: its AOF is this test's alone."""
    factorial = emulator("factorial", api_key=KEY)
    server = EmbeddedRedis(tmp_path / "redis", appendfsync="always")
    server.start()
    relay = Relay(server.url, {}, tmp_path=tmp_path)
    try:
        await relay.start_worker()
        body = {"id": "sealed-1", "connector": "factorial", "base_url": factorial.url, "credentials": {"api_key": KEY}}
        before = structlog.get_config()
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))  # info lines too
        try:
            with structlog.testing.capture_logs() as logs:
                assert (await create(relay, body)).status_code == 201
                wrong = await create(relay, {**body, "id": "sealed-2", "credentials": {"api_key": KEY + "x"}})
                assert wrong.status_code == 422
                rotated = await relay.client.patch(
                    "/v1/connections/sealed-1", json={"credentials": {"api_key": KEY}}, headers=relay.admin
                )
                assert rotated.status_code == 200
                delivery_id = await post_until_accepted(relay, application(connection_id="sealed-1", attachments=[]))
                await relay.wait_for(delivery_id, "delivered")
        finally:
            structlog.configure(**before)
        events = {e["event"] for e in logs}
        assert {"connection.created", "connection.credentials_replaced", "delivery.delivered"} <= events
        assert KEY not in repr(logs)

        dumped = b"".join([await relay.redis.dump(k) or b"" async for k in relay.redis.scan_iter(count=1000)])
        assert b"sealed-1" in dumped and KEY.encode() not in dumped
        sealed = await relay.redis.get("ar:conn:s:sealed-1")
        assert sealed is not None and sealed[1:5] == key_id(parse_keys(DATA_KEY)[0])  # the data key's seal

        aof = await aof_bytes(relay.redis)
        assert aof is not None and b"ar:conn:s:sealed-1" in aof and delivery_id.encode() in aof
        assert KEY.encode() not in aof
        assert KEY not in (tmp_path / "redis" / "redis.log").read_text(errors="replace")
    finally:
        await relay.close()
        server.stop()


async def test_keys_rotate_reseals_connection_secrets_and_the_old_key_can_go(
    make_relay: Any, emulator: EmulatorFactory, tmp_path: Path
) -> None:
    """`applyrelay keys rotate` as an operator runs it: keys new, put first, rotate, old key dropped."""
    factorial = emulator("factorial", api_key=KEY)
    relay = make_relay({})
    body = {"id": "rot-1", "connector": "factorial", "base_url": factorial.url, "credentials": {"api_key": KEY}}
    assert (await create(relay, body)).status_code == 201
    new = crypto.new_key()
    both = AesGcmSealer(parse_keys(f"{new},{DATA_KEY}"))  # keys new, put first
    (tmp_path / "empty.toml").write_text("")
    env = {
        **os.environ,
        "REDIS_URL": relay.redis_url,
        "APPLYRELAY_CONFIG": str(tmp_path / "empty.toml"),
        "APPLYRELAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "APPLYRELAY_DATA_KEY": f"{new},{DATA_KEY}",
        "PYTHONPATH": str(REPO),
        **blob_env(relay.settings.blobs),
    }
    cli = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "app.cli", "keys", "rotate"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0, cli.stderr
    assert "re-encrypted 1 records" in cli.stdout and "0 unreadable" in cli.stdout
    assert KEY not in cli.stdout + cli.stderr
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
