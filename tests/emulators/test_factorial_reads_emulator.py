"""The Factorial emulator's read endpoints, and the connector's read requests, against Factorial's
OpenAPI document: every page of a listing, each status filter, single records."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest
from openapi_core import OpenAPI

from app.core.catalog import JobQuery
from connectors.base import ConnectionSpec
from connectors.factorial import FactorialConnector, FactorialSettings
from tests.support.emulators import Emulator
from tests.support.openapi import OpenAPIRequest, OpenAPIResponse, load_factorial_openapi

PREFIX = "/api/2026-07-01/resources/"


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return load_factorial_openapi()


async def test_every_listing_page_and_record_matches_openapi(openapi: OpenAPI, factorial: Emulator) -> None:
    checked = 0
    async with httpx.AsyncClient(base_url=factorial.url, headers={"x-api-key": "sandbox"}) as http:
        paths = [
            "ats/job_postings?limit=100",
            *(f"ats/job_postings?status={s}" for s in ("draft", "published", "unlisted", "archived", "cancelled")),
            "ats/job_postings?status=deleted&page=1&limit=3",
            "ats/job_postings/2103",
            "ats/job_postings/2105",  # a draft: no public URL
            "ats/questions?ats_job_posting_ids[]=2002",
            "ats/questions/3003",
            "ats/application_phases/200102",
            "ats/hiring_stages",
            "ats/hiring_stages?ats_application_phase_id=200102",
            "ats/hiring_stages/2",
        ]
        after = ""
        while True:  # every page of the cursor walk
            page = await http.get(
                f"{PREFIX}ats/job_postings", params={"limit": "20", "after_id": after} if after else {"limit": "20"}
            )
            openapi.validate_response(OpenAPIRequest(page.request), OpenAPIResponse(page))
            checked += 1
            meta = page.json()["meta"]
            if not meta["has_next_page"]:
                break
            after = meta["end_cursor"]
        for path in paths:
            response = await http.get(PREFIX + path)
            assert response.status_code == 200, path
            openapi.validate_response(OpenAPIRequest(response.request), OpenAPIResponse(response))
            checked += 1
        draft = (await http.get(PREFIX + "ats/job_postings/2105")).json()
        assert draft["status"] == "draft" and "url" not in draft
        stage = (await http.get(PREFIX + "ats/hiring_stages?ats_application_phase_id=200102")).json()
        assert [s["name"] for s in stage["data"]] == ["screening"]
        for bad in ("status=open", "limit=x"):
            refused = await http.get(f"{PREFIX}ats/job_postings?{bad}")
            assert refused.status_code == 422, bad
        assert (await http.get(PREFIX + "ats/hiring_stages/99")).status_code == 404
    assert checked == 4 + len(paths)  # 63 postings in pages of 20, then each path


async def test_the_connectors_read_requests_match_openapi(openapi: OpenAPI, factorial: Emulator) -> None:
    exchanges: list[httpx.Response] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        exchanges.append(response)

    async with httpx.AsyncClient(event_hooks={"response": [keep]}) as http:
        connector = FactorialConnector(
            ConnectionSpec("acme", "factorial", factorial.url, "sandbox", FactorialSettings()), http
        )
        page = await connector.list_jobs(JobQuery(page_size=10, status="OPEN"))
        await connector.list_jobs(JobQuery(page_size=10, status="OPEN", cursor=page.next_cursor))
        await connector.get_job("2001")
        await connector.list_stages()
        await connector.list_sources()
    paths = set()
    for response in exchanges:
        request = OpenAPIRequest(response.request)
        openapi.validate_request(request)
        openapi.validate_response(request, OpenAPIResponse(response))
        paths.add(urlsplit(str(response.request.url)).path.removeprefix(PREFIX))
    assert {
        "ats/job_postings",
        "ats/job_postings/2001",
        "ats/questions",
        "ats/application_phases",
        "ats/hiring_stages",
        "ats/candidate_sources",
    } <= paths
