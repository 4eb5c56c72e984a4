"""HTTP done right (issue 22, point 7): 405 with Allow, OPTIONS listing every method of a path,
one charset per content type, local refusals as 4xx/501 with a `code` (never 502 "The ATS
refused"), and a `code` on every problem+json."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar.routes import HTTPRoute

from connectors.sandbox.flatchr import COMPANY_ID
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay


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
        assert set(response.headers["allow"].split(", ")) == methods | {"OPTIONS"}, path


async def test_405_says_which_methods_are_allowed(relay: Relay) -> None:
    for method, path, allowed in (
        ("PUT", "/v1/applications", {"POST", "OPTIONS"}),
        ("POST", "/v1/deliveries/dlv_x", {"GET", "DELETE", "OPTIONS"}),
        ("PATCH", "/metrics", {"GET", "OPTIONS"}),
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
