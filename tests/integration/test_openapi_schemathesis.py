"""The OpenAPI document tried as a client would (app/web/openapi.py): schemathesis reads
/schema/openapi.json from a running relay (real Redis, a worker, one connection per ATS emulator
over HTTP, every inbound secret on the Factorial one) and sends generated requests, valid and
invalid, to every operation with an admin token (and the boards' signatures, `BoardSigner`); each
answer must be no 5xx, a documented status, a documented content type and match the documented
schema. Bounded: a few examples per
operation and mode, a deadline each."""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections import defaultdict
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.intake.boards import forms, indeed, webhooks
from connectors.sandbox.flatchr import COMPANY_ID
from tests.support.builders import application, connection_table
from tests.support.emulators import EmulatorFactory
from tests.support.harness import ADMIN_TOKEN, Relay
from tests.support.inbound import FORM_TOKEN, INDEED_SECRET, inbound_connection, inbound_env, webhook_headers

pytestmark = pytest.mark.slow

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 15  # per operation and generation mode: 37 operations x 2 modes, ~40 s on 2 cores
DEADLINE_MS = 10_000  # one request and its checks (the ATS calls time out at 3 s): room on a loaded CI
PATH_PARAM = re.compile(r"{(\w+)}")


@pytest.fixture
def relay(make_relay: Any, emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch) -> Relay:
    """One connection per ATS: the routes that ask the ATS (catalog, passthrough, files) ask each."""
    inbound_env(monkeypatch)
    return make_relay(
        {
            "acme": inbound_connection(emulator("factorial").url),
            "flatchr": connection_table("flatchr", emulator("flatchr").url, company_id=COMPANY_ID),
            "otys": connection_table("otys", emulator("otys").url),
            "laura": connection_table("laura", emulator("laura").url),
        }
    )


async def test_every_operation_answers_as_documented(relay: Relay) -> None:
    await relay.start_worker()  # /ready answers 200 only with a worker's heartbeat
    accepted = await relay.post(application())
    assert accepted.status_code == 202, accepted.text
    delivery_id = accepted.json()["id"]
    known = [{"connection_id": "acme", "delivery_id": delivery_id, "job_id": "2001"}]
    known += [{"connection_id": c, "delivery_id": delivery_id} for c in ("flatchr", "otys", "laura")]
    schema = schemathesis.openapi.from_url(f"{relay.server.url}/schema/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30

    seen: dict[str, set[int]] = defaultdict(set)
    started = time.monotonic()
    failures = await asyncio.to_thread(_run_all, operations, relay.server.url, known, seen)
    elapsed = time.monotonic() - started
    print(f"schemathesis: {len(operations)} operations in {elapsed:.1f} s: {dict(seen)}")
    assert not failures, "\n\n".join(failures)
    # the success bodies were checked too, not only the refusals
    assert 202 in seen["POST /v1/applications"] and 422 in seen["POST /v1/applications"]
    assert 200 in seen["GET /v1/deliveries/{delivery_id}"] and 404 in seen["GET /v1/deliveries/{delivery_id}"]
    assert 200 in seen["GET /v1/deliveries"] and 200 in seen["GET /v1/connections"]
    # signed bodies reach the adapters: refused for what they say (a job the ATS lacks, a bad field)
    assert {404, 422} & seen["POST /inbound/indeed/{connection_id}"]
    assert {404, 422} & seen["POST /inbound/webhooks/{connection_id}"]


def _run_all(operations: list[Any], base_url: str, known: list[dict[str, str]], seen: dict[str, set[int]]) -> list[str]:
    failures = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _run(operation, mode, base_url, known, seen)
            except Unsatisfiable:  # nothing to make invalid (no parameters, no body): positive only
                assert mode is GenerationMode.NEGATIVE, operation.label
            except (Exception, BaseExceptionGroup) as exc:  # every operation's failures, then fail once
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


def _run(
    operation: Any, mode: GenerationMode, base_url: str, known: list[dict[str, str]], seen: dict[str, set[int]]
) -> None:
    """Random path parameters (mostly unknown: 404s), and the relay's own ids (the real work):
    each connection, the stored delivery, Factorial's job 2001; for intake, also an application
    the emulator's job takes (the 202)."""
    names = PATH_PARAM.findall(operation.path)
    cases = operation.as_strategy(generation_mode=mode)
    ours = {tuple(sorted((k, v) for k, v in ids.items() if k in names)) for ids in known}
    for fixed in sorted(ours):
        if fixed:
            cases = st.one_of(cases, operation.as_strategy(generation_mode=mode, path_parameters=dict(fixed)))
    if operation.label == "POST /v1/applications" and mode is GenerationMode.POSITIVE:
        cases = st.one_of(cases, operation.as_strategy(body=application()))

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES,
        deadline=DEADLINE_MS,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,  # the same cases in every run: a failure reproduces
    )
    def check(case: Any) -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with requests.Session() as session:
            session.auth = BoardSigner()
            response = case.call_and_validate(base_url=base_url, headers=headers, session=session, checks=CHECKS)
        seen[operation.label].add(response.status_code)

    check()


class BoardSigner(requests.auth.AuthBase):
    """Signs what is sent to a board's route as the board would (Indeed's HMAC, Standard Webhooks,
    the form token) when the case carries no such header of its own, so generated bodies reach
    the adapters instead of all stopping at 401; a case's own (wrong) header still gets its 401."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        path = urlsplit(request.url or "").path
        body = request.body.encode() if isinstance(request.body, str) else request.body or b""
        if path.startswith("/inbound/indeed/") and indeed.SIGNATURE_HEADER not in request.headers:
            request.headers[indeed.SIGNATURE_HEADER] = indeed.sign(body, INDEED_SECRET)
        elif path.startswith("/inbound/webhooks/") and not any(h in request.headers for h in webhooks.HEADERS):
            try:
                signed = webhook_headers(body, msg_id=f"msg_{hashlib.sha256(body).hexdigest()[:16]}")
            except UnicodeDecodeError:  # Standard Webhooks signs text
                return request
            request.headers.update({k: v for k, v in signed.items() if k in webhooks.HEADERS})
        elif path.startswith("/inbound/forms/") and forms.TOKEN_HEADER not in request.headers:
            request.headers[forms.TOKEN_HEADER] = FORM_TOKEN
        return request
