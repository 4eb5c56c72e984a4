"""Data-protection routes: erasure on request, subject-access export, and the audit log.

    POST /v1/erasure         {"email": ...}   scope `erase`  → what was erased, what to erase in the ATSs
    POST /v1/subject-access  {"email": ...}   scope `pii`    → everything stored about the candidate
    GET  /v1/audit?limit=&before=             scope `admin`  → operator actions, newest first

Each call is recorded in the audit log under the token's name; the log holds the keyed hash's
reference (`subject`), never the address.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get, post
from msgspec import Meta

from app.core.model import EMAIL_PATTERN, stored_as_data
from app.core.problems import Problem
from app.delivery.engine import file_count
from app.privacy import audit
from app.privacy.erasure import Eraser
from app.redis.client import awaited
from app.redis.keys import email_index_key
from app.runtime import Runtime
from app.web.auth import require_scope
from app.web.deps import actor, read_body, runtime_of
from app.web.openapi import SECURED, AuditPage, ErasureReport, SubjectAccess, body, ok, secured
from app.web.problems import problem

MAX_AUDIT_PAGE = 500


class SubjectRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, Meta(pattern=EMAIL_PATTERN, max_length=254)]


def _subject(body: bytes) -> SubjectRequest | Response[Any]:
    try:
        return msgspec.json.decode(body, type=SubjectRequest)
    except msgspec.ValidationError as exc:
        text = str(exc)  # msgspec names the rule and the path, never the value (a person's address)
        field = text.split("at `$.", 1)[1].rstrip("`") if "at `$." in text else "email"
        message = "not a valid email address" if "regex" in text or "length" in text else text.split(" - at ")[0]
        return problem(422, "Invalid request", f"{field}: {message}", errors=[{"field": field, "message": message}])
    except msgspec.DecodeError as exc:
        raise Problem.malformed_json(str(exc)) from None


@post(
    "/v1/erasure",
    guards=[require_scope("erase")],
    status_code=200,
    opt=body(SubjectRequest),
    security=SECURED,
    responses={200: ok(ErasureReport), **secured(400, 413, 415, 422, 503)},
)
async def erase(request: Request[Any, Any, Any]) -> Response[Any]:
    """Erase every stored payload and file of the candidate with this address."""
    subject = _subject(await read_body(request))
    if isinstance(subject, Response):
        return subject
    runtime = runtime_of(request)
    eraser = Eraser(runtime.store, runtime.pseudonyms, lease_wait_s=runtime.settings.lease_s + 1)
    report = await eraser.erase(subject.email)
    await audit.record(
        runtime.redis,
        actor(request),
        "erase",
        f"subject:{report.subject}",
        {"deliveries": len(report.deliveries), "stopped": sum(d.stopped for d in report.deliveries)},
    )
    return Response(report.to_json())


@post(
    "/v1/subject-access",
    guards=[require_scope("pii")],
    status_code=200,
    opt=body(SubjectRequest),
    security=SECURED,
    responses={200: ok(SubjectAccess), **secured(400, 413, 415, 422, 503)},
)
async def subject_access(request: Request[Any, Any, Any]) -> Response[Any]:
    """Everything the relay still holds about the candidate (GDPR art. 15): each delivery's state
    and stored application; files are listed (name, type, size, sha256), not included."""
    subject = _subject(await read_body(request))
    if isinstance(subject, Response):
        return subject
    runtime = runtime_of(request)
    digest = await runtime.pseudonyms.email(subject.email)
    ids = sorted(i.decode() for i in await awaited(runtime.redis.smembers(email_index_key(digest))))
    records = []
    for delivery in await runtime.store.get_many(ids):
        raw = await runtime.store.load_payload(delivery.id)
        application = stored_as_data(raw) if raw and delivery.kind == "application" else None
        files_held = 0
        if raw is not None and not delivery.files_purged:
            files_held = await runtime.store.files_held(delivery.id, await file_count(runtime.store, delivery))
        records.append(
            {
                "delivery_id": delivery.id,
                "status": delivery.status,
                "connection_id": delivery.connection_id,
                "created_at": delivery.created_at,
                "delivered_at": delivery.delivered_at,
                "remote_ids": dict(delivery.checkpoints),
                "application": application,
                "files_held": files_held,
            }
        )
    await audit.record(runtime.redis, actor(request), "export", f"subject:{digest[:16]}", {"deliveries": len(records)})
    return Response({"subject": digest[:16], "deliveries": records})


@get(
    "/v1/audit",
    guards=[require_scope("admin")],
    security=SECURED,
    responses={200: ok(AuditPage), **secured(400, 503)},
)
async def audit_log(request: Request[Any, Any, Any], limit: int = 100, before: str | None = None) -> Response[Any]:
    """Newest first; pass `next` back as `before` for the next page."""
    if before is not None and not _is_stream_id(before):
        return problem(
            422,
            "Invalid request",
            "before: an entry id as returned in `next`",
            errors=[{"field": "before", "message": "not an audit entry id"}],
        )
    if not 1 <= limit <= MAX_AUDIT_PAGE:  # refused, not clamped: bad paging is the caller's bug to see
        return problem(
            422,
            "Invalid request",
            f"limit: from 1 to {MAX_AUDIT_PAGE}",
            errors=[{"field": "limit", "message": f"from 1 to {MAX_AUDIT_PAGE}"}],
        )
    entries = await audit.read(runtime_of(request).redis, count=limit, before=before)
    return Response(
        {"data": [msgspec.to_builtins(e) for e in entries], "next": entries[-1].id if len(entries) == limit else None}
    )


def _is_stream_id(text: str) -> bool:
    ms, _, seq = text.partition("-")
    return ms.isdigit() and (seq == "" or seq.isdigit()) and len(text) < 40


def router(_: Runtime) -> Router:
    return Router(path="/", route_handlers=[erase, subject_access, audit_log])
