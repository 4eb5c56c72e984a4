"""Every error leaves as RFC 9457 problem+json naming the field at fault; never a bare 500."""

from __future__ import annotations

from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.blobs.capacity import unavailable
from app.blobs.store import BlobUnavailable
from app.core.model import LIMIT_EXCEEDED
from app.core.problems import FieldError, Problem

log = structlog.get_logger("applyrelay.web")
PROBLEM = "application/problem+json"

#: The machine code of a refusal that names none of its own (`Problem.code`), by status: every
#: problem+json the relay answers carries a `code` a client can switch on; Kombo's where one fits,
#: else the relay's own (all listed in app.core.problems.CODES).
DEFAULT_CODES: dict[int, str] = {
    400: "PLATFORM.INPUT_INVALID",
    401: "PLATFORM.AUTHENTICATION_INVALID",
    403: "PLATFORM.FORBIDDEN",
    404: "PLATFORM.NOT_FOUND",
    405: "PLATFORM.METHOD_NOT_ALLOWED",
    408: "PLATFORM.REQUEST_TIMEOUT",
    409: "PLATFORM.CONFLICT",
    413: "PLATFORM.PAYLOAD_TOO_LARGE",
    415: "PLATFORM.UNSUPPORTED_MEDIA_TYPE",
    422: "PLATFORM.INPUT_INVALID",
    429: "PLATFORM.RATE_LIMIT_EXCEEDED",
    500: "PLATFORM.UNKNOWN_ERROR",
    501: "PLATFORM.NOT_SUPPORTED",
    502: "REMOTE.UNKNOWN_HTTP_ERROR",
    503: "PLATFORM.UNAVAILABLE",
    504: "PLATFORM.TASK_TIMED_OUT",
}


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[Any]:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors:
        body["errors"] = errors
    body.update(extra)
    if not body.get("code"):
        body["code"] = DEFAULT_CODES.get(status, "PLATFORM.INPUT_INVALID" if status < 500 else "PLATFORM.UNKNOWN_ERROR")
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def render(exc: Problem) -> Response[Any]:
    """The one mapping of a refusal (app/core/problems.py) to HTTP."""
    extra = {"code": exc.code} if exc.code else {}
    return problem(
        exc.status,
        exc.title,
        exc.detail,
        errors=[{"field": e.field, "message": e.message} for e in exc.errors],
        headers=exc.headers or None,
        **extra,
    )


def refused(_: Request[Any, Any, Any], exc: Problem) -> Response[Any]:
    return render(exc)


def allow_header(methods: set[str]) -> str:
    """`Allow` for a path's methods: HEAD with GET, which the server answers for every GET
    route (app/web/server.py `HeadAsGet`) though no route lists it."""
    return ", ".join(sorted(methods | ({"HEAD"} if "GET" in methods else set())))


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        extra = exc.extra if isinstance(exc.extra, list) else []
        errors = [
            {"field": str(e.get("key", "")), "message": str(e.get("message", ""))} for e in extra if isinstance(e, dict)
        ]
        # A parameter of the wrong type or out of range (`limit=-5`, `limit=many`): well-formed,
        # but not a value the route takes, as every refusal of a value is.
        return problem(422, "Invalid request", str(exc.detail), errors=errors)
    headers: dict[str, str] = {"WWW-Authenticate": "Bearer"} if isinstance(exc, NotAuthorizedException) else {}
    for name, value in (exc.headers or {}).items():  # Allow (405), Retry-After...: they are the answer's point
        if name.lower() == "allow":
            value = allow_header({m.strip() for m in value.split(",") if m.strip()})
        if name.lower() in ("allow", "retry-after", "www-authenticate"):
            headers[name.title()] = value
    titles = {
        413: "Request body too large",
        404: "Not found",
        405: "Method not allowed",
        401: "Unauthorized",
        403: "Forbidden",
        429: "Too many requests",
    }
    return problem(status, titles.get(status, "Request error"), str(exc.detail), headers=headers or None)


def redis_down(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.warning("redis.unavailable", path=request.url.path, error_type=type(exc).__name__)
    return problem(
        503,
        "Temporarily unavailable",
        "the queue store is not reachable; nothing was stored, retry",
        headers={"Retry-After": "5"},
    )


# Redis's refusals of a write that are no bug of ours (the first word of its error): full, a
# replica, too few replicas (min-replicas-to-write), its disk failing (MISCONF: AOF/RDB errors).
REDIS_REFUSALS = {
    "OOM": "full",
    "READONLY": "read-only",
    "NOREPLICAS": "short of replicas",
    "MISCONF": "failing to persist",
}


def store_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Redis refusing writes (maxmemory, a read-only replica, ...) or the blob store failing:
    503 + Retry-After, nothing stored (app/blobs/capacity.py). Any other Redis error is a bug."""
    runtime = getattr(request.app.state, "runtime", None)
    if isinstance(exc, BlobUnavailable):
        store, reason = "blobs", exc.reason
    elif isinstance(exc, OutOfMemoryError):
        store, reason = "redis", "full"
    elif isinstance(exc, ReadOnlyError):
        store, reason = "redis", "read-only"
    else:
        refusal = REDIS_REFUSALS.get(str(exc).split(" ", 1)[0]) if isinstance(exc, ResponseError) else None
        if refusal is None:
            return unexpected(request, exc)
        store, reason = "redis", refusal
    if runtime is not None:
        runtime.capacity.mark(store, reason)
    log.warning("intake.store_unavailable", path=request.url.path, store=store, reason=reason)
    return render(unavailable(store, reason))


def too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    """JSON nested past what a decoder (msgspec stops at ~1,000 levels) or a walk over free-form
    values (remote_fields, settings, a passthrough body) can follow: the request's fault, never a
    500, whichever route it reached (docs/operations.md, "Bounded work"). A 422 like every other
    refusal over one of our caps (remote_fields past 32 levels): the JSON is well formed, just
    deeper than the relay takes."""
    log.warning("web.nested_too_deep", path=request.url.path)
    return render(
        Problem(
            422,
            "Nested too deeply",
            "the body nests arrays or objects deeper than the relay follows",
            [FieldError("$", "nested too deeply")],
            code=LIMIT_EXCEEDED,
        )
    )


def out_of_range(request: Request[Any, Any, Any], exc: OverflowError) -> Response[Any]:
    """A number no store can hold: an integer past 64 bits that a free-form value carried to the
    msgpack encoding of the stored record (docs/operations.md, "Bounded work")."""
    log.warning("web.number_out_of_range", path=request.url.path)
    return render(
        Problem.invalid("$", "a number is out of range (integers must fit in 64 bits)", title="Number out of range")
    )


def unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("web.unhandled", path=request.url.path, error_type=type(exc).__name__)
    return problem(500, "Internal error", "an unexpected error occurred; nothing was stored")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    Problem: refused,
    HTTPException: http_error,
    RedisConnectionError: redis_down,
    RedisTimeoutError: redis_down,
    ConnectionRefusedError: redis_down,
    OutOfMemoryError: store_unavailable,
    ReadOnlyError: store_unavailable,
    BlobUnavailable: store_unavailable,
    ResponseError: store_unavailable,
    RecursionError: too_deep,
    OverflowError: out_of_range,
    Exception: unexpected,
}
MEDIA = MediaType.JSON
