"""The OpenAPI 3.1 document served at /schema (JSON at /schema/openapi.json; docs/architecture.md).

The route handlers read their bodies themselves (size limits, lenient base64, field-naming
errors: app/web/deps.py, app/intake/decode.py), so Litestar cannot see what they take. They say it
instead: `opt=body(ApplicationIn)` names the msgspec Struct the handler decodes, and `responses=`
lists what it answers (`problems(404, 409)`, `ok(SomeShape)`). Litestar builds the document from
that; `finish` then adds what Litestar does not know:

- each request body, from msgspec's own JSON Schema of the Struct the handler decodes with (the
  validator's schema, so it cannot drift: `forbid_unknown_fields`, patterns, base64 files);
- the one problem+json shape (RFC 9457 with `errors[]` and Kombo's `code`, `CODES`) for every
  refusal: also the 400 Litestar documents on its own for a bad parameter, and a route module's
  own problem Struct (the schemas no operation reaches any more are dropped).

The shapes below (`Problem`, `Accepted`...) describe what the handlers answer; they are only
documentation: the handlers build these bodies as dicts (app/operator/views.py and friends).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from litestar import Litestar
from litestar.exceptions import ValidationException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute
from msgspec import Struct

from app.core.problems import CODES
from app.web.problems import PROBLEM

PROBLEM_MEDIA = PROBLEM  # application/problem+json
RETRY_AFTER = {"description": "Seconds to wait before trying again", "schema": {"type": "string"}}
BODY = "openapi_request_body"  # the handler's `opt` key: (Struct type or None, media type)
HEADERS = "openapi_headers"  # the handler's `opt` key: {header: description}, headers it reads itself
QUERY = "openapi_query"  # the handler's `opt` key: {name: description}, query parameters it reads itself
HTML_ERRORS = "openapi_html_errors"  # the handler's `opt` key: a browser (Accept: text/html) gets its errors as a page
IDEMPOTENCY_KEY = {"Idempotency-Key": "1 to 255 printable ASCII characters; a repeat answers the same delivery"}
BEARER = "bearer"
SECURED: list[dict[str, list[str]]] = [{BEARER: []}]
TITLES = {
    400: "Malformed request (not JSON, a bad parameter or header)",
    401: "No valid credentials",
    403: "The token lacks the scope this route needs",
    404: "Not found (or not configured)",
    409: "Conflict",
    410: "Gone",
    413: "The body is larger than the connection's limit",
    415: "Unsupported media type",
    422: "Invalid: every field at fault is named in `errors`",
    429: "Too many requests (see Retry-After)",
    501: "Not supported by this connector",
    502: "The ATS refused or failed",
    503: "Temporarily unavailable (see Retry-After)",
    504: "The ATS did not answer in time",
}


# -- shapes ---------------------------------------------------------------------------------------


class FieldError(Struct):
    field: str
    message: str


class Problem(Struct):
    """RFC 9457 problem details, with the fields at fault and a Kombo-style `code`."""

    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] = []
    code: str | None = None


class WarningOut(Struct):
    message: str
    code: str | None = None


class Accepted(Struct):
    """202: stored and enqueued, or a repeat of a known key (`duplicate`); poll the Location."""

    id: str
    status: str
    duplicate: bool
    warnings: list[WarningOut] = []


class FormReceived(Struct):
    """202 to a script posting a form: `Accepted`, or only `status` for a discarded bot post."""

    status: str
    id: str | None = None
    duplicate: bool | None = None
    warnings: list[WarningOut] = []


class Status(Struct):
    status: str


class ErrorInfo(Struct):
    kind: str
    message: str
    step: str | None = None
    http_status: int | None = None
    at: float | None = None


class DeliverySummary(Struct):
    id: str
    status: str
    kind: str
    connection_id: str
    connector: str
    channel: str
    board: str | None
    board_application_id: str | None
    job_id: str | None
    action: str | None
    created_at: float
    updated_at: float
    delivered_at: float | None
    next_attempt_at: float | None
    runs: int
    attempts: int
    last_error: ErrorInfo | None
    payload_purged: bool


class DeliveryPage(Struct):
    data: list[DeliverySummary]
    next_cursor: str | None
    counts: dict[str, Any]


class Step(Struct):
    name: str
    remote_id: str


class CandidateName(Struct):
    first_name: str
    last_name: str
    email_address: str


class DeliveryDetail(Struct):
    """The delivery (app/delivery/record.py) with its steps and timeline; more fields may appear."""

    id: str
    status: str
    kind: str
    connection_id: str
    connector: str
    channel: str
    created_at: float
    updated_at: float
    steps: list[Step]
    timeline: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    warnings: list[WarningOut]
    last_error: ErrorInfo | None
    candidate: CandidateName | None = None  # with include=candidate and the `pii` scope


class Counts(Struct):
    by_status: dict[str, int]
    by_connection: dict[str, dict[str, int]]
    total: int


class RetryResult(Struct):
    id: str
    status: str
    changed: bool


class BulkStarted(Struct):
    id: str
    status: str
    filter: dict[str, str]


class BulkProgress(Struct):
    id: str
    status: str
    total: int
    done: int
    retried: int
    unchanged: int
    errors: int
    actor: str
    created_at: float
    updated_at: float
    filter: dict[str, str]
    percent: int


class Purged(Struct):
    id: str
    status: str
    payload_purged: bool
    files_purged: bool


class DataList(Struct):
    data: list[dict[str, Any]]


class Resumed(Struct):
    id: str
    paused: bool
    was_paused: bool
    resumed_deliveries: int


class PassthroughResult(Struct):
    status: int
    headers: dict[str, str]
    body: Any


class ErasureReport(Struct):
    subject: str
    erased_at: float
    deliveries_erased: int
    deliveries: list[dict[str, Any]]
    stopped: list[str]
    in_flight: list[str]
    erase_in_ats: list[dict[str, Any]]


class SubjectAccess(Struct):
    subject: str
    deliveries: list[dict[str, Any]]


class AuditPage(Struct):
    data: list[dict[str, Any]]
    next: str | None


# -- what a handler declares -----------------------------------------------------------------------


def body(
    kind: type[Any] | None,
    media_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
    *,
    html_errors: bool = False,
) -> dict[str, Any]:
    """The handler's `opt`: the Struct its own decoding takes (None: a form, described loosely),
    the optional headers it reads itself, and whether a browser gets its refusals as HTML."""
    return {BODY: (kind, media_type), HEADERS: dict(headers or {}), HTML_ERRORS: html_errors}


def query_params(**descriptions: str) -> dict[str, Any]:
    """The handler's `opt`: optional string query parameters it reads from `request.query_params`
    itself (the ones in its signature Litestar documents on its own)."""
    return {QUERY: descriptions}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        s: ResponseSpec(
            data_container=Problem, media_type=PROBLEM_MEDIA, description=TITLES[s], generate_examples=False
        )
        for s in statuses
    }


def ok(shape: Any, description: str = "OK", media_type: str = "application/json") -> ResponseSpec:
    return ResponseSpec(data_container=shape, media_type=media_type, description=description, generate_examples=False)


def secured(*statuses: int) -> dict[int, ResponseSpec]:
    """A route behind a bearer token: its refusals, plus 401 and 403."""
    return problems(401, 403, *statuses)


# -- the document ----------------------------------------------------------------------------------


class DocumentPlugin(JsonRenderPlugin):
    """/schema/openapi.json: Litestar's document, finished once per app (`finish`)."""

    def render(self, request: Any, openapi_schema: dict[str, Any]) -> bytes:
        return self.render_json(request, document(request.app))


def config(version: str) -> OpenAPIConfig:
    return OpenAPIConfig(
        title="applyrelay",
        version=version,
        description=(
            "Job applications from boards and career sites into applicant tracking systems, with "
            "delivery guarantees. Every refusal is application/problem+json (the Problem schema)."
        ),
        use_handler_docstrings=True,
        components=Components(
            security_schemes={
                BEARER: SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="An API token (APPLYRELAY_TOKENS; intake also takes APPLYRELAY_INTAKE_TOKENS)",
                )
            }
        ),
        render_plugins=[DocumentPlugin(), ScalarRenderPlugin(path="/")],
    )


def document(app: Litestar) -> dict[str, Any]:
    """The finished document, built on first use and kept on the app."""
    cached: dict[str, Any] | None = app.state.get("openapi_document")
    if cached is None:
        cached = app.state["openapi_document"] = finish(app, app.openapi_schema.to_schema())
    return cached


def finish(app: Litestar, doc: dict[str, Any]) -> dict[str, Any]:
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    declared = _declared(app)
    kinds = [opt[BODY][0] for opt in declared.values() if BODY in opt and opt[BODY][0] is not None]
    names = _add_body_schemas(schemas, kinds)
    for path, method in _own_validation_errors(app):
        responses = doc["paths"][path][method]["responses"]
        if "400" in responses and PROBLEM_MEDIA not in responses["400"].get("content", {}):
            del responses["400"]  # Litestar's own; this route answers a bad parameter itself
    for (path, method), opt in declared.items():
        operation = doc["paths"][path][method]
        parameters = operation.setdefault("parameters", [])
        for where, key in (("header", HEADERS), ("query", QUERY)):
            parameters.extend(
                {"name": name, "in": where, "required": False, "description": text, "schema": {"type": "string"}}
                for name, text in opt.get(key, {}).items()
            )
        if not parameters:
            del operation["parameters"]
        if BODY in opt:
            kind, media_type = opt[BODY]
            if kind is None:
                schema: dict[str, Any] = {"type": "object", "additionalProperties": True}
            else:
                schema = {"$ref": f"#/components/schemas/{names[kind]}"}
            operation["requestBody"] = {"required": True, "content": {media_type: {"schema": schema}}}
    problem = schemas.get("Problem")  # registered by the first `problems(...)` of a handler
    if problem is not None:
        problem["properties"]["code"] = {"type": "string", "enum": list(CODES), "description": "Kombo's error code"}
        problem["properties"]["type"]["examples"] = ["about:blank"]
    for item in doc["paths"].values():
        for operation in item.values():
            if isinstance(operation, dict) and "responses" in operation:
                if problem is not None:
                    _one_problem(operation["responses"])
                    if operation.get("parameters") or "requestBody" in operation:
                        # a bad parameter or body value is a 422 on every route (app/web/problems.py)
                        operation["responses"].setdefault(
                            "422",
                            {
                                "description": TITLES[422],
                                "content": {PROBLEM_MEDIA: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                            },
                        )
                for status in ("429", "503"):
                    if status in operation["responses"]:
                        operation["responses"][status]["headers"] = {"Retry-After": RETRY_AFTER}
                for response in operation["responses"].values():
                    for header in response.get("headers", {}).values():
                        if "schema" not in header and "content" not in header:
                            header["schema"] = {"type": "string"}  # a documentation-only ResponseHeader
    for (path, method), opt in declared.items():
        if opt.get(HTML_ERRORS):
            for status, response in doc["paths"][path][method]["responses"].items():
                if status >= "400" and PROBLEM_MEDIA in response.get("content", {}):
                    response["content"]["text/html"] = {"schema": {"type": "string"}}
    _drop_unused(schemas, doc["paths"])
    return doc


def _drop_unused(schemas: dict[str, Any], paths: Any) -> None:
    """Schemas no operation reaches any more (a route module's own problem shape, now Problem)."""
    prefix = "#/components/schemas/"
    reached: set[str] = set()
    todo = [paths]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix) :] not in reached:
                reached.add(ref[len(prefix) :])
                todo.append(schemas.get(ref[len(prefix) :]))
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    for name in set(schemas) - reached:
        del schemas[name]


def _declared(app: Litestar) -> dict[tuple[str, str], dict[str, Any]]:
    """What each documented operation declared in its handler's `opt` (BODY, HEADERS, QUERY)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            opt = {k: v for k, v in handler.opt.items() if k in (BODY, HEADERS, QUERY, HTML_ERRORS)}
            if not opt or not handler.resolve_include_in_schema():
                continue
            for method in handler.http_methods:
                found[(route.path_format or "/", method.lower())] = opt
    return found


def _own_validation_errors(app: Litestar) -> list[tuple[str, str]]:
    """The documented operations whose layers answer a bad parameter themselves (catalog: 422)."""
    return [
        (route.path_format or "/", method.lower())
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if handler.resolve_include_in_schema() and ValidationException in handler.resolve_exception_handlers()
        for method in handler.http_methods
    ]


def _add_body_schemas(schemas: dict[str, Any], kinds: list[type[Any]]) -> dict[type[Any], str]:
    """msgspec's schemas of the body Structs (and the Structs they hold) into the components; a
    name Litestar already uses for another shape gets a `.In` suffix, the refs rewritten to match.
    Returns each body Struct's component name."""
    ordered = sorted(set(kinds), key=lambda k: (k.__module__, k.__qualname__))
    refs, components = msgspec.json.schema_components(ordered)
    rename = {n: f"{n}.In" if n in schemas and schemas[n] != s else n for n, s in components.items()}
    for name, schema in components.items():
        schemas[rename[name]] = _rewrite_refs(schema, rename)
    return {kind: _rewrite_refs(ref, rename)["$ref"].rsplit("/", 1)[1] for kind, ref in zip(ordered, refs, strict=True)}


def _rewrite_refs(node: Any, rename: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {k: _rewrite_refs(v, rename) for k, v in node.items()}
        ref = out.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.removeprefix("#/$defs/")
            out["$ref"] = f"#/components/schemas/{rename.get(name, name)}"
        return out
    if isinstance(node, list):
        return [_rewrite_refs(v, rename) for v in node]
    return node


def _one_problem(responses: dict[str, Any]) -> None:
    """Every refusal is the one Problem schema: Litestar's own 400 body for a bad parameter (the
    relay answers it as problem+json, app/web/problems.py), and any route module's own
    problem+json shape, so `code` has its one enum everywhere."""
    for status, response in responses.items():
        content = response.get("content", {})
        if status == "400" and PROBLEM_MEDIA not in content:
            response["description"] = TITLES[400]
        elif PROBLEM_MEDIA not in content:
            continue
        response["content"] = {PROBLEM_MEDIA: {"schema": {"$ref": "#/components/schemas/Problem"}}}
