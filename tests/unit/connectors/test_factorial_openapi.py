"""The Factorial connector's requests, and the emulator's answers to them, against Factorial's OpenAPI
document (multipart bodies part by part: openapi-core cannot type binary parts)."""

from __future__ import annotations

import email
from urllib.parse import urlsplit

import httpx
import pytest
from openapi_core import OpenAPI

from app.core.model import AttachmentRef, Candidate, JobRef, Origin, Source, StoredAnswer, StoredApplication
from connectors.base import ConnectionSpec, StepContext
from connectors.factorial import FactorialConnector, FactorialSettings
from tests.support.builders import PDF_BYTES
from tests.support.emulators import Emulator
from tests.support.openapi import OpenAPIRequest, OpenAPIResponse, load_factorial_openapi


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return load_factorial_openapi()


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
        connector = FactorialConnector(
            ConnectionSpec("acme", "factorial", factorial.url, "sandbox", FactorialSettings()), http
        )
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
        request = OpenAPIRequest(response.request)
        if request.content_type.startswith("multipart/form-data"):
            _check_multipart(openapi, response.request)  # openapi-core cannot type binary parts
        else:
            openapi.validate_request(request)
        openapi.validate_response(request, OpenAPIResponse(response))
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
