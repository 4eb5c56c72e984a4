"""What schemathesis found against the relay (tests/integration/test_openapi_schemathesis.py),
pinned one by one with the real relay and emulator."""

from __future__ import annotations

from typing import Any

from connectors.sandbox.flatchr import COMPANY_ID
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


async def test_a_candidate_id_the_connector_refuses_is_a_422_naming_it_not_a_502(
    make_relay: Any, flatchr: Emulator
) -> None:
    """Flatchr's connector refuses an id that is not a Flatchr id before asking the ATS: the
    caller's input is at fault, not the ATS."""
    relay = make_relay({"acme": connection_table("flatchr", flatchr.url, company_id=COMPANY_ID)})
    response = await relay.client.get("/v1/connections/acme/candidates/%C3%A9%7F/attachments", headers=relay.admin)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"] == [{"field": "candidate_id", "message": "candidate_id is not a Flatchr id"}]
    assert not flatchr.records()["requests"]  # nothing reached the ATS
