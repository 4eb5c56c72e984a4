"""Connect links and the connect page in tests: make a link through the API, read the page's form
as a browser would (the CSRF field, the cookie httpx keeps), submit it url-encoded."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.sandbox.flatchr import COMPANY_ID
from tests.support.builders import PDF_BYTES, b64
from tests.support.harness import Relay

BROWSER = {"accept": "text/html,application/xhtml+xml", "accept-language": "en"}
FLATCHR_JOB = "Vq5r6pYxam9AmMvP"  # the emulator's seeded vacancy


async def make_link(relay: Relay, **body: Any) -> httpx.Response:
    return await relay.client.post("/v1/connect-links", json=body, headers=relay.admin)


async def flatchr_link(relay: Relay, base_url: str, connection_id: str = "acme-flatchr", **extra: Any) -> str:
    """A link for a new Flatchr connection on the emulator at `base_url`; its path."""
    response = await make_link(
        relay,
        connection_id=connection_id,
        connector="flatchr",
        base_url=base_url,
        settings={"company_id": COMPANY_ID},
        **extra,
    )
    assert response.status_code == 201, response.text
    return urlsplit(response.json()["url"]).path


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found[1]


def browser(relay: Relay) -> httpx.AsyncClient:
    """A client of its own (its own cookie jar), as one employer's browser."""
    return httpx.AsyncClient(base_url=relay.server.url, timeout=30, headers=BROWSER)


async def submit(client: httpx.AsyncClient, path: str, fields: dict[str, str], *, csrf: str | None) -> httpx.Response:
    data = dict(fields)
    if csrf is not None:
        data["csrf"] = csrf
    return await client.post(path, data=data)


def flatchr_application(connection_id: str) -> dict[str, Any]:
    """An application to the Flatchr emulator's seeded vacancy, with the CV Flatchr requires."""
    return {
        "connection_id": connection_id,
        "candidate": {"first_name": "Jeanne", "last_name": "Martin", "email_address": "jeanne.martin@example.fr"},
        "application": {"job_id": FLATCHR_JOB},
        "screening_question_answers": [
            {"question_id": "q7Hd2LmQx9aB3cTe", "answer": "L'équipe"},
            {"question_id": "q2Kp8ZrW4nYv6JsU", "answer": False},
        ],
        "attachments": [{"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(PDF_BYTES)}],
    }


async def seen_by_workers(relay: Relay, connection_id: str, timeout: float = 5.0) -> None:
    """Until every in-process worker's registry holds the connection (they poll each second)."""
    deadline = time.monotonic() + timeout
    while not all(connection_id in rt.config.connections for rt in relay.worker_runtimes):
        assert time.monotonic() < deadline, f"the workers never saw {connection_id}"
        await asyncio.sleep(0.1)
