"""Logs carry no PII; the connector's requests and the emulator's answers match Factorial's OpenAPI."""

from __future__ import annotations

import base64
import email
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from app.core.model import AttachmentRef, Candidate, JobRef, Origin, Source, StoredAnswer, StoredApplication
from app.log import configure
from connectors.base import ConnectionSpec, StepContext
from connectors.factorial import FactorialConnector
from tests.support.builders import PDF_BYTES, application, b64, connection_table
from tests.support.emulators import Emulator

SPEC = Path(__file__).resolve().parents[4] / "shared" / "specs" / "factorial-ats-2026-07-01.yaml"
SPEC_HOST = "https://api.factorialhr.com"


async def test_logs_of_a_full_delivery_hold_no_pii(make_relay: Any, factorial: Emulator) -> None:
    stream = io.StringIO()
    configure("DEBUG", stream=stream)
    try:
        relay = make_relay({"acme": connection_table("factorial", factorial.url)})
        await relay.start_worker()
        factorial.faults(script=["error"])  # a retry too, so error paths log as well
        body = application()
        delivery_id = (await relay.post(body)).json()["id"]
        await relay.wait_for(delivery_id, "retry_scheduled")
        await relay.fast_forward(60)
        await relay.wait_for(delivery_id, "delivered")
    finally:
        configure("WARNING")
    logs = stream.getvalue()
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    steps = [e for e in events if e.get("event") == "delivery.step"]
    assert steps and all(
        {"delivery_id", "connection", "connector", "step", "attempt", "status", "latency_ms"} <= e.keys() for e in steps
    )
    assert any(e.get("event") == "delivery.retry_scheduled" for e in events)
    candidate = body["candidate"]
    for secret in (
        candidate["first_name"],
        candidate["last_name"],
        candidate["email_address"],
        candidate["phone_number"],
        "Zoë",
        "zoe.vdb",
        "612 345",
        b64(PDF_BYTES)[:40],
        "Because relays should never lose a CV.",
    ):
        assert secret not in logs, secret


# -- OpenAPI conformance -----------------------------------------------------------------------


class _OpenAPIRequest:
    """openapi-core's request protocol over an httpx request, rebased on the spec's server."""

    def __init__(self, request: httpx.Request) -> None:
        url = urlsplit(str(request.url))
        self.host_url = SPEC_HOST
        self.path = url.path
        self.method = request.method.lower()
        query = ImmutableMultiDict(parse_qsl(url.query, keep_blank_values=True))
        self.parameters = RequestParameters(query=query, header=Headers(dict(request.headers)), cookie={})
        self.content_type = request.headers.get("content-type", "application/json")  # with its boundary
        self.body = request.content if request.method in ("POST", "PUT") else None

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


class _OpenAPIResponse:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.data = response.content
        self.content_type = response.headers.get("content-type", "application/json").split(";")[0]
        self.headers = Headers(dict(response.headers))


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    if not SPEC.exists():
        pytest.skip("Factorial's OpenAPI document is not in ../shared/specs")
    return OpenAPI.from_dict(yaml.safe_load(SPEC.read_text()))


async def test_connector_requests_and_emulator_answers_match_factorial_openapi(
    openapi: OpenAPI, factorial: Emulator
) -> None:
    exchanges: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        exchanges.append(response)

    cv = AttachmentRef(
        index=0, name="cv.pdf", type="CV", content_type="application/pdf", sha256="ab" * 32, size=len(PDF_BYTES)
    )
    app = StoredApplication(
        connection_id="acme",
        candidate=Candidate(
            first_name="Ana",
            last_name="Ruiz",
            email_address="ana@example.org",
            phone_number="+34 600 000 000",
            gender="FEMALE",
        ),
        application=JobRef(job_id="2001", stage_id="200102"),
        origin=Origin(channel="api", received_at=0.0, board="indeed"),
        screening_question_answers=[
            StoredAnswer("3001", "text"),
            StoredAnswer("3003", "No"),
            StoredAnswer("3004", ["Go"]),
        ],
        attachments=[cv],
        source=Source(name="Indeed"),
    )

    async def read_request(request: httpx.Request) -> None:
        request.read()  # multipart bodies stream; keep them to validate

    async with httpx.AsyncClient(event_hooks={"request": [read_request], "response": [keep]}) as http:
        connector = FactorialConnector(ConnectionSpec("acme", "factorial", factorial.url, "sandbox", {}), http)
        checkpoints: dict[str, str] = {}

        async def load(_: AttachmentRef) -> bytes:
            return PDF_BYTES

        ctx = StepContext(application=app, checkpoints=checkpoints, load_attachment=load)
        for step in connector.plan(app):
            checkpoints[step.name] = await step.run(ctx)
        await connector.passthrough("GET", "ats/job_postings", {"status": "published"}, None)

    checked = 0
    for response in exchanges:
        if not urlsplit(str(response.request.url)).path.startswith("/api/2026-07-01/"):
            continue
        request = _OpenAPIRequest(response.request)
        if request.content_type.startswith("multipart/form-data"):
            _check_multipart(openapi, response.request)  # openapi-core cannot type binary parts
        else:
            openapi.validate_request(request)
        openapi.validate_response(request, _OpenAPIResponse(response))
        checked += 1
    assert checked >= 12
    paths = {(r.request.method, urlsplit(str(r.request.url)).path.split("/resources/")[1]) for r in exchanges}
    assert {
        ("POST", "ats/candidates"),
        ("POST", "ats/applications"),
        ("POST", "ats/answers"),
        ("POST", "ats/messages"),
        ("GET", "ats/candidates"),
    } <= paths


def _check_multipart(openapi: OpenAPI, request: httpx.Request) -> None:
    """Multipart bodies against the spec: every required part present, enums respected, files binary."""
    path = urlsplit(str(request.url)).path
    operation = openapi.spec / "paths" / path / request.method.lower()
    schema = (operation / "requestBody" / "content" / "multipart/form-data" / "schema").read_value()
    message = email.message_from_bytes(
        b"Content-Type: " + request.headers["content-type"].encode() + b"\r\n\r\n" + request.content
    )
    parts: dict[str, list[bytes]] = {}
    for part in message.get_payload():
        parts.setdefault(part.get_param("name", header="content-disposition"), []).append(part.get_payload(decode=True))
    assert set(schema["required"]) <= parts.keys(), set(schema["required"]) - parts.keys()
    assert set(parts) <= set(schema["properties"]), set(parts) - set(schema["properties"])
    for name, values in parts.items():
        prop = schema["properties"][name]
        if "enum" in prop:
            assert all(v.decode() in prop["enum"] for v in values), name
        if prop.get("type") == "boolean":
            assert all(v in (b"true", b"false") for v in values), name


async def test_emulator_list_and_error_answers_match_openapi(openapi: OpenAPI, factorial: Emulator) -> None:
    async with httpx.AsyncClient(base_url=factorial.url, headers={"x-api-key": "sandbox"}) as http:
        for path in (
            "ats/job_postings",
            "ats/questions?ats_job_posting_ids[]=2001",
            "ats/candidate_sources",
            "ats/application_phases?limit=2",
            "ats/applications",
            "ats/answers",
            "ats/messages?last_per_conversation=false",
            "api_public/credentials",
            "ats/job_postings/2001",
            "ats/candidate_sources/4001",
        ):
            response = await http.get(f"/api/2026-07-01/resources/{path}")
            assert response.status_code == 200, path
            request = _OpenAPIRequest(response.request)
            openapi.validate_response(request, _OpenAPIResponse(response))
        unauthorized = await http.get("/api/2026-07-01/resources/ats/job_postings", headers={"x-api-key": "nope"})
        assert unauthorized.status_code == 401
        page = (await http.get("/api/2026-07-01/resources/ats/application_phases?limit=2")).json()
        assert page["meta"]["has_next_page"] and len(page["data"]) == 2
        after = page["meta"]["end_cursor"]
        path = f"/api/2026-07-01/resources/ats/application_phases?limit=2&after_id={after}"
        following = (await http.get(path)).json()
        assert following["data"][0]["id"] != page["data"][-1]["id"]


def test_pdf_fixture_is_a_pdf() -> None:
    assert base64.b64decode(b64(PDF_BYTES)).startswith(b"%PDF-")


async def test_an_ats_echoing_candidate_data_never_reaches_the_dead_letter(
    make_relay: Any, factorial: Emulator
) -> None:
    """The engine scrubs recorded errors with the application's own values, whatever the connector."""
    from connectors.base import PermanentError
    from connectors.factorial import FactorialConnector as Base

    class Echoing(Base):
        async def _candidate(self, ctx: Any) -> str:
            c = ctx.application.candidate
            raise PermanentError(
                f"candidate {c.first_name} {c.last_name} <{c.email_address}> {c.phone_number} already exists",
                status=422,
            )

    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    await relay.start_worker()
    runtime = relay.worker_runtimes[-1]
    runtime.connectors._connectors["acme"] = Echoing(runtime.config.connections["acme"].spec(), runtime.http)
    delivery_id = (await relay.post(application())).json()["id"]
    record = await relay.wait_for(delivery_id, "failed")
    text = json.dumps(record)
    for secret in ("Zoë", "Van der Berg", "zoe.vdb", "612 345 678"):
        assert secret not in text, secret
    assert "already exists" in record["last_error"]["message"]
