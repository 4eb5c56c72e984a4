"""The Factorial emulator against Factorial's OpenAPI document: list, single-resource and error
answers have the documented shapes, and cursor pagination works; write bodies the document refuses
(wrong types, null, values outside an enum, required properties missing) are 422 and store
nothing; every documented filter of the written resources' lists is implemented or a 400."""

from __future__ import annotations

from typing import Any

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


# -- issue 22, point 8: as strict as the document ---------------------------------------------

PREFIX = "/api/2026-07-01/resources/"
WRITES = [
    ("POST", "ats/candidates"),
    ("POST", "ats/applications"),
    ("PUT", "ats/applications/{id}"),
    ("POST", "ats/applications/move_to_phase"),
    ("POST", "ats/answers"),
]


def _body_schema(openapi: OpenAPI, method: str, path: str) -> dict[str, Any]:
    operation = openapi.spec / "paths" / (PREFIX + path) / method.lower()
    schema: dict[str, Any] = (operation / "requestBody" / "content" / "application/json" / "schema").read_value()
    return schema


def _wrong_values(prop: dict[str, Any]) -> list[Any]:
    """Values the property's schema refuses: another type, null (nothing is nullable), a value
    outside its enum."""
    wrong: list[Any] = [None, {"x": 1}, *(["not-in-the-enum"] if "enum" in prop else [])]
    return [*wrong, {"string": 42, "boolean": "true", "array": "a"}[prop["type"]]]


async def _valid_bodies(http: httpx.AsyncClient) -> dict[str, tuple[str, dict[str, Any]]]:
    """A valid body per write endpoint (with every property the document lists), on fresh records."""
    candidate = await http.post(
        PREFIX + "ats/candidates", json={"first_name": "Ana", "last_name": "Ruiz", "company_id": "100001"}
    )
    application = await http.post(
        PREFIX + "ats/applications", json={"ats_job_posting_id": "2001", "ats_candidate_id": candidate.json()["id"]}
    )
    cid, aid = candidate.json()["id"], application.json()["id"]
    return {
        "ats/candidates": (
            PREFIX + "ats/candidates",
            {
                "first_name": "Bea",
                "last_name": "Soto",
                "email": "bea@example.org",
                "company_id": "100001",
                "talent_pool": True,
                "consent_given_at": "2026-07-01T10:00:00Z",
                "source": "linkedin",
                "medium": "web",
                "phone_number": "+34 600 000 001",
                "personal_url": "https://bea.example.org",
                "gender": "female",
            },
        ),
        "ats/applications": (
            PREFIX + "ats/applications",
            {
                "author_id": "1",
                "author_type": "company",
                "phone": "+34 600 000 001",
                "ats_candidate_id": cid,
                "ats_job_posting_id": "2002",
                "ats_application_phase_id": "200201",
                "consent_to_talent_pool": False,
                "cover_letter": "Dear team",
                "source": "linkedin",
                "medium": "web",
                "answers": [],
            },
        ),
        "ats/applications/{id}": (
            f"{PREFIX}ats/applications/{aid}",
            {
                "author_id": "1",
                "author_type": "user",
                "id": aid,
                "qualified": False,
                "ats_application_phase_id": "200102",
                "disqualified_reason": "other",
                "phone": "+34 600 000 002",
                "ats_rejection_reason_id": "1",
                "source": "indeed",
                "source_id": "4002",
            },
        ),
        "ats/applications/move_to_phase": (
            PREFIX + "ats/applications/move_to_phase",
            {"id": aid, "ats_application_phase_id": "200103"},
        ),
        "ats/answers": (
            PREFIX + "ats/answers",
            {
                "ats_question_id": "3002",
                "ats_application_id": aid,
                "value": "55000",
                "original_question_label": "Your expected salary",
                "original_question_type": "text",
            },
        ),
    }


def _stored(factorial: Emulator) -> dict[str, Any]:
    return {k: v for k, v in factorial.records().items() if k != "requests"}


async def test_malformed_write_bodies_are_422_and_store_nothing(openapi: OpenAPI, factorial: Emulator) -> None:
    async with httpx.AsyncClient(base_url=factorial.url, headers={"x-api-key": "sandbox"}) as http:
        bodies = await _valid_bodies(http)
        refused = 0
        for method, path in WRITES:
            url, valid = bodies[path]
            schema = _body_schema(openapi, method, path)
            assert set(valid) == set(schema["properties"]), path  # every documented property is exercised
            openapi.validate_request(OpenAPIRequest(http.build_request(method, url, json=valid)))
            malformed = [
                {**valid, name: wrong} for name, prop in schema["properties"].items() for wrong in _wrong_values(prop)
            ]
            malformed += [{k: v for k, v in valid.items() if k != name} for name in schema.get("required", [])]
            before = _stored(factorial)
            for body in malformed:
                request = http.build_request(method, url, json=body)
                with pytest.raises(Exception):  # the document refuses it, so must the emulator
                    openapi.validate_request(OpenAPIRequest(request))
                response = await http.send(request)
                assert response.status_code == 422, (method, path, body, response.text)
                assert response.json()["errors"]["errors"], response.text
                assert _stored(factorial) == before, (method, path, body)
                refused += 1
            response = await http.request(method, url, json=valid)
            assert response.status_code in (200, 201), (path, response.text)
            openapi.validate_response(OpenAPIRequest(response.request), OpenAPIResponse(response))
        assert refused > 130


async def test_a_malformed_message_form_is_422(factorial: Emulator) -> None:
    async with httpx.AsyncClient(base_url=factorial.url, headers={"x-api-key": "sandbox"}) as http:
        bodies = await _valid_bodies(http)
        aid = bodies["ats/answers"][1]["ats_application_id"]
        cid = factorial.records()["applications"][0]["ats_candidate_id"]
        form = {
            "content": "CV",
            "sent_by_id": cid,
            "sent_by_type": "candidate",
            "ats_application_id": aid,
            "topic": "cv",
            "send_as_corporate_email": "false",
        }
        files = {"attachments[]": ("cv.pdf", b"%PDF-1.4 x", "application/pdf")}
        for name, wrong in (("sent_by_type", "robot"), ("send_as_corporate_email", "maybe")):
            before = _stored(factorial)
            response = await http.post(PREFIX + "ats/messages", data={**form, name: wrong}, files=files)
            assert response.status_code == 422, (name, response.text)
            assert _stored(factorial) == before
        response = await http.post(PREFIX + "ats/messages", data=form, files=files)
        assert response.status_code == 201, response.text


LISTS = ["ats/candidates", "ats/applications", "ats/answers", "ats/messages"]


async def test_every_documented_filter_is_implemented_or_a_400(openapi: OpenAPI, factorial: Emulator) -> None:
    async with httpx.AsyncClient(base_url=factorial.url, headers={"x-api-key": "sandbox"}) as http:
        await _valid_bodies(http)  # a candidate, two applications, so that a filter has something to drop
        for path in LISTS:
            base = {"last_per_conversation": "false"} if path == "ats/messages" else {}
            everything = (await http.get(PREFIX + path, params=base)).json()["data"]
            parameters = (openapi.spec / "paths" / (PREFIX + path) / "get").read_value().get("parameters", [])
            for parameter in parameters:
                name, kind = parameter["name"], parameter["schema"].get("type")
                if name == "last_per_conversation":
                    continue
                values = ["true", "false"] if kind == "boolean" else ["0"]
                found = []
                for value in values:
                    response = await http.get(PREFIX + path, params={**base, name: value})
                    if response.status_code == 400:
                        break
                    assert response.status_code == 200, (path, name, response.text)
                    openapi.validate_response(OpenAPIRequest(response.request), OpenAPIResponse(response))
                    found += response.json()["data"]
                else:
                    # implemented: "0" matches nothing; true and false split the records
                    expected = everything if kind == "boolean" else []
                    assert sorted(r["id"] for r in found) == sorted(r["id"] for r in expected), (path, name)
                    continue
                assert response.json()["errors"], (path, name)
            if path == "ats/applications":
                bad = await http.get(PREFIX + path, params={"qualified": "maybe"})
                assert bad.status_code == 400, bad.text
