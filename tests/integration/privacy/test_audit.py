"""Audit and access: candidate data only for a token with `pii`, and every operator action on it
recorded (who, what, when) without the data itself; the log is paged at GET /v1/audit."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import pytest

from app.privacy import audit, crypto
from app.tokens import ApiToken
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import ADMIN_TOKEN, DATA_KEY, REPO, Relay
from tests.support.privacy import Person, dump, leaks

READER = ApiToken("reader", "reader-token-0123456789", frozenset({"read", "retry"}))
DPO = ApiToken("dpo", "dpo-token-000123456789", frozenset({"read", "pii"}))


def bearer(token: ApiToken) -> dict[str, str]:
    return {"authorization": f"Bearer {token.secret}"}


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay({"acme": connection_table("factorial", factorial.url)}, extra_tokens=[READER, DPO])


async def test_candidate_data_only_with_the_pii_scope_and_each_view_is_audited(relay: Relay) -> None:
    ana = Person()
    delivery_id = (await relay.post(ana.application())).json()["id"]
    url = f"/v1/deliveries/{delivery_id}"
    plain = await relay.client.get(url, headers=bearer(READER))
    assert plain.status_code == 200 and "candidate" not in plain.json() and ana.email not in plain.text
    refused = await relay.client.get(url, params={"include": "candidate"}, headers=bearer(READER))
    assert refused.status_code == 403 and "pii" in refused.json()["detail"]
    assert await audit.read(relay.redis) == []  # nothing shown, nothing recorded

    shown = await relay.client.get(url, params={"include": "candidate"}, headers=bearer(DPO))
    assert shown.status_code == 200
    assert shown.json()["candidate"] == {"first_name": ana.first, "last_name": ana.last, "email_address": ana.email}
    [entry] = await audit.read(relay.redis)
    assert (entry.actor, entry.action, entry.target) == ("dpo", "view_detail", delivery_id)
    assert entry.at == pytest.approx(time.time(), abs=10)
    bad = await relay.client.get(url, params={"include": "everything"}, headers=bearer(DPO))
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "include"


async def test_retry_export_and_erase_are_audited_without_pii(relay: Relay, factorial: Emulator) -> None:
    ana = Person()
    await relay.start_worker()
    dead = (await relay.post(ana.application("2003", cv=False))).json()["id"]
    await relay.wait_for(dead, "failed")
    assert (await relay.client.post(f"/v1/deliveries/{dead}/retry", headers=bearer(READER))).status_code == 202
    await relay.wait_for(dead, "failed", until=lambda r: r["runs"] == 2)

    assert (
        await relay.client.post("/v1/subject-access", json={"email": ana.email}, headers=bearer(READER))
    ).status_code == 403
    export = await relay.client.post("/v1/subject-access", json={"email": ana.email}, headers=bearer(DPO))
    assert export.status_code == 200
    [record] = export.json()["deliveries"]
    assert record["delivery_id"] == dead and record["application"]["candidate"]["email_address"] == ana.email
    erased = await relay.client.post("/v1/erasure", json={"email": ana.email}, headers=relay.admin)
    assert erased.status_code == 200

    entries = await audit.read(relay.redis)
    assert [(e.actor, e.action) for e in reversed(entries)] == [
        ("reader", "retry"),
        ("dpo", "export"),
        ("admin", "erase"),
    ]
    assert entries[2].target == dead and entries[1].target == entries[0].target == f"subject:{erased.json()['subject']}"
    stream = b"".join(f for _, fields in await relay.redis.xrange(audit.AUDIT_STREAM) for f in fields.values())
    assert leaks(stream, ana) == [] and leaks(await dump(relay.redis), ana) == []


async def test_the_audit_log_is_paged_and_admin_only(relay: Relay) -> None:
    for i in range(5):
        await audit.record(relay.redis, "someone", "view_detail", f"dlv_{i}")
    assert (await relay.client.get("/v1/audit", headers=bearer(DPO))).status_code == 403
    assert (await relay.client.get("/v1/audit")).status_code == 401
    page = (await relay.client.get("/v1/audit", params={"limit": 2}, headers=relay.admin)).json()
    assert [e["target"] for e in page["data"]] == ["dlv_4", "dlv_3"] and page["next"]
    rest = (
        await relay.client.get("/v1/audit", params={"limit": 10, "before": page["next"]}, headers=relay.admin)
    ).json()
    assert [e["target"] for e in rest["data"]] == ["dlv_2", "dlv_1", "dlv_0"] and rest["next"] is None
    assert {"at", "actor", "action", "target", "id"} <= set(rest["data"][0])
    bad = await relay.client.get("/v1/audit", params={"before": "x;DROP"}, headers=relay.admin)
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "before"


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
        assert person.email.encode() in sealer.open(await relay.redis.get(f"ar:p:{delivery_id}"))
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
