"""JSON nested past what the decoder or a walk over free-form values follows, and integers past
64 bits, on every route that takes them: a 4xx problem naming the field with a code, never a 500,
and nothing stored (app/web/problems.py, app/intake/accept.py `free_json_fault`; docs/operations.md,
"Bounded work"). Also: a body that is not JSON names `$` as the field at fault, on every route."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.inbound import (
    assert_nothing_stored,
    inbound_connection,
    inbound_env,
    indeed_payload,
    post_indeed,
    webhook_headers,
)


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator, monkeypatch: pytest.MonkeyPatch) -> Relay:
    inbound_env(monkeypatch)
    return make_relay({"acme": inbound_connection(factorial.url)})


def application(**extra: Any) -> dict[str, Any]:
    return {
        "connection_id": "acme",
        "candidate": {"first_name": "Ana", "last_name": "López", "email_address": "ana@example.org"},
        "application": {"job_id": "2001"},
        **extra,
    }


def with_raw(document: dict[str, Any], key: str, raw: str) -> bytes:
    """`document` as JSON with `raw` (too deep for Python's json to write) as the value of `key`."""
    text = json.dumps({**document, key: "@RAW@"})
    return text.replace('"@RAW@"', raw).encode()


def deep_list(levels: int) -> str:
    return "[" * levels + "]" * levels


def assert_problem(response: httpx.Response, status: int, field: str, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code and [e["field"] for e in problem["errors"]] == [field], problem


async def test_an_application_nested_past_the_decoder_is_a_422_naming_the_body(relay: Relay) -> None:
    for levels in (1_000, 100_000):
        response = await relay.post(
            None, raw=with_raw(application(), "remote_fields", '{"a":' + deep_list(levels) + "}")
        )
        assert_problem(response, 422, "$", "PLATFORM.LIMIT_EXCEEDED")
    await assert_nothing_stored(relay)


@pytest.mark.parametrize("levels", [33, 600])
async def test_remote_fields_nested_past_32_levels_are_refused_naming_them(relay: Relay, levels: int) -> None:
    # 600 levels decode, but cleaning walked them recursively and crashed (a 500) before this check.
    response = await relay.post(None, raw=with_raw(application(), "remote_fields", '{"a":' + deep_list(levels) + "}"))
    assert_problem(response, 422, "remote_fields", "PLATFORM.LIMIT_EXCEEDED")
    await assert_nothing_stored(relay)


async def test_remote_fields_32_levels_deep_are_taken(relay: Relay) -> None:
    response = await relay.post(None, raw=with_raw(application(), "remote_fields", '{"a":' + deep_list(31) + "}"))
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("number", [-11840366567759978430464, 2**64, 10**400], ids=["-1.2e22", "2**64", "10**400"])
async def test_an_integer_past_64_bits_in_remote_fields_is_refused_naming_them(relay: Relay, number: int) -> None:
    raw = with_raw(application(), "remote_fields", '{"x": ' + str(number) + "}")
    response = await relay.post(None, raw=raw)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "remote_fields"
    await assert_nothing_stored(relay)


async def test_the_largest_64_bit_integers_in_remote_fields_are_taken(relay: Relay) -> None:
    raw = with_raw(application(), "remote_fields", '{"low": ' + str(-(2**63)) + ', "high": ' + str(2**64 - 1) + "}")
    response = await relay.post(None, raw=raw)
    assert response.status_code == 202, response.text


async def test_an_integer_answer_past_64_bits_is_refused_naming_the_answer(relay: Relay) -> None:
    answers = '[{"question_id": "3001", "answer": ' + str(10**30) + "}]"
    response = await relay.post(None, raw=with_raw(application(), "screening_question_answers", answers))
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "screening_question_answers[0].answer"
    await assert_nothing_stored(relay)


async def test_a_webhook_nested_past_the_decoder_is_a_422(relay: Relay) -> None:
    for raw in (deep_list(100_000).encode(), with_raw(application(), "remote_fields", '{"a":' + deep_list(600) + "}")):
        response = await relay.client.post("/inbound/webhooks/acme", content=raw, headers=webhook_headers(raw))
        assert response.status_code == 422, response.text  # past the decoder, or past remote_fields' 32 levels
        assert response.json()["code"] == "PLATFORM.LIMIT_EXCEEDED"
    await assert_nothing_stored(relay)


async def test_indeed_answers_nested_past_the_decoder_are_a_422(relay: Relay) -> None:
    raw = with_raw(indeed_payload(id="deep-1"), "questions", deep_list(5_000))
    response = await post_indeed(relay, raw=raw)
    assert_problem(response, 422, "$", "PLATFORM.LIMIT_EXCEEDED")
    await assert_nothing_stored(relay)


async def test_connection_settings_too_deep_or_too_large_are_refused(relay: Relay, factorial: Emulator) -> None:
    document = {
        "id": "acme-2",
        "connector": "factorial",
        "base_url": factorial.url,
        "credentials": {"api_key": "sandbox"},
    }
    response = await relay.client.post(
        "/v1/connections",
        content=with_raw(document, "settings", '{"x":' + deep_list(5_000) + "}"),
        headers={**relay.admin, "content-type": "application/json"},
    )
    assert_problem(response, 422, "$", "PLATFORM.LIMIT_EXCEEDED")
    response = await relay.client.post(
        "/v1/connections", json={**document, "settings": {"concurrency": 10**20}}, headers=relay.admin
    )
    assert response.status_code == 422, response.text
    assert "concurrency" in response.json()["errors"][0]["field"]
    assert (await relay.client.get("/v1/connections/acme-2", headers=relay.admin)).status_code == 404


async def test_a_passthrough_body_nested_past_the_decoder_is_a_422(relay: Relay, factorial: Emulator) -> None:
    raw = with_raw({"method": "POST", "path": "ats/candidates"}, "body", deep_list(5_000))
    response = await relay.client.post(
        "/v1/connections/acme/passthrough", content=raw, headers={**relay.admin, "content-type": "application/json"}
    )
    assert_problem(response, 422, "$", "PLATFORM.LIMIT_EXCEEDED")
    assert "POST /api/2026-07-01/resources/ats/candidates" not in factorial.records()["calls"]


async def test_a_body_that_is_not_json_names_the_body_on_every_intake_route(relay: Relay) -> None:
    raw = b"{not json"
    answers = [
        await relay.post(None, raw=raw),
        await post_indeed(relay, raw=raw),
        await relay.client.post("/inbound/webhooks/acme", content=raw, headers=webhook_headers(raw)),
        await relay.client.post(
            "/v1/deliveries/retry", content=raw, headers={**relay.admin, "content-type": "application/json"}
        ),
    ]
    for response in answers:
        assert_problem(response, 400, "$", "PLATFORM.INPUT_INVALID")
        assert response.json()["title"] == "Malformed JSON"
    await assert_nothing_stored(relay)
