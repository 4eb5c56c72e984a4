"""Inbound routes: Indeed Apply, Standard Webhooks, career-site forms (app/inbound/ translates,
`Intake.accept` stores). Each route authenticates with its own per-connection secret and answers
404 when that secret is not configured — never accepts unsigned."""

from __future__ import annotations

import hashlib
import html
import time
from typing import Any

import structlog
from litestar import Request, Response, Router, post
from litestar.openapi import ResponseSpec
from litestar.response import Redirect

from app.catalog.service import CatalogUnavailable
from app.config import Connection
from app.core.model import ApplicationIn, Origin
from app.core.problems import Problem
from app.delivery.staging import Stager
from app.intake.accept import Accepted, Intake, idempotency_hash
from app.intake.boards import apply_form, forms, indeed, webhooks
from app.intake.boards.draft import Draft, check_job
from app.intake.boards.secrets import configured_secrets, matches_any, not_configured
from app.redis.keys import form_rate_key, idempotency_claim_key
from app.runtime import Runtime
from app.web.apply import views as apply_pages
from app.web.deps import accepted_response, idempotency_key, read_limited
from app.web.openapi import IDEMPOTENCY_KEY, FormReceived, body, ok, problems
from app.web.openapi import Accepted as AcceptedBody
from app.web.problems import problem
from connectors.base import StepWarning

log = structlog.get_logger("applyrelay.inbound")
FORM_OVERHEAD_BYTES = forms.MAX_FIELDS_BYTES + 1_000_000  # part headers and boundaries around the files


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    return request.app.state.runtime


def _intake(request: Request[Any, Any, Any]) -> Intake:
    return request.app.state.intake


# -- Indeed Apply ---------------------------------------------------------------------------------


@post(
    "/indeed/{connection_id:str}",
    status_code=202,
    opt=body(indeed.IndeedApply, headers={"X-Indeed-Signature": "base64 HMAC-SHA1 of the body with the secret"}),
    responses={
        202: ok(AcceptedBody, "Stored and enqueued"),
        **problems(400, 401, 404, 409, 410, 413, 422, 503),
    },
)
async def indeed_apply(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    """Indeed's postUrl: 202 once stored; 409 for an application Indeed already delivered."""
    intake = _intake(request)
    connection = intake.connection(connection_id)
    secrets = configured_secrets(connection, "indeed_secret_env", several=False)
    if not secrets:
        raise not_configured("Indeed Apply")
    limit = connection.inbound.indeed_max_body_bytes
    body = await read_limited(request, indeed.DEFAULT_MAX_BODY if limit is None else limit)
    indeed.verify(body, request.headers.get(indeed.SIGNATURE_HEADER), secrets)
    apply = indeed.parse(body)
    runtime = _runtime(request)
    existing = await runtime.redis.get(idempotency_claim_key(_idem_hash(connection.id, apply.id or "")))
    if existing is not None:  # a resend: answer before asking the ATS anything
        return _duplicate(existing.decode())
    job_id, job_field = indeed.ats_job_id(apply, connection)
    connector = runtime.connectors.get(connection.id)
    await check_job(intake.catalog, connector, connection, job_id, job_field)
    draft, origin, notes = await indeed.to_application(apply, connection, connector, job_id, intake.catalog)
    accepted = await _accept(intake, draft, origin, None, notes)
    if not accepted.created:
        return _duplicate(accepted.delivery_id)
    return accepted_response(accepted.delivery_id, accepted.status, accepted.created, accepted.warnings)


async def _accept(
    intake: Intake, draft: Draft, origin: Origin, key: str | None, notes: list[StepWarning] | None = None
) -> Accepted:
    """Validate and store; intake's refusals name the sender's own fields."""
    application = draft.build()
    try:
        return await intake.accept(application, origin, key, notes, staged=draft.staged)
    except Problem as exc:
        raise draft.rename(exc) from None


def _idem_hash(connection_id: str, board_id: str) -> str:
    return idempotency_hash(connection_id, f"board:indeed:{board_id}")


def _duplicate(delivery_id: str) -> Response[Any]:
    """Indeed's contract: 409 for a duplicate (and it stops resending)."""
    return problem(
        409,
        "Duplicate application",
        "this application was already received",
        code="ATS.APPLICATION_ALREADY_EXISTS",
        delivery_id=delivery_id,
        headers={"Location": f"/v1/deliveries/{delivery_id}"},
    )


# -- Standard Webhooks ------------------------------------------------------------------------------


@post(
    "/webhooks/{connection_id:str}",
    status_code=202,
    opt=body(ApplicationIn, headers={h: "Standard Webhooks signature header" for h in webhooks.HEADERS}),
    responses={
        202: ok(AcceptedBody, "Stored and enqueued (also a redelivery)"),
        **problems(400, 401, 404, 409, 410, 413, 422, 503),
    },
)
async def signed_webhook(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    """The canonical JSON, Standard Webhooks–signed: 202 once stored (also for a redelivery)."""
    intake = _intake(request)
    connection = intake.connection(connection_id)
    hooks = webhooks.verifiers(configured_secrets(connection, "webhook_secret_env", several=True), connection.id)
    if not hooks:
        raise not_configured("Standard Webhooks")
    limit = connection.inbound.webhook_max_body_bytes
    body = await read_limited(request, request.app.state.max_body_bytes if limit is None else limit)
    message_id = webhooks.verify(body, request.headers, hooks)
    application, origin = webhooks.to_application(body, connection.id, message_id)
    accepted = await intake.accept(application, origin, f"webhook:{message_id}")
    return accepted_response(accepted.delivery_id, accepted.status, accepted.created, accepted.warnings)


# -- career-site forms ------------------------------------------------------------------------------


def wants_html(request: Request[Any, Any, Any]) -> bool:
    """A browser submitting an HTML form (not a script asking for JSON)."""
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


@post(
    "/forms/{connection_id:str}/{job_id:str}",
    status_code=202,
    opt=body(
        None,
        "multipart/form-data",
        {forms.TOKEN_HEADER: "the form token (or a form_token field)", **IDEMPOTENCY_KEY},
        html_errors=True,
    ),
    responses={
        202: ok(FormReceived, "Stored and enqueued (JSON clients)"),
        200: ok(str, "A thank-you page (a browser, Accept: text/html)", "text/html"),
        303: ResponseSpec(None, description="To the connection's thank-you page (a browser)"),
        **problems(400, 401, 404, 410, 413, 422, 429, 503),
    },
)
async def career_form(request: Request[Any, Any, Any], connection_id: str, job_id: str) -> Response[Any]:
    """A career-site form post: a browser is redirected (303) to the thank-you page, an API
    client gets 202 JSON; errors as problem+json, or as a short HTML page for a browser."""
    browser = wants_html(request)
    stager = _stager(_runtime(request))
    try:
        return await _career_form(request, connection_id, job_id, browser, stager)
    except Problem as exc:
        if browser and apply_pages.is_page_post(getattr(request.state, "apply_form", None)):
            return await apply_pages.rerender(request, connection_id, job_id, exc)  # docs/apply-pages.md
        if browser:
            return _html_error(exc)
        if isinstance(exc, _TooMany):
            return problem(429, exc.title, exc.detail, headers={"Retry-After": str(exc.retry_after)})
        raise
    finally:
        if stager is not None:  # a refused, duplicate or abandoned post's files
            await stager.discard()


def _stager(runtime: Runtime) -> Stager | None:
    """Where the form's files go as they arrive: the blob store (app/delivery/staging.py), which
    a relay always has."""
    store = runtime.store
    if store.blobs is None:
        return None
    return Stager(runtime.redis, store.blobs, runtime.sealer, store.capacity)


async def _career_form(
    request: Request[Any, Any, Any], connection_id: str, job_id: str, browser: bool, stager: Stager | None
) -> Response[Any]:
    intake = _intake(request)
    runtime = _runtime(request)
    connection = intake.connection(connection_id)
    tokens = configured_secrets(connection, "form_token_env", several=True)
    if not tokens:
        raise not_configured("form")
    await _rate_limit(request, runtime, connection)
    header_token = request.headers.get(forms.TOKEN_HEADER)
    if header_token is not None and not matches_any(header_token, tokens):
        raise _bad_token()
    form = await _parse_form(request, connection, stager)
    field_token = form.value(forms.TOKEN_FIELD) or ""
    page = apply_form.verify(field_token, tokens, connection.id, job_id, time.time())  # the apply page's
    if header_token is None and not (page or matches_any(field_token, tokens)):
        raise _bad_token()
    honeypot = connection.inbound.form_honeypot_field
    if (form.value(honeypot) or "").strip():
        log.info("inbound.form_honeypot", connection=connection.id)
        if page and browser:
            return apply_pages.success(request, connection)
        return _form_success(connection, browser, None)  # a bot learns nothing; nothing is stored
    if not 0 < len(job_id) <= 200:
        raise Problem.invalid("job_id", "1 to 200 characters")
    connector = runtime.connectors.get(connection.id)
    await check_job(intake.catalog, connector, connection, job_id, "job_id")
    draft = forms.to_application(form, connection, job_id)
    if page:
        await _shape_page_answers(runtime, connection, job_id, draft)
    origin = Origin(channel="form", received_at=time.time(), board="career_site")
    accepted = await _accept(intake, draft, origin, idempotency_key(request))
    if page and browser:
        return apply_pages.success(request, connection)
    return _form_success(connection, browser, accepted)


async def _shape_page_answers(runtime: Runtime, connection: Connection, job_id: str, draft: Draft) -> None:
    """An apply page's post: answers typed by the job's questions, those whose precondition does
    not hold dropped (docs/apply-pages.md); unchecked when the ATS cannot be read now (intake and
    the worker check them again)."""
    apply = connection.apply
    apply_form.consent(draft, bool(draft.gdpr_consent), apply.consent_required, apply.consent_days, time.time())
    try:
        questions = (await runtime.catalog.job_questions(connection.id, job_id, budget_s=2)).value
    except CatalogUnavailable:
        return
    except Problem as exc:
        if exc.status == 404:  # no such job
            raise
        return  # the ATS refused the read: left to intake's and the worker's checks
    apply_form.shape(draft, questions)


def _bad_token() -> Problem:
    return Problem(401, "Unauthorized", "the form token is missing or wrong (X-Form-Token or form_token)")


async def _parse_form(
    request: Request[Any, Any, Any], connection: Connection, stager: Stager | None
) -> forms.ParsedForm:
    """The form as it streams in; its file parts written to the blob store meanwhile (`stager`)."""
    limit = connection.limits.max_application_bytes + FORM_OVERHEAD_BYTES
    if (request.content_length or 0) > limit:
        raise Problem(413, "Request body too large", f"the body is larger than {limit} bytes")
    stream = forms.MultipartStream(request.headers.get("content-type", ""), connection, stager)
    request.state.apply_form = stream.form  # what an apply page re-renders if a limit stops the parse
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "Request body too large", f"the body is larger than {limit} bytes")
        stream.feed(chunk)
        await stream.drain()
    return stream.finish()


def client_ip(request: Request[Any, Any, Any], hops: int) -> str:
    """The peer address, or — behind `hops` trusted proxies — the address they saw."""
    peer = request.client.host if request.client else "unknown"
    if hops <= 0:
        return peer
    forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",") if a.strip()]
    return forwarded[-hops] if len(forwarded) >= hops else peer


async def _rate_limit(request: Request[Any, Any, Any], runtime: Runtime, connection: Connection) -> None:
    """A fixed window per client IP in Redis (shared by every web process); the IP is hashed."""
    limit = connection.inbound.form_rate_limit
    window = max(1, connection.inbound.form_rate_window_s)
    if limit <= 0:
        return
    ip = client_ip(request, connection.inbound.form_trusted_proxy_hops)
    now = time.time()
    slot = int(now // window)
    digest = hashlib.sha256(f"{connection.id}\0{ip}".encode()).hexdigest()[:24]
    key = form_rate_key(digest, slot)
    pipe = runtime.redis.pipeline(transaction=True)
    pipe.incr(key)
    pipe.expire(key, window + 1)
    count, _ = await pipe.execute()
    if count > limit:
        retry_after = max(1, int(window - now % window) + 1)
        raise _TooMany(retry_after)


class _TooMany(Problem):
    def __init__(self, retry_after: int) -> None:
        super().__init__(429, "Too many requests", f"too many applications from this address; retry in {retry_after} s")
        self.retry_after = retry_after


def _form_success(connection: Connection, browser: bool, accepted: Any) -> Response[Any]:
    if browser:
        url = connection.inbound.form_thank_you_url
        if url:
            return Redirect(url, status_code=303)
        return Response(
            _page("Thank you", "<p>Your application was received.</p>"), status_code=200, media_type="text/html"
        )
    if accepted is None:
        return Response({"status": "received"}, status_code=202)
    return accepted_response(accepted.delivery_id, accepted.status, accepted.created, accepted.warnings)


def _html_error(exc: Problem) -> Response[Any]:
    items = "".join(f"<li><code>{html.escape(e.field)}</code>: {html.escape(e.message)}</li>" for e in exc.errors)
    body = f"<p>{html.escape(exc.detail)}</p>" + (f"<ul>{items}</ul>" if items else "")
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, _TooMany) else None
    return Response(_page(exc.title, body), status_code=exc.status, media_type="text/html", headers=headers)


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<h1>{html.escape(title)}</h1>{body}</html>"
    )


def router(runtime: Runtime) -> Router:
    return Router(
        path="/inbound", route_handlers=[indeed_apply, signed_webhook, career_form], request_max_body_size=None
    )
