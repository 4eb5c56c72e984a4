"""An idempotency key is bound to its request (issue 22, point 3): the same key with another body
is refused with 422 and a `code` (the IETF Idempotency-Key draft, Stripe), on every channel that
takes one; the same body still answers the first delivery. Reported: one key reused with 200
different applications, all 202, one delivery, 199 applications gone without a word."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from app.intake.accept import KEY_REUSED
from app.redis.keys import state_key
from tests.support.builders import PDF_BYTES
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.inbound import FORM_TOKEN, inbound_connection, inbound_env, webhook_headers


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator, monkeypatch: pytest.MonkeyPatch) -> Relay:
    inbound_env(monkeypatch)
    relay: Relay = make_relay({"acme": inbound_connection(factorial.url)})
    return relay


def application(i: int, **overrides: Any) -> dict[str, Any]:
    return {
        "connection_id": "acme",
        "candidate": {"first_name": "Noor", "last_name": f"Keyed {i}", "email_address": f"noor-{i}@example.org"},
        "application": {"job_id": "2001"},
        **overrides,
    }


async def deliveries(relay: Relay) -> int:
    return len(await relay.redis.keys("ar:d:*"))


def assert_reused(response: Any, field: str = "Idempotency-Key") -> None:
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == KEY_REUSED and "different request" in problem["detail"], problem
    assert [error["field"] for error in problem["errors"]] == [field]  # where the key came from


async def test_a_key_reused_with_other_bodies_is_refused_and_the_same_body_answers_the_first(relay: Relay) -> None:
    first = await relay.post(application(0), key="one-key")
    assert first.status_code == 202 and first.json()["duplicate"] is False
    others = await asyncio.gather(*(relay.post(application(i), key="one-key") for i in range(1, 41)))
    for response in others:
        assert_reused(response)
    again = await relay.post(application(0), key="one-key")
    # the same delivery, without re-reporting the first post's warnings
    assert again.status_code == 202
    assert {k: v for k, v in again.json().items() if k != "warnings"} == {
        **{k: v for k, v in first.json().items() if k != "warnings"},
        "duplicate": True,
    }
    assert await deliveries(relay) == 1 and await relay.queued_jobs() == 1
    assert await relay.redis.keys("ar:f:*") == []  # the refused ones' files are not kept either


async def test_concurrent_first_uses_of_one_key_with_different_bodies_store_one(relay: Relay) -> None:
    """Whichever body claims the key first wins; every other is told, none is silently merged."""
    responses = await asyncio.gather(*(relay.post(application(i), key="raced") for i in range(20)))
    created = [r for r in responses if r.status_code == 202]
    assert len(created) == 1 and created[0].json()["duplicate"] is False
    for response in responses:
        if response.status_code != 202:
            assert_reused(response)
    assert await deliveries(relay) == 1


async def test_the_fingerprint_is_a_keyed_hash_not_the_request(relay: Relay) -> None:
    response = await relay.post(application(7), key="fp")
    raw = await relay.redis.get(state_key(response.json()["id"]))
    assert raw is not None
    assert b"noor-7" not in raw and b"Keyed 7" not in raw  # the state holds no candidate data
    assert "request_fingerprint" not in await relay.delivery(response.json()["id"])  # not shown by the API


async def test_without_a_key_a_second_post_for_the_same_candidate_and_job_stays_a_duplicate(relay: Relay) -> None:
    """The derived key names the candidate's application to the job, whatever its answers."""
    first = await relay.post(application(3))
    changed = await relay.post(
        application(
            3,
            screening_question_answers=[
                {"question_id": "3001", "answer": "changed my mind"},
                {"question_id": "3003", "answer": "Yes"},  # the job's required questions, answered
            ],
        )
    )
    assert changed.status_code == 202 and changed.json()["id"] == first.json()["id"] and changed.json()["duplicate"]


async def test_a_webhook_id_reused_with_another_body_is_refused(relay: Relay) -> None:
    url = "/inbound/webhooks/acme"
    body = json.dumps({k: v for k, v in application(1).items() if k != "connection_id"}).encode()
    other = json.dumps({k: v for k, v in application(2).items() if k != "connection_id"}).encode()
    first = await relay.client.post(url, content=body, headers=webhook_headers(body, msg_id="msg_x"))
    assert first.status_code == 202, first.text
    redelivered = await relay.client.post(url, content=body, headers=webhook_headers(body, msg_id="msg_x"))
    assert redelivered.status_code == 202 and redelivered.json()["id"] == first.json()["id"]
    assert_reused(
        await relay.client.post(url, content=other, headers=webhook_headers(other, msg_id="msg_x")), "webhook-id"
    )
    assert await deliveries(relay) == 1


async def test_a_form_idempotency_key_reused_with_another_form_is_refused(relay: Relay) -> None:
    headers = {"x-form-token": FORM_TOKEN, "accept": "application/json", "idempotency-key": "form-1"}
    files = [("resume", ("cv.pdf", PDF_BYTES, "application/pdf"))]

    async def post(email: str) -> Any:
        data = {"first_name": "Ana", "last_name": "Form", "email": email}
        return await relay.client.post("/inbound/forms/acme/2001", data=data, files=files, headers=headers)

    first = await post("ana@example.org")
    assert first.status_code == 202, first.text
    assert (await post("ana@example.org")).json()["id"] == first.json()["id"]
    assert_reused(await post("someone-else@example.org"))
    assert await deliveries(relay) == 1


async def test_an_action_key_reused_with_another_action_is_refused(relay: Relay) -> None:
    url = "/v1/connections/acme/applications/{}/stage"
    headers = {**relay.admin, "idempotency-key": "move-1"}
    first = await relay.client.post(url.format("9001"), json={"stage_id": "s1"}, headers=headers)
    assert first.status_code == 202, first.text
    same = await relay.client.post(url.format("9001"), json={"stage_id": "s1"}, headers=headers)
    assert same.status_code == 202 and same.json()["id"] == first.json()["id"] and same.json()["duplicate"]
    assert_reused(await relay.client.post(url.format("9001"), json={"stage_id": "s2"}, headers=headers))
    assert_reused(await relay.client.post(url.format("9002"), json={"stage_id": "s1"}, headers=headers))
    assert await deliveries(relay) == 1
