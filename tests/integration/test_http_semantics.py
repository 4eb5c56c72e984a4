"""HTTP done right (issue 22, point 7): 405 with Allow, OPTIONS listing every method of a path,
one charset per content type, local refusals as 4xx/501 with a `code` (never 502 "The ATS
refused"), a `code` on every problem+json, and 415 for a body a JSON route was not sent as JSON."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from litestar.routes import HTTPRoute

from connectors.sandbox.flatchr import COMPANY_ID
from tests.support.builders import application, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.inbound import assert_nothing_stored


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator, flatchr: Emulator) -> Relay:
    relay: Relay = make_relay(
        {
            "acme": connection_table("factorial", factorial.url),
            "flat": connection_table("flatchr", flatchr.url, company_id=COMPANY_ID),
        }
    )
    return relay


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


async def test_options_lists_every_method_of_every_path(relay: Relay) -> None:
    """Litestar's own OPTIONS answer knew only the methods registered before it (GET of
    /v1/deliveries/{id}, not DELETE)."""
    app = relay.server.server.config.app
    by_path: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute):
            by_path.setdefault(route.path_format, set()).update(route.methods)
    assert {"DELETE", "GET"} <= by_path["/v1/deliveries/{delivery_id}"]
    for path, methods in by_path.items():
        response = await relay.client.options(concrete(path))
        assert response.status_code == 204, (path, response.text)
        head = {"HEAD"} if "GET" in methods else set()  # answered for every GET (server.HeadAsGet)
        assert set(response.headers["allow"].split(", ")) == methods | {"OPTIONS"} | head, path


async def test_405_says_which_methods_are_allowed(relay: Relay) -> None:
    for method, path, allowed in (
        ("PUT", "/v1/applications", {"POST", "OPTIONS"}),
        ("POST", "/v1/deliveries/dlv_x", {"GET", "HEAD", "DELETE", "OPTIONS"}),
        ("PATCH", "/metrics", {"GET", "HEAD", "OPTIONS"}),
    ):
        response = await relay.client.request(method, path, headers=relay.admin)
        assert response.status_code == 405, (method, path, response.text)
        assert set(response.headers["allow"].split(", ")) == allowed, response.headers
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "PLATFORM.METHOD_NOT_ALLOWED"


async def test_one_charset_per_content_type(relay: Relay) -> None:
    metrics = await relay.client.get("/metrics", headers=relay.admin)
    assert metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        static = await relay.client.get(f"/dashboard/static/{name}")
        assert static.headers["content-type"] == f"{kind}; charset=utf-8"


async def test_a_capability_the_connector_lacks_is_a_404_not_a_502(relay: Relay) -> None:
    """As for the catalog's reads: the ATS was not asked, so no ATS refused (Kombo's code)."""
    response = await relay.client.get("/v1/connections/acme/candidates/123/attachments", headers=relay.admin)
    assert response.status_code == 404, response.text
    assert response.json()["code"] == "INTEGRATION.ACTION_NOT_AVAILABLE"


async def test_the_connectors_own_input_check_is_a_422_not_a_502(relay: Relay) -> None:
    """An id the connector refuses before sending anything: no ATS was asked, none refused."""
    response = await relay.client.get(
        "/v1/connections/flat/candidates/no%20such%20id!/attachments", headers=relay.admin
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "PLATFORM.INPUT_INVALID"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("GET", "/v1/deliveries/dlv_nope", {}, 404),
        ("GET", "/v1/deliveries", {"params": {"limit": "-5"}}, 422),
        ("POST", "/v1/applications", {"content": b"{nope"}, 400),
        ("POST", "/v1/applications", {"json": {"connection_id": "acme"}}, 422),
        ("POST", "/v1/deliveries/dlv_nope/retry", {}, 404),
        ("GET", "/nowhere", {}, 404),
    ],
)
async def test_every_refusal_carries_a_code(
    relay: Relay, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    headers = {**relay.admin, "content-type": "application/json"}
    response = await relay.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert re.fullmatch(r"[A-Z]+\.[A-Z_]+", response.json()["code"]), response.json()


# -- JSON bodies: Content-Type -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "application/x-www-form-urlencoded",  # curl -d without -H
        "text/json",
        "application/json; charset=iso-8859-1",  # JSON is UTF-8 (RFC 8259)
        None,  # a body with no Content-Type is octet-stream (RFC 9110 §8.3), not JSON
    ],
)
async def test_an_application_not_sent_as_json_is_a_415_and_nothing_is_stored(
    relay: Relay, content_type: str | None
) -> None:
    """A valid application body under another type was accepted (202); README: 415 with
    PLATFORM.UNSUPPORTED_MEDIA_TYPE, "the body's content type is not one the route reads"."""
    headers = {**relay.admin, "idempotency-key": "not-json-1"}
    if content_type is not None:
        headers["content-type"] = content_type
    response = await relay.client.post("/v1/applications", content=json.dumps(application()), headers=headers)
    assert response.status_code == 415, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "PLATFORM.UNSUPPORTED_MEDIA_TYPE"
    assert [e["field"] for e in problem["errors"]] == ["Content-Type"], problem
    await assert_nothing_stored(relay)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        'Application/JSON;charset="UTF-8"',
        "application/vnd.applyrelay+json",  # a structured-syntax +json type (RFC 6839)
    ],
)
async def test_every_way_of_saying_json_is_read(relay: Relay, content_type: str) -> None:
    response = await relay.client.post(
        "/v1/applications",
        content=json.dumps(application()).encode(),
        headers={**relay.admin, "content-type": content_type},
    )
    assert response.status_code == 202, response.text


# Every route that reads a JSON body (app/web/deps.py read_body), where the body is the first
# thing it looks at (others answer 404/409 for the path first: a delivery or a file connection).
JSON_ROUTES = [
    ("POST", "/v1/applications", "/v1/applications"),
    ("POST", "/v1/deliveries/retry", "/v1/deliveries/retry"),
    ("POST", "/v1/connections", "/v1/connections"),
    ("POST", "/v1/connect-links", "/v1/connect-links"),
    ("POST", "/v1/connections/acme/secrets/form", "/v1/connections/{connection_id}/secrets/{kind}"),
    ("POST", "/v1/connections/acme/passthrough", "/v1/connections/{connection_id}/passthrough"),
    (
        "POST",
        "/v1/connections/acme/applications/123/stage",
        "/v1/connections/{connection_id}/applications/{application_id}/stage",
    ),
    (
        "POST",
        "/v1/connections/acme/applications/123/attachments",
        "/v1/connections/{connection_id}/applications/{application_id}/attachments",
    ),
    (
        "POST",
        "/v1/connections/flat/candidates/123/result-links",
        "/v1/connections/{connection_id}/candidates/{candidate_id}/result-links",
    ),
    ("POST", "/v1/destinations/hellowork:acme/recover", "/v1/destinations/{destination}/recover"),
    ("POST", "/v1/erasure", "/v1/erasure"),
    ("POST", "/v1/subject-access", "/v1/subject-access"),
]


@pytest.mark.parametrize(("method", "path", "template"), JSON_ROUTES, ids=[r[1] for r in JSON_ROUTES])
async def test_every_json_route_refuses_a_body_that_is_not_json(
    relay: Relay, method: str, path: str, template: str
) -> None:
    """The same rule on every JSON route, before the body is read or anything done: 415 for
    another declared type or a body without one, documented in the OpenAPI document."""
    before = sorted(await relay.redis.keys("*"))
    for headers in ({"content-type": "text/plain"}, {"content-type": "application/xml"}, {}):
        response = await relay.client.request(
            method, path, content=b'{"email": "ana@example.org"}', headers={**relay.admin, **headers}
        )
        assert response.status_code == 415, (headers, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "PLATFORM.UNSUPPORTED_MEDIA_TYPE"
        assert [e["field"] for e in response.json()["errors"]] == ["Content-Type"]
    assert sorted(await relay.redis.keys("*")) == before  # nothing stored, queued or audited
    document = (await relay.client.get("/schema/openapi.json")).json()
    assert "415" in document["paths"][template][method.lower()]["responses"]


async def test_a_request_without_a_body_needs_no_content_type(relay: Relay) -> None:
    """Nothing to describe: a body-less bulk retry is refused for what it says (no filter), not
    for its headers."""
    response = await relay.client.post("/v1/deliveries/retry", headers=relay.admin)
    assert response.status_code == 422 and response.json()["code"] == "PLATFORM.FILTER_REQUIRED", response.text
