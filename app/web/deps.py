"""What every route module shares: the request's runtime and actor, its body under the app's limit,
its Idempotency-Key, and the 202 an accepted application answers. Route modules import this,
never each other."""

from __future__ import annotations

import re
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.routes import HTTPRoute

from app.core.problems import FieldError, Problem
from app.runtime import Runtime
from app.web.auth import current_token
from app.web.problems import allow_header

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# application/json, or a structured-syntax +json type (RFC 6839), e.g. application/merge-patch+json
JSON_MEDIA_TYPE = re.compile(r"^application/(?:[a-z0-9!#$&^_.-]+\+)?json$")


def idempotency_key(request: Request[Any, Any, Any]) -> str | None:
    """The request's Idempotency-Key: one, of 1 to 255 printable ASCII characters (two headers
    would leave it to chance which of them names the request)."""
    keys = request.headers.getall("idempotency-key", [])
    if not keys:
        return None
    why = "sent more than once" if len(keys) > 1 else None
    if why is None and not IDEMPOTENCY_KEY.match(keys[0]):
        why = "1 to 255 printable ASCII characters"
    if why is not None:
        errors = [FieldError("Idempotency-Key", why)]
        raise Problem(400, "Invalid Idempotency-Key", f"Idempotency-Key: {why}", errors, code="PLATFORM.INPUT_INVALID")
    return str(keys[0])


async def read_body(request: Request[Any, Any, Any]) -> bytes:
    """A JSON route's body: 415 unless it is declared JSON (`declares_json`), 413 past the app's
    limit. The limit is enforced here rather than by Litestar's `request_max_body_size`, whose
    resolution is cached on module-level handlers and so cannot differ between two app instances
    (tests, or two configs in one process)."""
    declared = declares_json(request.headers.get("content-type"))
    if not declared and (request.content_length or 0) > 0:
        raise not_json("send the body as Content-Type: application/json")
    limit: int = request.app.state.max_body_bytes
    if (request.content_length or 0) > limit:
        raise RequestEntityTooLarge(f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestEntityTooLarge(f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if body and not declared:  # chunked, without a Content-Length
        raise not_json("send the body as Content-Type: application/json")
    return body


def declares_json(content_type: str | None) -> bool:
    """Whether a JSON route may read a body of this Content-Type: True for `application/json` or a
    `+json` type (`application/merge-patch+json`), with no charset or UTF-8 (RFC 8259: JSON is
    UTF-8); False when there is none, which only a body-less request may send (RFC 9110 §8.3: a
    body without one is octet-stream, not JSON). Any other type is refused with 415 before the body
    is read: a client posting XML or text had a bug, and guessing that it meant JSON hides it."""
    if content_type is None or not content_type.strip():
        return False
    media_type, *params = content_type.split(";")
    if not JSON_MEDIA_TYPE.match(media_type.strip().lower()):
        raise not_json(f"{media_type.strip()[:100]!r} is not JSON: send application/json")
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise not_json("JSON is read as UTF-8: send charset=utf-8, or no charset")
    return True


def not_json(message: str) -> Problem:
    """415: the body's content type is not one a JSON route reads (README, "Error codes")."""
    return Problem(
        415,
        "Unsupported media type",
        f"Content-Type: {message}",
        [FieldError("Content-Type", message)],
        code="PLATFORM.UNSUPPORTED_MEDIA_TYPE",
    )


def accepted_response(delivery_id: str, status: str, created: bool, warnings: list[dict[str, str]]) -> Response[Any]:
    body: dict[str, Any] = {"id": delivery_id, "status": status, "duplicate": not created}
    if warnings:
        body["warnings"] = warnings
    return Response(body, status_code=202, headers={"Location": f"/v1/deliveries/{delivery_id}"})


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    return request.app.state.runtime


def actor(request: Request[Any, Any, Any]) -> str:
    """Who acts, for the audit log: the token's name."""
    token = current_token(request)
    return token.name if token else "anonymous"


async def answer_options(request: Request[Any, Any, Any]) -> Response[Any] | None:
    """The app's `before_request`: OPTIONS answers every method of the path (RFC 9110 §9.3.7).
    Litestar's own OPTIONS handler closes over the route as it stood when its first handler was
    registered, so `/v1/deliveries/{id}` said GET but not DELETE. Async though it awaits nothing:
    Litestar runs a sync hook in its thread pool, a thread hop on every request of every route
    (6.5 % of the web's CPU in bench P1)."""
    if request.method != "OPTIONS":
        return None
    template = request.scope.get("path_template")
    methods: set[str] = set()
    for route in request.app.routes:
        if isinstance(route, HTTPRoute) and route.path_format == template:
            methods.update(route.methods)
    if not methods:
        return None
    return Response(
        None, status_code=204, media_type=MediaType.TEXT, headers={"Allow": allow_header(methods | {"OPTIONS"})}
    )


async def read_limited(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The raw body (signatures are over these exact bytes), 413 past `limit`."""
    if (request.content_length or 0) > limit:
        raise Problem(413, "Request body too large", f"the body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "Request body too large", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
