"""Flatchr, OTYS and Laura emulators: a write whose documented fields have the wrong type is
refused as each API refuses input (Flatchr 400, OTYS a JSON-RPC validation error, Laura 422), never
a 500 and never stored (issue 22, point 8)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.support.emulators import Emulator

PDF = base64.b64encode(b"%PDF-1.4\n% test\n").decode()


def _stored(emulator: Emulator) -> dict[str, Any]:
    """The emulator's records (its lists and tables), without its request counters."""
    return {k: v for k, v in emulator.records().items() if isinstance(v, list | dict) and k != "calls"}


def flatchr_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "vacancy": "bx8kql2mn4pr7stz-account-executive",
        "firstname": "Ana",
        "lastname": "Lopez",
        "email": "ana@example.com",
        "token": "sandbox",
        "type": "document",
        "resume": {"data": PDF, "fileName": "cv.pdf", "contentType": "application/pdf"},
    }
    return {**body, **overrides}


@pytest.mark.parametrize(
    "body",
    [
        flatchr_body(resume={"data": PDF, "fileName": "cv.pdf", "contentType": ["application/pdf"]}),
        flatchr_body(resume={"data": PDF, "fileName": "cv.pdf", "contentType": {"a": 1}}),
        flatchr_body(phone=True),
        flatchr_body(source_id=["x"]),
    ],
    ids=["content type list", "content type object", "phone boolean", "source id list"],
)
def test_flatchr_refuses_wrong_types_with_a_400(flatchr: Emulator, body: dict[str, Any]) -> None:
    before = _stored(flatchr)
    response = flatchr.http.post("/vacancy/candidate/json", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["statusCode"] == 400
    assert _stored(flatchr) == before


def test_flatchr_search_filters_are_strings(flatchr: Emulator) -> None:
    url = "/company/Wy3EOp2NP3p1KMq8/search/applicants"
    headers = {"Authorization": "Bearer sandbox"}
    assert flatchr.http.post(url, json={"email": "ana@example.com"}, headers=headers).status_code == 200
    for wrong in ({"email": ["ana@example.com"]}, {"vacancy": 42}):
        assert flatchr.http.post(url, json=wrong, headers=headers).status_code == 400, wrong


def _person(**person: Any) -> dict[str, Any]:
    return {"Person": {"firstName": "A", "lastName": "B", "emailPrimary": "a@example.nl", **person}}


@pytest.mark.parametrize(
    "candidate",
    [
        _person(gender=["f"]),
        _person(firstName=42),
        _person(AddressPrimary="Delft"),
        _person(AddressPrimary={"city": ["Delft"]}),
        _person(PhoneNumbers=["+31 6"]),
        _person(PhoneNumbers={"1": {"type": "primary", "phoneNumber": 316}}),
        {**_person(), "portalId": {"uid": "x"}},
    ],
    ids=["gender list", "first name number", "address text", "city list", "phones list", "phone number", "portal"],
)
def test_otys_refuses_wrong_types_with_a_validation_error(otys: Emulator, candidate: dict[str, Any]) -> None:
    def rpc(method: str, *params: Any) -> httpx.Response:
        return otys.http.post(
            "/jservice.php", json={"jsonrpc": "2.0", "method": method, "params": list(params), "id": 1}
        )

    session = rpc("loginByUid", "sandbox").json()["result"]
    before = _stored(otys)
    response = rpc("Otys.Services.CandidateService.add", session, candidate)
    assert response.status_code == 200, response.text  # OWS answers errors in an HTTP 200
    assert response.json()["error"]["message"].startswith("Invalid value for field"), response.text
    assert _stored(otys) == before


@pytest.mark.parametrize(
    "extra",
    [{"gender": ["female"]}, {"gender": {"a": 1}}, {"phone": 358}, {"address": {"city": 42}}],
    ids=["gender list", "gender object", "phone number", "city number"],
)
def test_laura_refuses_wrong_types_with_a_422(laura: Emulator, extra: dict[str, Any]) -> None:
    before = _stored(laura)
    response = laura.http.post(
        "/api/v1.2/candidates",
        json={"first_name": "Aino", "last_name": "Virtanen", "email": "aino@example.fi", **extra},
        headers={"Authorization": "Bearer sandbox"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert _stored(laura) == before
