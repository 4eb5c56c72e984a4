"""The OpenAPI document (app/web/openapi.py) as /schema/openapi.json serves it: every route of the
app but the dashboard's pages, with its methods; the request bodies are msgspec's schemas of the
Structs the handlers decode; every refusal is the shared problem+json schema with Kombo's codes;
bearer auth on the routes behind a token; a valid OpenAPI 3.1 document, public."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar, Request, get, post
from litestar.openapi import ResponseSpec
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from openapi_spec_validator import validate

from app.config import parse_config
from app.core import catalog, model
from app.core.model import EMAIL_PATTERN, ApplicationIn
from app.core.problems import CODES
from app.privacy.crypto import parse_keys
from app.runtime import Runtime
from app.settings import Settings
from app.tokens import SCOPES, ApiToken
from app.web import openapi
from app.web.app import create_app
from app.web.openapi import body
from tests.support.builders import connection_table
from tests.support.harness import ADMIN_TOKEN, DATA_KEY, secrets_env

NOT_DOCUMENTED = ("/apply", "/connect", "/dashboard", "/schema")  # pages for people, and the document itself
PUBLIC = {"/health", "/ready", "/v1/files/{token}"}  # and /inbound/*: each board's own secret
METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture
async def app(redis_url: str) -> AsyncIterator[Litestar]:
    connections = {"acme": connection_table("factorial", "http://127.0.0.1:9")}
    config = parse_config({"connections": connections}, secrets_env(connections), source="<test>")
    settings = Settings(
        redis_url=redis_url,
        config=config,
        tokens=[ApiToken("admin", ADMIN_TOKEN, SCOPES)],
        data_keys=parse_keys(DATA_KEY),
    )
    yield create_app(Runtime(settings))


@pytest.fixture
async def document(app: Litestar) -> dict[str, Any]:
    async with AsyncTestClient(app) as client:
        response = await client.get("/schema/openapi.json")  # no token: the document is public
    assert response.status_code == 200, response.text
    return response.json()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, item in document["paths"].items() for m, op in item.items() if m in METHODS]


def refs_blanked(node: Any) -> Any:
    """The schema with its $refs' names blanked (a name Litestar also uses is renamed `.In`)."""
    if isinstance(node, dict):
        return {k: "$ref" if k == "$ref" else refs_blanked(v) for k, v in node.items()}
    if isinstance(node, list):
        return [refs_blanked(v) for v in node]
    return node


def test_it_is_a_valid_openapi_3_1_document(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_is_there_with_its_methods(app: Litestar, document: dict[str, Any]) -> None:
    registered: dict[str, set[str]] = {}
    for route in app.routes:
        if isinstance(route, HTTPRoute) and not route.path_format.startswith(NOT_DOCUMENTED):
            methods = {m.lower() for h in route.route_handlers for m in h.http_methods} & METHODS
            registered.setdefault(route.path_format, set()).update(methods)
    documented = {path: set(item) & METHODS for path, item in document["paths"].items()}
    assert documented == registered
    assert (
        len(registered) >= 25 and "/v1/applications" in registered and "/inbound/indeed/{connection_id}" in registered
    )
    assert not [p for p in documented if p.startswith(NOT_DOCUMENTED)]
    jobs = document["paths"]["/v1/connections/{connection_id}/jobs"]["get"]  # the catalog's typed reads
    assert jobs["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobList"}
    assert {"status", "name_contains", "updated_after", "page_size", "cursor"} <= {
        p["name"] for p in jobs["parameters"]
    }
    assert "400" not in jobs["responses"] and "422" in jobs["responses"]  # the catalog answers a bad parameter 422


def test_intake_takes_the_application_in_shape(document: dict[str, Any]) -> None:
    operation = document["paths"]["/v1/applications"]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ApplicationIn"}
    schemas = document["components"]["schemas"]
    _, expected = msgspec.json.schema_components([ApplicationIn], ref_template="#/components/schemas/{name}")
    assert refs_blanked(schemas["ApplicationIn"]) == refs_blanked(expected["ApplicationIn"])  # msgspec's, as decoded
    shape = schemas["ApplicationIn"]
    assert set(shape["required"]) == {"connection_id", "candidate", "application"}
    assert shape["additionalProperties"] is False  # forbid_unknown_fields, as the decoder refuses them
    assert set(shape["properties"]) == {f.encode_name for f in msgspec.structs.fields(ApplicationIn)}
    candidate = schemas[shape["properties"]["candidate"]["$ref"].rsplit("/", 1)[1]]
    assert candidate["properties"]["email_address"]["pattern"] == EMAIL_PATTERN
    attachment = schemas["AttachmentIn"]
    assert attachment["properties"]["data"]["anyOf"][0] == {"type": "string", "contentEncoding": "base64"}
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= operation["parameters"][0].items()
    assert operation["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Accepted"
    }
    assert {"202", "400", "401", "404", "413", "422"} <= set(operation["responses"])


def test_every_ref_resolves(document: dict[str, Any]) -> None:
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    names = {f"#/components/schemas/{n}" for n in document["components"]["schemas"]}
    assert refs and set(refs) <= names


def test_every_refusal_is_the_shared_problem_with_kombo_codes(document: dict[str, Any]) -> None:
    problem = document["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status"}
    assert {"detail", "errors", "code"} <= set(problem["properties"])
    assert problem["properties"]["code"]["enum"] == list(CODES)
    assert "ATS.JOB_CLOSED" in CODES and "PLATFORM.INPUT_INVALID" in CODES
    field_error = document["components"]["schemas"]["FieldError"]
    assert set(field_error["required"]) == {"field", "message"}
    refusals = [(p, m, s, r) for p, m, op in operations(document) for s, r in op["responses"].items() if s >= "400"]
    assert len(refusals) > 100
    shared = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, method, status, response in refusals:
        if path.startswith("/inbound/forms/"):  # a browser gets its refusal as a page
            assert response["content"] == {**shared, "text/html": {"schema": {"type": "string"}}}, (method, status)
        else:
            assert response["content"] == shared, (path, method, status)


def test_bearer_auth_on_the_routes_behind_a_token(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["bearer"]["description"],
    }
    for path, method, operation in operations(document):
        secured = (path.startswith("/v1/") and path not in PUBLIC) or path == "/metrics"
        assert ({"bearer": []} in operation.get("security", [])) is secured, (method, path)
        board_signed = path.startswith("/inbound/") and "/questions/" not in path  # Indeed fetches those openly
        assert ("401" in operation["responses"]) is (secured or board_signed), (method, path)


def test_a_body_named_like_a_shape_litestar_documents_keeps_both() -> None:
    """catalog.Source (a read's answer, documented by Litestar) and model.Source (in a body,
    documented by msgspec) are different shapes under one name: the body's becomes Source.In."""

    @get("/sources", sync_to_thread=False)
    def sources() -> catalog.Source:
        raise NotImplementedError

    @post("/in", opt=body(model.Source), sync_to_thread=False)
    def takes(request: Request[Any, Any, Any]) -> None:
        raise NotImplementedError

    doc = openapi.document(Litestar([sources, takes], openapi_config=openapi.config("test")))
    schemas = doc["components"]["schemas"]
    out = doc["paths"]["/sources"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    taken = doc["paths"]["/in"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert out == {"$ref": "#/components/schemas/Source"} and taken == {"$ref": "#/components/schemas/Source.In"}
    assert set(schemas["Source"]["properties"]) == {f.encode_name for f in msgspec.structs.fields(catalog.Source)}
    assert set(schemas["Source.In"]["properties"]) == {f.encode_name for f in msgspec.structs.fields(model.Source)}
    validate(doc)


def test_a_route_modules_own_problem_shape_is_the_shared_problem() -> None:
    class MyProblem(msgspec.Struct):
        type: str
        title: str
        status: int

    @get(
        "/things/{thing_id:int}",
        sync_to_thread=False,
        responses={
            404: ResponseSpec(MyProblem, media_type="application/problem+json"),
            **openapi.problems(503),
        },
    )
    def thing(thing_id: int) -> dict[str, int]:
        raise NotImplementedError

    doc = openapi.document(Litestar([thing], openapi_config=openapi.config("test")))
    responses = doc["paths"]["/things/{thing_id}"]["get"]["responses"]
    shared = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert responses["404"]["content"] == responses["503"]["content"] == shared
    assert responses["400"]["content"] == shared  # Litestar's own, for a thing_id that is not an int
    assert "MyProblem" not in doc["components"]["schemas"]
    assert doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"] == list(CODES)


async def test_the_schema_page_is_served_without_a_token(app: Litestar) -> None:
    async with AsyncTestClient(app) as client:
        page = await client.get("/schema")
        dashboard = await client.get("/dashboard/login")
    assert page.status_code == 200 and "openapi.json" in page.text
    assert dashboard.status_code == 200  # still served, only left out of the document
