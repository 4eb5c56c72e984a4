"""The Factorial emulator against Factorial's OpenAPI document: list, single-resource and error
answers have the documented shapes, and cursor pagination works."""

from __future__ import annotations

import httpx
import pytest
from openapi_core import OpenAPI

from tests.support.emulators import Emulator
from tests.support.openapi import OpenAPIRequest, OpenAPIResponse, load_factorial_openapi


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return load_factorial_openapi()


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
            request = OpenAPIRequest(response.request)
            openapi.validate_response(request, OpenAPIResponse(response))
        unauthorized = await http.get("/api/2026-07-01/resources/ats/job_postings", headers={"x-api-key": "nope"})
        assert unauthorized.status_code == 401
        page = (await http.get("/api/2026-07-01/resources/ats/application_phases?limit=2")).json()
        assert page["meta"]["has_next_page"] and len(page["data"]) == 2
        after = page["meta"]["end_cursor"]
        path = f"/api/2026-07-01/resources/ats/application_phases?limit=2&after_id={after}"
        following = (await http.get(path)).json()
        assert following["data"][0]["id"] != page["data"][-1]["id"]
