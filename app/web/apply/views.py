"""The hosted apply pages (docs/apply-pages.md): `GET /apply/{connection}` lists the open, public
jobs, `GET /apply/{connection}/{job_id}` renders the application form from the job's screening
questions (read through `runtime.catalog`, so cached and shared). The form posts to the forms
route (`/inbound/forms/{connection}/{job}`), which calls back here to re-render the form with
its errors (`rerender`) or to thank the candidate (`success`).

Every page works without JavaScript; a small same-origin script shows a conditional question only
when its precondition holds and checks file sizes before upload. No third-party request: the CSP
allows this origin only, plus the connection's stylesheet origin and the framing origins it names.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
import structlog
from litestar import MediaType, Request, Response, Router, get
from litestar.response import Redirect

from app.catalog.service import CatalogUnavailable
from app.config import Connection
from app.core.catalog import Job, JobQuery, ScreeningQuestion
from app.core.problems import Problem
from app.intake.boards import apply_form
from app.intake.boards.forms import TOKEN_FIELD, ParsedForm
from app.intake.boards.secrets import configured_secrets
from app.net import ssrf
from app.runtime import Runtime
from app.web.apply import i18n
from app.web.page_headers import page_headers

log = structlog.get_logger("applyrelay.apply")
HERE = Path(__file__).parent
STATIC = {"apply.js": "text/javascript; charset=utf-8", "apply.css": "text/css; charset=utf-8"}
STATIC_BYTES = {name: (HERE / "static" / name).read_bytes() for name in STATIC}
ASSETS = "/apply-assets"
CV_ACCEPT = (
    ".pdf,.doc,.docx,.odt,.rtf,.txt,application/pdf,application/msword,"
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document,"
    "application/vnd.oasis.opendocument.text,application/rtf,text/plain"
)
CV_TYPES = "PDF, Word (.doc, .docx), OpenDocument (.odt), RTF, text"
QUESTION_BUDGET_S = 5.0

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
)


def _origin(url: str) -> str:
    """The origin of a checked URL (app/config.py `_apply`), from its host and port alone, the
    host in its ASCII (IDNA) form: a header is Latin-1, and a Unicode host made every page a 500."""
    parts = urlsplit(url)
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else ssrf.sent_host(url)
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port is not None else "")


def headers(connection: Connection | None) -> dict[str, str]:
    """The CSP of every apply page: this origin only, the connection's stylesheet origin, the
    framing origins it allows (none by default), its success URL as a form target."""
    apply = connection.apply if connection else None
    style = "'self'" + (f" {_origin(apply.css_url)}" if apply and apply.css_url else "")
    frames = " ".join(apply.frame_ancestors) if apply and apply.frame_ancestors else "'none'"
    form = "'self'" + (f" {_origin(apply.success_url)}" if apply and apply.success_url else "")
    return page_headers(
        {
            "script-src": "'self'",
            "style-src": style,
            "img-src": "'self'",
            "form-action": form,
            "frame-ancestors": frames,
        }
    )


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    return request.app.state.runtime


def _lang(request: Request[Any, Any, Any], connection: Connection | None, form: ParsedForm | None = None) -> str:
    chosen = (form.value("lang") if form else None) or request.query_params.get("lang")
    default = connection.apply.default_lang if connection else "en"
    return i18n.pick(chosen, request.headers.get("accept-language"), default)


def _page(template: str, status: int, connection: Connection | None, lang: str, **context: Any) -> Response[Any]:
    css = connection.apply.css_url if connection and connection.apply.css_url else f"{ASSETS}/apply.css"
    html = _env.get_template(template).render(
        t=i18n.LABELS[lang], lang=lang, css=css, assets=ASSETS, connection=connection, **context
    )
    return Response(html, media_type=MediaType.HTML, status_code=status, headers=headers(connection))


def _message(status: int, connection: Connection | None, lang: str, title: str, body: str) -> Response[Any]:
    return _page("message.html", status, connection, lang, title=title, body=body)


def _not_found(connection: Connection | None, lang: str) -> Response[Any]:
    t = i18n.LABELS[lang]
    return _message(404, connection, lang, t["not_found_title"], t["not_found_body"])


def _open_connection(runtime: Runtime, connection_id: str) -> Connection | None:
    """The connection, when it serves apply pages (enabled and a form token configured)."""
    connection = runtime.config.connections.get(connection_id)
    if connection is None or not connection.apply.enabled:
        return None
    if not configured_secrets(connection, "form_token_env", several=True):
        return None
    return connection


# -- the form's model ---------------------------------------------------------------------------


@dataclass
class Field:
    """One screening question as the template draws it."""

    question: ScreeningQuestion
    name: str
    dom_id: str
    kind: str
    condition: str | None = None
    pre_id: str | None = None
    pre_values: str = ""
    accept: str = ""
    options: list[tuple[str, str]] = field(default_factory=list)


def _condition(question: ScreeningQuestion, by_id: dict[str, ScreeningQuestion], t: dict[str, str]) -> str | None:
    parent = by_id.get(question.precondition_question_id or "")
    if parent is None:
        return None
    names = {o.id: o.name for o in parent.format.options or []}
    wanted = []
    for value in question.precondition_options or []:
        if isinstance(value, bool):
            wanted.append(t["yes"] if value else t["no"])
        else:
            wanted.append(names.get(str(value), str(value)))
    return f"{t['shown_if']} «{parent.title}» {t['answered']} «{' / '.join(wanted)}»."


def fields_of(questions: list[ScreeningQuestion], lang: str) -> list[Field]:
    t = i18n.LABELS[lang]
    by_id = {q.id: q for q in questions}
    out: list[Field] = []
    for q in sorted(questions, key=lambda q: q.index if q.index is not None else 1 << 30):
        kind: str = q.format.type
        if kind == "UNKNOWN":
            continue
        display = q.format.display_type
        if kind == "TEXT":
            kind = "TEXTAREA" if display == "MULTI_LINE" else "TEXT"
        elif kind == "SINGLE_SELECT":
            kind = "DROPDOWN" if display == "DROPDOWN" else "RADIO"
        pre_values = " ".join(
            ("true" if v else "false") if isinstance(v, bool) else str(v) for v in q.precondition_options or []
        )
        out.append(
            Field(
                question=q,
                name=apply_form.field_name(q.id, q.format.type == "MULTI_SELECT"),
                dom_id=f"q-{len(out)}",
                kind=kind,
                condition=_condition(q, by_id, t),
                pre_id=apply_form.field_name(q.precondition_question_id) if q.precondition_question_id else None,
                pre_values=pre_values,
                accept=",".join(q.format.accepted_mime_types or []),
                options=[(o.id, o.name) for o in q.format.options or []],
            )
        )
    return out


def _form_context(
    runtime: Runtime,
    connection: Connection,
    job: Job,
    questions: list[ScreeningQuestion],
    lang: str,
    form: ParsedForm | None,
    errors: dict[str, str],
    general: list[str],
) -> dict[str, Any]:
    secret = configured_secrets(connection, "form_token_env", several=True)[0]
    token = apply_form.sign(secret, connection.id, job.id, time.time(), connection.apply.token_ttl_s)
    takes = runtime.connectors.get(connection.id).capabilities.attachment_types
    return {
        "job": job,
        "fields": fields_of(questions, lang),
        "action": f"/inbound/forms/{connection.id}/{job.id}",
        "token": token,
        "token_field": TOKEN_FIELD,
        "honeypot": connection.inbound.form_honeypot_field,
        "values": form.fields if form else {},
        "errors": errors,
        "general": general,
        "resubmitted": form is not None,
        "takes_cv": "CV" in takes,
        "takes_letter": "COVER_LETTER" in takes,
        "cv_accept": CV_ACCEPT,
        "cv_types": CV_TYPES,
        "max_bytes": connection.limits.max_file_bytes,
        "max_size": i18n.size(connection.limits.max_file_bytes),
        "size": i18n.size,
        "script_messages": json.dumps(i18n.script_messages(lang)),
    }


async def _job(runtime: Runtime, connection: Connection, job_id: str, lang: str) -> Job | Response[Any]:
    """The open job with its questions, or the friendly page saying why not."""
    try:
        cached = await runtime.catalog.job(connection.id, job_id, budget_s=QUESTION_BUDGET_S)
    except CatalogUnavailable:
        t = i18n.LABELS[lang]
        return _message(503, connection, lang, t["unavailable_title"], t["unavailable_body"])
    except Problem as exc:
        if exc.status == 404:
            return _not_found(connection, lang)
        log.info("apply.job_unreadable", connection=connection.id, status=exc.status)
        t = i18n.LABELS[lang]
        return _message(503, connection, lang, t["unavailable_title"], t["unavailable_body"])
    job = cached.value
    if job.status != "OPEN" or job.visibility in ("INTERNAL", "CONFIDENTIAL"):
        return _not_found(connection, lang)
    return job


# -- routes -------------------------------------------------------------------------------------


@get("/apply/{connection_id:str}/{job_id:str}", media_type=MediaType.HTML)
async def apply_page(request: Request[Any, Any, Any], connection_id: str, job_id: str) -> Response[Any]:
    runtime = _runtime(request)
    connection = _open_connection(runtime, connection_id)
    lang = _lang(request, connection)
    if connection is None:
        return _not_found(None, lang)
    found = await _job(runtime, connection, job_id, lang)
    if isinstance(found, Response):
        return found
    context = _form_context(runtime, connection, found, found.screening_questions, lang, None, {}, [])
    return _page("form.html", 200, connection, lang, **context)


@get("/apply/{connection_id:str}", media_type=MediaType.HTML)
async def jobs_page(request: Request[Any, Any, Any], connection_id: str) -> Response[Any]:
    """The open, public jobs, one page at a time (`?cursor=` is the catalog's cursor)."""
    runtime = _runtime(request)
    connection = _open_connection(runtime, connection_id)
    lang = _lang(request, connection)
    if connection is None:
        return _not_found(None, lang)
    cursor = request.query_params.get("cursor") or None
    query = JobQuery(page_size=connection.apply.page_size, cursor=cursor, status="OPEN")
    t = i18n.LABELS[lang]
    try:
        page = (await runtime.catalog.list_jobs(connection.id, query, budget_s=QUESTION_BUDGET_S)).value
    except Problem as exc:
        if exc.status == 422:  # a cursor from elsewhere: start again
            return Redirect(f"/apply/{connection.id}?{urlencode({'lang': lang})}", status_code=303)
        return _message(503, connection, lang, t["unavailable_title"], t["unavailable_body"])
    jobs = [j for j in page.jobs if j.status == "OPEN" and j.visibility in (None, "PUBLIC")]
    next_url = (
        f"/apply/{connection.id}?{urlencode({'cursor': page.next_cursor, 'lang': lang})}" if page.next_cursor else None
    )
    return _page("jobs.html", 200, connection, lang, jobs=jobs, next_url=next_url)


@get(f"{ASSETS}/{{name:str}}")
async def asset(name: str) -> Response[bytes]:
    if name not in STATIC:
        return Response(b"not found", status_code=404, media_type="text/plain")
    return Response(
        STATIC_BYTES[name],
        media_type=STATIC[name],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


# -- called by the forms route --------------------------------------------------------------------


def is_page_post(form: ParsedForm | None) -> bool:
    return form is not None and apply_form.is_page_token(form.value(TOKEN_FIELD))


def _field_of(name: str) -> str:
    """A refusal's field as the page's form field (`question 503` from a connector's check)."""
    name = name.strip()
    if name.startswith("question ") and " " not in name[len("question ") :]:
        return apply_form.field_name(name[len("question ") :])
    return name.removesuffix("[]")


async def rerender(request: Request[Any, Any, Any], connection_id: str, job_id: str, exc: Problem) -> Response[Any]:
    """The form again, its values kept and each refusal beside its field (files must be attached
    again: the page says so)."""
    runtime = _runtime(request)
    form: ParsedForm | None = getattr(request.state, "apply_form", None)
    connection = _open_connection(runtime, connection_id)
    lang = _lang(request, connection, form)
    if connection is None:
        return _not_found(None, lang)
    found = await _job(runtime, connection, job_id, lang)
    if isinstance(found, Response):
        return found
    fields = fields_of(found.screening_questions, lang)
    known = {f.name.removesuffix("[]") for f in fields} | {"first_name", "last_name", "email", "phone", "resume"}
    known |= {"cover_letter", "gdpr_consent"}
    errors: dict[str, str] = {}
    general: list[str] = []
    for error in exc.errors:
        name = _field_of(error.field)
        message = error.message
        prefix = f"{error.field}: "
        message = message[len(prefix) :] if message.startswith(prefix) else message
        if name in known and name not in errors:
            errors[name] = i18n.error(message, lang)
        else:
            general.append(i18n.error(message, lang))
    if not exc.errors:
        general.append(exc.detail)
    status = exc.status if 400 <= exc.status < 600 else 422
    context = _form_context(runtime, connection, found, found.screening_questions, lang, form, errors, general)
    return _page("form.html", status, connection, lang, **context)


def success(request: Request[Any, Any, Any], connection: Connection) -> Response[Any]:
    """The connection's `success_url` (303), else the thank-you page in the form's language."""
    if connection.apply.success_url:
        return Redirect(connection.apply.success_url, status_code=303)
    form: ParsedForm | None = getattr(request.state, "apply_form", None)
    lang = _lang(request, connection, form)
    t = i18n.LABELS[lang]
    return _message(200, connection, lang, t["thanks_title"], t["thanks_body"])


def router(runtime: Runtime) -> Router:
    return Router(path="/", route_handlers=[apply_page, jobs_page, asset])
