"""Erasure on request: one candidate among many, wherever their deliveries stand; the rest are
still delivered; the ATS records to erase are reported; a later duplicate is recognised."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import pytest

from app.privacy import audit
from app.tokens import ApiToken
from tests.support.builders import b64, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import ADMIN_TOKEN, DATA_KEY, REPO, Relay
from tests.support.privacy import Person, dead_letter, dump, leaks


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay({"acme": connection_table("factorial", factorial.url)})


async def stored_keys(relay: Relay, delivery_id: str) -> list[bytes]:
    return [k async for k in relay.redis.scan_iter(match=f"ar:[pf]:{delivery_id}*")]


async def test_erasure_removes_one_candidate_everywhere_and_the_rest_is_delivered(
    relay: Relay, factorial: Emulator
) -> None:
    ana, bob, cyd = Person("ana"), Person("bob"), Person("cyd")
    await relay.start_worker()
    # ana: one delivered application (+ an attachment action on it), one dead letter, one retrying
    delivered = (await relay.post(ana.application("2001"))).json()["id"]
    await relay.wait_for(delivered, "delivered")
    action = (
        await relay.client.post(
            f"/v1/deliveries/{delivered}/attachments",
            headers=relay.admin,
            json={"attachment": {"name": f"{ana.first} letter.pdf", "type": "CV", "data": b64(ana.cv + b"v2")}},
        )
    ).json()["id"]
    await relay.wait_for(action, "delivered")
    dead = await dead_letter(relay, factorial, ana)  # archived posting
    await relay.wait_for(dead, "failed")
    factorial.faults(error_rate=1.0, error_status=503)
    retrying = (await relay.post(ana.application("2002"))).json()["id"]
    others = [(await relay.post(p.application("2001"))).json()["id"] for p in (bob, cyd)]
    for delivery_id in (retrying, *others):
        await relay.wait_for(delivery_id, "retry_scheduled")
    assert await stored_keys(relay, retrying) and await stored_keys(relay, dead)

    await relay.redis.zadd("ar:sync", {delivered: 0})  # followed by status sync (app/tracking/poll.py)
    response = await relay.client.post("/v1/erasure", json={"email": ana.email.upper()}, headers=relay.admin)
    assert response.status_code == 200, response.text
    report = response.json()
    assert await relay.redis.zscore("ar:sync", delivered) is None  # its status is no longer polled
    assert sorted(d["delivery_id"] for d in report["deliveries"]) == sorted([delivered, action, dead, retrying])
    assert report["stopped"] == [retrying]
    [ats] = report["erase_in_ats"]
    remote = {r["type"]: r["remote_id"] for r in ats["records"]}
    ana_in_ats = next(c for c in factorial.records()["candidates"] if c["email"] == ana.email)
    assert ats["connection_id"] == "acme" and remote["candidate"] == ana_in_ats["id"]
    assert {"candidate", "application", "attachment"} <= set(remote)

    # nothing of ana is left in Redis; bob's and cyd's data is untouched
    for delivery_id in (delivered, action, dead, retrying):
        assert await stored_keys(relay, delivery_id) == []
        record = await relay.delivery(delivery_id)
        assert record["payload_purged"] and record["files_purged"] and record["erased_at"]
    stopped = await relay.delivery(retrying)
    assert stopped["status"] == "failed" and stopped["last_error"]["kind"] == "erased"
    assert leaks(await dump(relay.redis), ana) == []
    for delivery_id in others:
        assert await stored_keys(relay, delivery_id)

    # the rest is still delivered; the erased one never is
    factorial.faults(error_rate=0.0)
    await relay.run_due_jobs()
    for delivery_id in others:
        await relay.wait_for(delivery_id, "delivered")
    assert (await relay.delivery(retrying))["status"] == "failed"
    emails = [c["email"] for c in factorial.records()["candidates"]]
    assert sorted(emails) == sorted([ana.email, bob.email, cyd.email])  # ana's only from before erasure
    assert (
        len([a for a in factorial.records()["applications"] if a["ats_candidate_id"] == ana_in_ats["id"]]) == 1
    )  # the retrying one never arrived

    # a tombstone recognises the address later, without holding it
    [tomb] = [k async for k in relay.redis.scan_iter(match="ar:erased:*")]
    assert ana.email.encode() not in tomb
    entries = await audit.read(relay.redis)
    erase = next(e for e in entries if e.action == "erase")
    assert erase.actor == "admin" and erase.target == f"subject:{report['subject']}"
    assert erase.detail == {"deliveries": 4, "stopped": 1}
    assert (
        'applyrelay_records_purged_total{reason="erasure"} 4.0'
        in (await relay.client.get("/metrics", headers=relay.admin)).text
    )
    assert ana.email not in str([e.detail for e in entries] + [e.target for e in entries])


async def test_after_erasure_a_replay_is_refused_and_a_new_application_is_flagged(relay: Relay) -> None:
    ana = Person()
    first = await relay.post(ana.application(), key="board-app-1")
    assert first.status_code == 202
    erased = await relay.client.post("/v1/erasure", json={"email": ana.email}, headers=relay.admin)
    assert erased.json()["deliveries_erased"] == 1
    # the board sends the same application again: recognised, refused, nothing stored
    replay = await relay.post(ana.application(), key="board-app-1")
    assert replay.status_code == 409 and replay.json()["title"] == "Erased"
    assert await stored_keys(relay, first.json()["id"]) == []
    # the candidate applies again (a new application): accepted, flagged for the operator
    again = await relay.post(ana.application("2002"), key="board-app-2")
    assert again.status_code == 202
    assert "previously_erased" in {w["code"] for w in again.json()["warnings"]}
    # and a second erasure reaches it too
    second = await relay.client.post("/v1/erasure", json={"email": ana.email}, headers=relay.admin)
    assert [d["delivery_id"] for d in second.json()["deliveries"]] == [again.json()["id"]]
    tomb = await relay.redis.hgetall(next(iter([k async for k in relay.redis.scan_iter(match="ar:erased:*")])))
    assert tomb[b"requests"] == b"2"


async def test_erasure_of_an_unknown_address_is_a_harmless_empty_report(relay: Relay) -> None:
    other = Person()
    kept = (await relay.post(other.application())).json()["id"]
    response = await relay.client.post("/v1/erasure", json={"email": "nobody@example.org"}, headers=relay.admin)
    assert response.status_code == 200
    assert response.json()["deliveries"] == [] and response.json()["erase_in_ats"] == []
    assert await stored_keys(relay, kept)


async def test_erasure_needs_the_erase_scope_and_a_valid_address(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay(
        {"acme": connection_table("factorial", factorial.url)},
        extra_tokens=[
            ApiToken("ops", "ops-token-0123456789", frozenset({"read", "retry", "pii"})),
            ApiToken("dpo", "dpo-token-0123456789", frozenset({"erase"})),
        ],
    )
    ana = Person()
    kept = (await relay.post(ana.application())).json()["id"]
    ops = {"authorization": "Bearer ops-token-0123456789"}
    refused = await relay.client.post("/v1/erasure", json={"email": ana.email}, headers=ops)
    assert refused.status_code == 403 and "erase" in refused.json()["detail"]
    assert (await relay.client.post("/v1/erasure", json={"email": ana.email})).status_code == 401
    assert await stored_keys(relay, kept)
    dpo = {"authorization": "Bearer dpo-token-0123456789"}
    bad = await relay.client.post("/v1/erasure", json={"email": "not an address"}, headers=dpo)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "email"
    assert "not an address" not in bad.text
    assert (await relay.client.post("/v1/erasure", json={}, headers=dpo)).status_code == 422
    garbled = await relay.client.post("/v1/erasure", content=b"{", headers={**dpo, "content-type": "application/json"})
    assert garbled.status_code == 400
    assert (await relay.client.post("/v1/erasure", content=b"{", headers=dpo)).status_code == 415  # not said JSON
    ok = await relay.client.post("/v1/erasure", json={"email": ana.email}, headers=dpo)
    assert ok.status_code == 200 and ok.json()["deliveries_erased"] == 1
    assert (await audit.read(relay.redis))[0].actor == "dpo"


@pytest.mark.slow
async def test_erase_command_does_the_same_from_a_terminal(relay: Relay, tmp_path: Any) -> None:
    ana, bob = Person(), Person()
    erased = (await relay.post(ana.application())).json()["id"]
    kept = (await relay.post(bob.application())).json()["id"]
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
        "APPLYRELAY_DATA_KEY": DATA_KEY,
        "X_KEY": "k",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "erase",
        "--email",
        ana.email,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err
    report = json.loads(out)  # stdout is the report alone; logs go to stderr
    assert [d["delivery_id"] for d in report["deliveries"]] == [erased] and b"erased 1 deliveries" in err
    [event] = [json.loads(line) for line in err.splitlines() if b'"candidate.erased"' in line]
    assert event["deliveries"] == 1 and event["subject"] == report["subject"]
    assert leaks(out + err, ana) == []
    assert await stored_keys(relay, erased) == [] and await stored_keys(relay, kept)
    assert (await audit.read(relay.redis))[0].action == "erase"
    assert [k async for k in relay.redis.scan_iter(match="ar:erased:*")]


async def test_erasure_waits_for_a_run_in_progress_then_erases(relay: Relay, factorial: Emulator) -> None:
    """A worker is mid-delivery (its lease held): erasure waits for the run to end rather than
    purge under it, then erases, and reports what the run created in the ATS."""
    ana = Person()
    factorial.faults(latency_ms=1500, path_regex="/ats/applications$", methods=["POST"])
    await relay.start_worker()
    delivery_id = (await relay.post(ana.application(cv=False))).json()["id"]
    await relay.wait_for(delivery_id, "delivering", until=lambda r: "candidate" in r["checkpoints"])
    report = (await relay.client.post("/v1/erasure", json={"email": ana.email}, headers=relay.admin)).json()
    [erased] = report["deliveries"]
    assert erased["status_before"] == "delivered" and not erased["in_flight"] and not erased["stopped"]
    assert {r["type"] for r in report["erase_in_ats"][0]["records"]} == {"candidate", "application"}
    record = await relay.delivery(delivery_id)
    assert record["status"] == "delivered" and record["payload_purged"] and record["erased_at"]
    assert await stored_keys(relay, delivery_id) == []
