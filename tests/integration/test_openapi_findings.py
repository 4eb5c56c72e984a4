"""What schemathesis found against the relay (tests/integration/test_openapi_schemathesis.py),
pinned one by one with the real relay and emulator."""

from __future__ import annotations

from typing import Any

from tests.support.builders import connection_table
from tests.support.emulators import Emulator


async def test_candidate_files_on_an_ats_without_that_read_are_a_404_not_a_502(
    make_relay: Any, factorial: Emulator
) -> None:
    """Factorial has no candidate-files read: the ATS did not fail, so no 502 (a server error)."""
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    response = await relay.client.get("/v1/connections/acme/candidates/42/attachments", headers=relay.admin)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "Not supported by the target ATS"
    assert "factorial" in response.json()["detail"]
