"""`applyrelay keys rotate` as an operator runs it (a subprocess on REDIS_URL): every sealed record
re-encrypted under the new key, the run audited, and a relay without the new key told which key
is missing."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest

from app.delivery.store import unpack_payload
from app.privacy import audit, crypto
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import ADMIN_TOKEN, DATA_KEY, REPO, Relay, blob_env
from tests.support.privacy import Person


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay({"acme": connection_table("factorial", factorial.url)})


@pytest.mark.slow
async def test_keys_rotate_command_reencrypts_and_is_audited(relay: Relay, tmp_path: Any) -> None:
    people = [Person(), Person()]
    ids = [(await relay.post(p.application())).json()["id"] for p in people]
    new = crypto.new_key()
    config = tmp_path / "applyrelay.toml"
    config.write_text(
        '[connections.acme]\nconnector = "factorial"\nbase_url = "http://127.0.0.1:9"\ncredentials_env = "X_KEY"\n'
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "REDIS_URL": relay.redis_url,
        "APPLYRELAY_CONFIG": str(config),
        "APPLYRELAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "APPLYRELAY_DATA_KEY": f"{new},{DATA_KEY}",
        "X_KEY": "k",
        **blob_env(relay.settings.blobs),  # the CVs are in the relay's blob store
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "keys",
        "rotate",
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err
    assert b"re-encrypted 5 records" in out  # 2 payloads, 2 CVs, the index key
    [entry] = await audit.read(relay.redis)
    assert entry.action == "rotate_keys" and entry.actor.startswith("cli")
    assert entry.detail["resealed"] == 5 and entry.detail["unreadable"] == 0
    sealer = crypto.AesGcmSealer(crypto.parse_keys(new))
    for person, delivery_id in zip(people, ids, strict=True):
        assert person.email.encode() in unpack_payload(sealer.open(await relay.redis.get(f"ar:p:{delivery_id}")))
    # a relay without the new key cannot read them any more: it says which key is missing
    missing = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "keys",
        "rotate",
        env={**env, "APPLYRELAY_DATA_KEY": DATA_KEY},
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(missing.communicate(), 60)
    assert missing.returncode != 0 and b"not in APPLYRELAY_DATA_KEY" in err and b"5 unreadable" in out
