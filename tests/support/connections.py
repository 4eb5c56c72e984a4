"""Helpers of the connections API tests (tests/integration/connections/): make a connection over
HTTP and wait until the web's registry takes applications for it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from tests.support.harness import Relay

# Base URLs fuzzing found taken or crashing (urlsplit, `.port`, the IDNA codec, httpx.InvalidURL
# in the credential check); "{ats}" is the emulator's URL, so only the NUL is wrong in that one.
UNUSABLE_BASE_URLS = {
    "bracketed non-IP host": "http://[zz]/",
    "port out of range": "http://e.com:99999",
    "label over 63": "https://" + "a" * 300 + ".com",
    "NUL in the path": "{ats}/\u0000",
}


async def create(relay: Relay, body: dict[str, Any]) -> httpx.Response:
    return await relay.client.post("/v1/connections", json=body, headers=relay.admin)


async def post_until_accepted(relay: Relay, payload: dict[str, Any], timeout: float = 5.0) -> str:
    """POST the application until the web takes it (its registry polls each second): its id."""
    deadline = time.monotonic() + timeout
    while True:
        response = await relay.post(payload)
        if response.status_code == 202 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])
