"""The audit log (app/privacy/audit.py): every operator action on candidate data recorded (who,
what, when) without the data itself, paged at GET /v1/audit for admins only."""

from __future__ import annotations

from typing import Any

import pytest

from app.privacy import audit
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.privacy import DPO, READER, Person, bearer, dump, leaks


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay({"acme": connection_table("factorial", factorial.url)}, extra_tokens=[READER, DPO])


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
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "before"
    for limit in ("-5", "0", "100000"):
        bad = await relay.client.get("/v1/audit", params={"limit": limit}, headers=relay.admin)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "limit", bad.text
