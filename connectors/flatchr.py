"""Flatchr connector: one create call carries the candidate, the application, the answers and the CV.

Flatchr's write path (developers.flatchr.io, "Créer un candidat") is a single
``POST https://careers.flatchr.io/vacancy/candidate/json`` keyed by the vacancy *slug*, with the API
key both as ``Authorization: Bearer`` and as ``token`` in the body. It answers
``{"response": "applicant created"}`` without an id, so the applicant id is read back with
``POST https://api.flatchr.io/company/{companyId}/search/applicants`` (email + vacancy), which is
also the find-before-create lookup that makes re-runs safe.

Steps (checkpoint names are stable):

    source       which source this origin writes: "offerer_id:<n>", "source_id:<id>" or "none"
    create       find the applicant by (email, vacancy), else create it, CV and answers included:
                 "found:<id>", "sent" or "sent-without-cv"
    candidate    the applicant's id (read back by search after a create)
    application  the same applicant id (Flatchr's applicant is both the candidate-on-a-job and
                 the application)
    attachment:<sha256>  (non-core) confirms the one CV, sent inline by the create call

Only one file is accepted per application: the first attachment of type CV; every other file and
every FILE answer is reported as a warning (at intake and on the delivery), never dropped quietly.

Settings (`FlatchrSettings`: the connection's keys besides the relay's own, checked at start):

    company_id        Flatchr company key (required; Settings > Advanced > API)
    careers_base_url  host of the create route; default derived from base_url
                      (https://api.flatchr.io -> https://careers.flatchr.io; anything else: base_url)
    offerer_id        official Flatchr job board id (integer) written as `offerer_id`
    source_id         default custom source id written as `source_id`
    source_by_origin  table: origin key -> rule (see `resolve_source`)
    require_cv        default true: Flatchr's create route requires a resume
    max_cv_bytes      default 5_000_000: a larger CV is refused at intake
    date_format       strftime format for DATE answers, default "%Y-%m-%d"

Reads (Kombo's shapes): vacancies page by page from the one unpaginated list, streamed and
decoded only for the page asked; questions with option ids hashed from their text; the company's
columns as stages (docs/connectors/flatchr.md, "Read models").

`remote_fields.flatchr` in a request may set the create fields the unified model lacks:
comment, urls, legalNewsletterPartners, user_id, response_text (others are warned about).
Coverage, hosts and the assumptions made where Flatchr's docs are silent: docs/connectors/flatchr.md.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import math
import mimetypes
import re
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote, urlsplit

import httpx
import msgspec
from msgspec import Meta

from app.core.catalog import (
    READ_JOBS,
    READ_SCREENING_QUESTIONS,
    READ_STAGES,
    DisplayType,
    EmploymentType,
    Job,
    JobLocation,
    JobPage,
    JobQuery,
    JobStatus,
    Option,
    QuestionFormat,
    QuestionType,
    ScreeningQuestion,
    Stage,
    Visibility,
    parse_timestamp,
    text_option_id,
)
from app.core.model import AttachmentRef, StoredAnswer, StoredApplication
from app.core.pii import scrub
from connectors.base import (
    AttachmentRejected,
    Capabilities,
    ConnectionSpec,
    Connector,
    ConnectorSettings,
    PassthroughResult,
    PermanentError,
    Step,
    StepContext,
    StepWarning,
    TransientError,
    attachment_step_name,
    error_for_response,
    error_for_transport,
)
from connectors.http import ANY_STATUS, TtlCache, rest_passthrough

# -- Settings --------------------------------------------------------------------------------------

DEFAULT_MAX_CV_BYTES = 5_000_000
QUESTIONS_TTL_S = 300.0
COLUMNS_CACHE_S = 60.0
SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# An official Flatchr job board id: an integer (also accepted as a string of digits).
OffererId = int | Annotated[str, Meta(pattern=r"^\s*\d+\s*$", description="an integer job board id")]


class SourceRule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A `source_by_origin` table rule: ``{offerer_id = 152}`` or ``{source_id = "x"}``."""

    offerer_id: OffererId | None = None
    source_id: str | None = None


class FlatchrSettings(ConnectorSettings, frozen=True):  # frozen: inherited, restated for mypy
    """A Flatchr connection's own keys (module docstring, docs/connectors/flatchr.md)."""

    company_id: Annotated[
        str, Meta(pattern=SAFE_ID.pattern, description="a Flatchr company key: 1 to 64 letters, digits, - or _")
    ]
    careers_base_url: str | None = None
    offerer_id: OffererId | None = None
    source_id: str | None = None
    source_by_origin: dict[str, Literal["offerer_id", "source_id", "none"] | SourceRule] = {}
    require_cv: bool = True
    max_cv_bytes: Annotated[int, Meta(gt=0, le=2**63 - 1)] = DEFAULT_MAX_CV_BYTES  # 64 bits, as every size
    date_format: str = "%Y-%m-%d"


# -- Wire format -----------------------------------------------------------------------------------

PROD_API_HOST = "api.flatchr.io"
CREATE_PATH = "/vacancy/candidate/json"

# Create-body fields a client may set through `remote_fields.flatchr` (Flatchr's create docs).
REMOTE_FIELDS = frozenset({"comment", "urls", "legalNewsletterPartners", "user_id", "response_text"})

# Vacancy `status` (an undocumented integer; the docs' examples show 1 for an online vacancy).
# assumption: 1 online, 0 offline (closed), 2 archived; anything else CLOSED. No DRAFT.
VACANCY_STATUS: dict[int, JobStatus] = {1: "OPEN", 0: "CLOSED", 2: "ARCHIVED"}
STATUS_FILTER: dict[JobStatus, int] = {v: k for k, v in VACANCY_STATUS.items()}
# `contract_type` (the vacancy's contract label) -> Kombo's employment type; `partial` wins.
CONTRACT_EMPLOYMENT: dict[str, EmploymentType] = {
    "cdi": "FULL_TIME",
    "cdd": "CONTRACT",
    "freelance": "CONTRACT",
    "intérim": "CONTRACT",
    "interim": "CONTRACT",
    "stage": "INTERNSHIP",
    "alternance": "INTERNSHIP",
    "apprentissage": "INTERNSHIP",
    "saisonnier": "SEASONAL",
}
MAX_PAGE = 250


option_id = text_option_id  # the reads' option ids (app/core/catalog.py)
_when = parse_timestamp


def job_from_vacancy(vacancy: Mapping[str, Any]) -> Job:
    """A Flatchr vacancy in Kombo's Job shape (questions and stages: `get_job`)."""
    raw_status = vacancy.get("status")
    status = VACANCY_STATUS.get(raw_status, "CLOSED") if isinstance(raw_status, int) else "CLOSED"
    published = vacancy.get("published")
    visibility: Visibility | None = None
    if status == "OPEN" and published is not None:
        visibility = "PUBLIC" if published else "UNLISTED"
    contract = str(vacancy.get("contract_type") or "").strip().lower()
    employment = "PART_TIME" if vacancy.get("partial") is True else CONTRACT_EMPLOYMENT.get(contract)
    address = vacancy.get("address")
    location = None
    if isinstance(address, dict):
        country = address.get("country")
        location = JobLocation(
            city=address.get("locality") or None,
            zip_code=address.get("postal_code") or None,
            state=address.get("administrative_area_level_1") or None,
            country=country.upper() if isinstance(country, str) and len(country) == 2 else None,
            raw=address.get("formatted_address") or (country if isinstance(country, str) else None),
        )
    parts = [vacancy.get(k) for k in ("description", "mission", "profile")]
    description = "\n".join(p for p in parts if isinstance(p, str) and p) or None
    return Job(
        id=str(vacancy["id"]),
        remote_id=str(vacancy["id"]),
        name=str(vacancy.get("title") or ""),
        status=status,
        description=description,
        job_code=vacancy.get("reference") or None,
        visibility=visibility,
        post_url=vacancy.get("apply_url") or None,
        location=location,
        employment_type=employment,
        changed_at=_when(vacancy.get("updated_at")),
        remote_created_at=_when(vacancy.get("created_at")),
        remote_data=dict(vacancy),
    )


def _job_matches(job: Job, query: JobQuery) -> bool:
    """The filters Flatchr's listing lacks, applied to each page read."""
    if query.name_contains and query.name_contains.casefold() not in job.name.casefold():
        return False
    if query.updated_after is not None:
        after = query.updated_after if query.updated_after.tzinfo else query.updated_after.replace(tzinfo=dt.UTC)
        return job.changed_at is not None and job.changed_at > after
    return True


async def json_array_items(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The raw bytes of each element of a top-level JSON array, as the body streams in: Flatchr
    answers its vacancy list as one array without pagination, and this reads it element by
    element so a page decodes only its own vacancies and stops reading after them."""
    depth, in_string, escaped, started = 0, False, False, False
    item = bytearray()
    async for chunk in chunks:
        for byte in chunk:
            if in_string:
                item.append(byte)
                if escaped:
                    escaped = False
                elif byte == 0x5C:  # backslash
                    escaped = True
                elif byte == 0x22:
                    in_string = False
                continue
            if not started:
                if byte == 0x5B:  # [
                    started, depth = True, 1
                elif byte not in b" \t\r\n":
                    raise ValueError("not a JSON array")
                continue
            if byte == 0x22:
                in_string = True
                item.append(byte)
            elif byte in b"[{":
                depth += 1
                item.append(byte)
            elif byte in b"]}":
                if depth == 1:
                    if item.strip():
                        yield bytes(item)
                    return
                depth -= 1
                item.append(byte)
            elif byte == 0x2C and depth == 1:  # a comma between elements
                yield bytes(item)
                item.clear()
            else:
                item.append(byte)
    raise ValueError("the JSON array ends early")


def response_reason(response: httpx.Response, secrets_: list[str]) -> str:
    """The Boom message of a Flatchr error (`{"statusCode","error","message"}`), scrubbed."""
    try:
        body = response.json()
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    message = body.get("message") or body.get("error") or ""
    return scrub(str(message), secrets_, numbers=True, limit=200) if message else ""


def pick_cv(attachments: list[AttachmentRef]) -> AttachmentRef | None:
    """Flatchr takes one file: the first attachment of type CV."""
    return next((a for a in attachments if a.type == "CV"), None)


def origin_keys(application: StoredApplication) -> list[str]:
    """Keys tried in `source_by_origin`, most specific first."""
    origin = application.origin
    keys = []
    if origin.board:
        keys += [f"{origin.channel}:{origin.board}", origin.board]
    return [*keys, origin.channel, "default"]


def _offerer(value: int | str | None) -> int | None:
    if isinstance(value, str):
        return int(value.strip()) if value.strip().isdigit() else None
    return value


def resolve_source(settings: FlatchrSettings, application: StoredApplication) -> tuple[str, str | None]:
    """Which Flatchr source this application writes, as (marker, problem).

    marker is "offerer_id:<n>" (an official Flatchr job board), "source_id:<id>" (a custom
    source) or "none"; problem is a PII-free reason when a rule could not be honoured.

    `source_by_origin` maps an origin key ("<channel>:<board>", "<board>", "<channel>" or
    "default"; channel is api | indeed | webhook | form) to a rule:

    * ``"offerer_id"``          the connection's `offerer_id`
    * ``{offerer_id = 152}``    that job board
    * ``"source_id"``           the request's `source.id`, else the connection's `source_id`
    * ``{source_id = "x"}``     the request's `source.id`, else "x"
    * ``"none"``                write no source

    Without a matching rule: the request's `source.id`, else the connection's `source_id`, else
    its `offerer_id`, else none."""
    request_source = application.source.id if application.source and application.source.id else None
    rules = settings.source_by_origin
    rule = next((rules[k] for k in origin_keys(application) if k in rules), None)
    conn_offerer = _offerer(settings.offerer_id)
    conn_source = settings.source_id or None
    if rule is None:
        if request_source or conn_source:
            return f"source_id:{request_source or conn_source}", None
        return (f"offerer_id:{conn_offerer}", None) if conn_offerer is not None else ("none", None)
    if rule == "none":
        return "none", None
    if rule == "offerer_id" or (isinstance(rule, SourceRule) and rule.offerer_id is not None):
        offerer = conn_offerer if not isinstance(rule, SourceRule) else _offerer(rule.offerer_id)
        if offerer is None:
            return "none", "source rule for this origin needs an integer offerer_id; no source written"
        return f"offerer_id:{offerer}", None
    if rule == "source_id" or (isinstance(rule, SourceRule) and rule.source_id is not None):
        fallback = conn_source if not isinstance(rule, SourceRule) else (rule.source_id or conn_source)
        chosen = request_source or fallback
        if not chosen:
            return "none", "source rule for this origin needs a source_id; no source written"
        return f"source_id:{chosen}", None
    return "none", "source rule for this origin is not understood; no source written"


# -- Answer encoding -------------------------------------------------------------------------------


# Flatchr question `type` strings -> unified types. assumption: Flatchr does not document the
# values `question.type` takes; these are the names its form builder shows, unknown ones -> TEXT.
QUESTION_TYPES: dict[str, str] = {
    "text": "TEXT",
    "textarea": "TEXT",
    "string": "TEXT",
    "email": "TEXT",
    "url": "TEXT",
    "phone": "TEXT",
    "yesno": "BOOLEAN",
    "boolean": "BOOLEAN",
    "bool": "BOOLEAN",
    "radio": "SINGLE_SELECT",
    "select": "SINGLE_SELECT",
    "list": "SINGLE_SELECT",
    "dropdown": "SINGLE_SELECT",
    "checkbox": "MULTI_SELECT",
    "checkboxes": "MULTI_SELECT",
    "multiselect": "MULTI_SELECT",
    "multiple": "MULTI_SELECT",
    "number": "NUMBER",
    "integer": "NUMBER",
    "numeric": "NUMBER",
    "date": "DATE",
    "file": "FILE",
    "upload": "FILE",
    "document": "FILE",
}

# Flatchr question `type` -> Kombo's display_type (TEXT, NUMBER, SINGLE_SELECT).
DISPLAY_TYPES: dict[str, DisplayType] = {
    "text": "SINGLE_LINE",
    "string": "SINGLE_LINE",
    "phone": "SINGLE_LINE",
    "textarea": "MULTI_LINE",
    "email": "EMAIL",
    "url": "URL",
    "radio": "RADIO",
    "select": "DROPDOWN",
    "list": "DROPDOWN",
    "dropdown": "DROPDOWN",
    "number": "FIELD",
    "integer": "FIELD",
    "numeric": "FIELD",
}

TRUE_WORDS = frozenset({"true", "yes", "oui", "1", "y"})
FALSE_WORDS = frozenset({"false", "no", "non", "0", "n"})


class AnswerError(ValueError):
    """An answer that cannot be encoded for its question; the message names no value."""


def question_options(question: Mapping[str, Any]) -> list[str]:
    """Flatchr keeps options as one ";"-separated string."""
    raw = question.get("options") or ""
    if isinstance(raw, list):
        return [str(o).strip() for o in raw if str(o).strip()]
    return [o.strip() for o in str(raw).split(";") if o.strip()]


def unified_type(question: Mapping[str, Any]) -> str:
    return QUESTION_TYPES.get(str(question.get("type") or "").lower(), "TEXT")


def boolean_labels(question: Mapping[str, Any], language: str) -> tuple[str, str]:
    """(yes, no) as the vacancy spells them. With two options, the one that reads as yes (oui,
    yes, true...) else the first (assumption); without options Oui/Non for French vacancies (the
    docs' answer example is "Oui"), Yes/No otherwise."""
    options = question_options(question)
    if len(options) == 2:
        first, second = options
        if second.strip().lower() in TRUE_WORDS | {"vrai"} and first.strip().lower() not in TRUE_WORDS:
            return second, first
        return first, second
    return ("Oui", "Non") if language.lower().startswith("fr") else ("Yes", "No")


def _match_option(value: Any, options: list[str], qid: str) -> str:
    """The option an answer names: by its id (`option_id`, what the reads expose) or its text."""
    text = str(value).strip()
    by_id = {option_id(o): o for o in options}
    if text in by_id:
        return by_id[text]
    if text in options:
        return text
    folded = {o.casefold(): o for o in options}
    if text.casefold() in folded:
        return folded[text.casefold()]
    raise AnswerError(f"answer to question {qid} is not one of its options")


def _as_bool(value: Any, qid: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise AnswerError(f"answer to question {qid} must be a boolean")


def _as_number(value: Any, qid: str) -> str:
    if isinstance(value, bool):
        raise AnswerError(f"answer to question {qid} must be a number")
    try:
        number = float(str(value).replace(",", ".")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise AnswerError(f"answer to question {qid} must be a number") from None
    if not math.isfinite(number):
        raise AnswerError(f"answer to question {qid} must be a finite number")
    return str(int(number)) if number.is_integer() else repr(number)


def _as_date(value: Any, qid: str, date_format: str) -> str:
    try:
        day = dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise AnswerError(f"answer to question {qid} must be an ISO date") from None
    return day.strftime(date_format)


def question_from_raw(question: Mapping[str, Any], language: str, parents: Mapping[str, Any]) -> ScreeningQuestion:
    """One Flatchr question in Kombo's shape: type by `unified_type`, display type by the raw
    type, `size` as TEXT's max_length (assumption), options with `option_id`s, and the
    condition (`parent_question` / `parent_answer_expected`, the expected answer's text) as
    Kombo's precondition: option ids for a select parent, [True] / [False] for a yes/no one."""
    raw_type = str(question.get("type") or "").lower()
    kind: QuestionType = unified_type(question)  # type: ignore[assignment]
    options = None
    if kind in ("SINGLE_SELECT", "MULTI_SELECT"):
        options = [Option(id=option_id(o), remote_id=option_id(o), name=o) for o in question_options(question)]
    size = question.get("size")
    max_length = size if kind == "TEXT" and isinstance(size, int) and not isinstance(size, bool) and size > 0 else None
    display = DISPLAY_TYPES.get(raw_type) if kind in ("TEXT", "NUMBER", "SINGLE_SELECT") else None
    if kind == "TEXT" and display is None:
        display = "SINGLE_LINE"
    parent_id = question.get("parent_question")
    precondition: list[str | bool] | None = None
    if parent_id:
        expected = str(question.get("parent_answer_expected") or "")
        parent = parents.get(str(parent_id))
        parent_kind = unified_type(parent) if parent is not None else "TEXT"
        if parent is not None and parent_kind == "BOOLEAN":
            yes, _ = boolean_labels(parent, language)
            precondition = [expected.strip().casefold() == yes.strip().casefold()]
        elif parent_kind in ("SINGLE_SELECT", "MULTI_SELECT"):
            precondition = [option_id(expected)]
        else:
            precondition = [expected]
    position = question.get("position")
    return ScreeningQuestion(
        id=str(question.get("id")),
        remote_id=str(question.get("id")),
        title=str(question.get("text") or ""),
        format=QuestionFormat(type=kind, display_type=display, max_length=max_length, options=options),
        required=bool(question.get("required")),
        index=position if isinstance(position, int) and not isinstance(position, bool) else None,
        precondition_question_id=str(parent_id) if parent_id else None,
        precondition_options=precondition,
    )


def encode_answer(question: Mapping[str, Any], answer: Any, *, language: str, date_format: str = "%Y-%m-%d") -> str:
    """One canonical answer -> Flatchr's `value` string, by the question's unified type.

    TEXT as given; BOOLEAN as the vacancy's yes/no label; SINGLE_SELECT as the option text (option
    ids are the option texts, see `FlatchrConnector.screening_questions`); MULTI_SELECT as option
    texts joined with ";" (options named by `option_id` or by text; assumption: Flatchr
    stores multiple values ";"-separated, as it does
    for `options` and multi-value tags); NUMBER as a plain decimal; DATE with `date_format`
    (assumption: ISO, which is what an HTML date input on the career site posts)."""
    qid = str(question.get("id"))
    kind = unified_type(question)
    if isinstance(answer, AttachmentRef) or kind == "FILE":
        raise AnswerError(f"FILE answer to question {qid} is not supported on create")
    options = question_options(question)
    if kind == "BOOLEAN":
        yes, no = boolean_labels(question, language)
        return yes if _as_bool(answer, qid) else no
    if kind == "SINGLE_SELECT":
        if isinstance(answer, list):
            if len(answer) != 1:
                raise AnswerError(f"answer to question {qid} must be exactly one option")
            answer = answer[0]
        return _match_option(answer, options, qid)
    if kind == "MULTI_SELECT":
        values = answer if isinstance(answer, list) else [answer]
        if not values:
            raise AnswerError(f"answer to question {qid} must select at least one option")
        return ";".join(_match_option(v, options, qid) for v in values)
    if kind == "NUMBER":
        return _as_number(answer, qid)
    if kind == "DATE":
        return _as_date(answer, qid, date_format)
    if isinstance(answer, list):
        return ", ".join(str(v) for v in answer)
    if isinstance(answer, bool):
        return "true" if answer else "false"
    return str(answer)


# -- Connector -------------------------------------------------------------------------------------


class FlatchrConnector(Connector[FlatchrSettings]):
    """Flatchr (French ATS); see the module docstring for steps and settings."""

    name: ClassVar[str] = "flatchr"
    settings_type = FlatchrSettings
    default_base_url = "https://api.flatchr.io"

    capabilities: ClassVar[Capabilities] = Capabilities(
        attachment_types=frozenset({"CV"}),
        actions=frozenset(),  # no post-create action: Flatchr's current API has no file upload route
        reads=frozenset({READ_JOBS, READ_SCREENING_QUESTIONS, READ_STAGES}),  # no sources list in its API
    )

    def __init__(self, connection: ConnectionSpec[FlatchrSettings], http: httpx.AsyncClient) -> None:
        super().__init__(connection, http)
        self._vacancies: TtlCache[str, dict[str, Any]] = TtlCache(QUESTIONS_TTL_S)
        self._columns: TtlCache[str, list[dict[str, Any]]] = TtlCache(COLUMNS_CACHE_S)

    # -- Transport ---------------------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        return self.connection.base_url.rstrip("/")

    @property
    def careers_base(self) -> str:
        """Host of the create route. assumption: a non-production base_url (sandbox, proxy)
        serves both path sets unless `careers_base_url` says otherwise; api.<x>.flatchr.io ->
        careers.<x>.flatchr.io (the demo careers host is not documented)."""
        explicit = self.settings.careers_base_url
        if explicit:
            return explicit.rstrip("/")
        parts = urlsplit(self.api_base)
        host = parts.hostname or ""
        if host.startswith("api.") and host.endswith("flatchr.io"):
            return f"{parts.scheme}://careers.{host[4:]}"
        return self.api_base

    @property
    def company_id(self) -> str:
        return self.settings.company_id  # its shape is checked when the config is read

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.connection.credentials}", "Accept": "application/json"}

    async def _send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        expect: tuple[int, ...] = (200, 201),
        pii: list[str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One call with auth; failures classified with Flatchr's own (scrubbed) reason."""
        kwargs.setdefault("timeout", self.connection.timeout_s)
        kwargs["headers"] = {**self._headers(), **kwargs.get("headers", {})}
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise error_for_transport(exc, what, sent=True) from None
        if response.status_code not in expect:
            reason = response_reason(response, [self.connection.credentials, *(pii or [])])
            raise error_for_response(response, f"{what} ({reason})" if reason else what)
        return response

    async def verify_credentials(self) -> None:
        """`GET /company/{companyId}/columns`: a few pipeline columns, read with the key for this
        company, so a wrong key (401) and a key of another company (403) are both caught, with
        Flatchr's message (docs/connections.md)."""
        await self._send("GET", f"{self.api_base}/company/{self.company_id}/columns", what="flatchr check credentials")

    @staticmethod
    def _pii(app: StoredApplication) -> list[str]:
        c = app.candidate
        values = [c.first_name, c.last_name, c.email_address, c.phone_number or ""]
        values += [a.answer for a in app.screening_question_answers if isinstance(a.answer, str)]
        return [v for v in values if v]

    # -- Intake check ------------------------------------------------------------------------------

    def check(self, application: StoredApplication) -> tuple[list[str], list[StepWarning]]:
        errors: list[str] = []
        cv = pick_cv(application.attachments)
        if cv is None and self.settings.require_cv:
            errors.append(
                "attachments: Flatchr requires an attachment of type CV (or set require_cv = false on the connection)"
            )
        max_bytes = self.settings.max_cv_bytes
        if cv is not None and cv.size is not None and cv.size > max_bytes:
            errors.append(f"attachments: the CV is larger than Flatchr accepts ({max_bytes} bytes)")
        warnings = extra_attachment_warnings(application.attachments)
        warnings += file_answer_warnings(application.screening_question_answers)
        warnings += unsupported_field_warnings(application)
        _, problem = resolve_source(self.settings, application)
        if problem:
            warnings.append(StepWarning("source_not_written", problem))
        return errors, warnings

    # -- Plan --------------------------------------------------------------------------------------

    def plan(self, application: StoredApplication) -> list[Step]:
        steps = [
            Step("source", self._step_source),
            Step("create", self._step_create),
            Step("candidate", self._step_candidate),
            Step("application", self._step_application),
        ]
        cv = pick_cv(application.attachments)
        if cv is not None:
            steps.append(Step(attachment_step_name(cv), self._step_cv, attachment=cv, core=False))
        return steps

    # -- Steps -------------------------------------------------------------------------------------

    async def _step_source(self, ctx: StepContext) -> str:
        marker, problem = resolve_source(self.settings, self._app(ctx))
        if problem:
            ctx.warn("source_not_written", problem)
        return marker

    async def _step_create(self, ctx: StepContext) -> str:
        """Find the applicant on this vacancy by e-mail, else create it (one call carrying CV,
        answers and source). Returns ``found:<id>``, ``sent`` or ``sent-without-cv``. Split from
        the id lookup so that a search lagging behind the write never leads to a second create."""
        app = self._app(ctx)
        job_id = self._job_id(app)
        found = await self._find_applicant(app.candidate.email_address, job_id)
        if found:
            return f"found:{found}"
        vacancy = await self._vacancy(job_id)
        for warning in extra_attachment_warnings(app.attachments) + file_answer_warnings(
            app.screening_question_answers
        ):
            ctx.warn(warning.code, warning.message)
        try:
            await self._create(ctx, app, vacancy, with_cv=True)
            return "sent"
        except AttachmentRejected as exc:
            if self.settings.require_cv:
                raise PermanentError(
                    f"Flatchr requires a CV and refused this one: {exc.detail}", status=exc.status
                ) from None
            ctx.warn("attachment_rejected", f"the CV was refused on create ({exc.detail}); sent without it")
            await self._create(ctx, app, vacancy, with_cv=False)
            return "sent-without-cv"

    async def _create(
        self, ctx: StepContext, app: StoredApplication, vacancy: Mapping[str, Any], *, with_cv: bool
    ) -> None:
        payload = await self._create_payload(ctx, app, vacancy, with_cv=with_cv)
        try:
            # 409: this e-mail already applied to this vacancy (a concurrent or earlier delivery):
            # success; the next step reads the existing applicant's id.
            await self._send(
                "POST",
                f"{self.careers_base}{CREATE_PATH}",
                what="flatchr create applicant",
                expect=(200, 201, 409),
                json=payload,
                pii=self._pii(app),
            )
        except PermanentError as exc:
            if with_cv and exc.status in (413, 415):
                raise AttachmentRejected(exc.detail, status=exc.status) from None
            raise

    async def _step_candidate(self, ctx: StepContext) -> str:
        """The applicant's id, read back by search (Flatchr's create answer carries none)."""
        app = self._app(ctx)
        kind, _, found = ctx.remote_id("create").partition(":")
        if kind == "found":
            return found
        searched = await self._find_applicant(app.candidate.email_address, self._job_id(app))
        if searched:
            return searched
        raise TransientError("flatchr create applicant: accepted but not found by search yet")

    async def _step_application(self, ctx: StepContext) -> str:
        """Flatchr's applicant is the application: same id, recorded under its own step."""
        return ctx.remote_id("candidate")

    async def _step_cv(self, ctx: StepContext) -> str:
        """The CV went inline with the create call (Flatchr has no separate upload route in its
        current docs). Confirmed only if this delivery's create carried it, or Flatchr shows a CV
        on the applicant (an earlier run's create, whose answer was lost, may have carried it)."""
        applicant = ctx.remote_id("candidate")
        created = ctx.remote_id("create")
        if created == "sent":
            return f"{applicant}/cv"
        if created == "sent-without-cv":
            raise AttachmentRejected("Flatchr refused the CV on create")
        files = await self.candidate_attachments(applicant)
        if any(f["type"] == "CV" for f in files):
            return f"{applicant}/cv"
        raise AttachmentRejected(
            "the applicant existed before this delivery and Flatchr takes no CV upload for an existing applicant"
        )

    async def _create_payload(
        self, ctx: StepContext, app: StoredApplication, vacancy: Mapping[str, Any], *, with_cv: bool = True
    ) -> dict[str, Any]:
        slug = vacancy.get("slug")
        if not isinstance(slug, str) or not slug:
            raise PermanentError("flatchr vacancy has no slug")
        payload: dict[str, Any] = {
            "vacancy": slug,
            "firstname": app.candidate.first_name,
            "lastname": app.candidate.last_name,
            "email": app.candidate.email_address,
            "token": self.connection.credentials,
        }
        if app.candidate.phone_number:
            payload["phone"] = app.candidate.phone_number
        cv = pick_cv(app.attachments) if with_cv else None
        if cv is not None:
            payload["type"] = "document"
            payload["resume"] = await self._resume(ctx, cv)
        answers = self._answers(app, vacancy)
        if answers:
            payload["answers"] = answers
        extra = app.remote_fields.get("flatchr")
        if isinstance(extra, Mapping):
            payload.update({k: v for k, v in extra.items() if k in REMOTE_FIELDS})
        payload.update(self._source_fields(ctx.checkpoints.get("source", "none")))
        return payload

    async def _resume(self, ctx: StepContext, cv: AttachmentRef) -> dict[str, str]:
        data = await ctx.load_attachment(cv)
        max_bytes = self.settings.max_cv_bytes
        if len(data) > max_bytes:
            raise AttachmentRejected(f"the CV is larger than Flatchr accepts ({max_bytes} bytes)", status=413)
        content_type = cv.content_type or mimetypes.guess_type(cv.name)[0] or "application/pdf"
        return {"data": base64.b64encode(data).decode("ascii"), "fileName": cv.name, "contentType": content_type}

    def _answers(self, app: StoredApplication, vacancy: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Canonical answers -> Flatchr's answers array: `question` is the question's text
        (Flatchr's answer schema: "texte de la question ou ID du tag"), `value` a string."""
        questions = {str(q.get("id")): q for q in vacancy.get("questions") or []}
        language = str(vacancy.get("language") or "fr_FR")
        date_format = self.settings.date_format
        out = []
        for answer in app.screening_question_answers:
            if isinstance(answer.answer, AttachmentRef):
                continue  # warned: FILE answers are not supported on create
            question = questions.get(answer.question_id)
            if question is None:
                raise PermanentError(f"question {answer.question_id} is not a question of this vacancy")
            if unified_type(question) == "FILE":
                continue
            try:
                value = encode_answer(question, answer.answer, language=language, date_format=date_format)
            except AnswerError as exc:
                raise PermanentError(str(exc)) from None
            out.append({"question": question.get("text"), "value": value})
        return out

    @staticmethod
    def _source_fields(marker: str) -> dict[str, Any]:
        kind, _, value = marker.partition(":")
        if kind == "offerer_id" and value.isdigit():
            return {"offerer_id": int(value)}
        if kind == "source_id" and value:
            return {"source_id": value}
        return {}

    @staticmethod
    def _app(ctx: StepContext) -> StoredApplication:
        if ctx.application is None:
            raise PermanentError("flatchr steps need an application")
        return ctx.application

    def _job_id(self, app: StoredApplication) -> str:
        return self._safe_id(app.application.job_id, "job_id")

    @staticmethod
    def _safe_id(value: str, what: str) -> str:
        if not isinstance(value, str) or not SAFE_ID.match(value):
            raise PermanentError(f"{what} is not a Flatchr id")
        return value

    # -- Actions -----------------------------------------------------------------------------------
    # None: Flatchr's current API has no post-create write (no file upload route); the base
    # class refuses every action.

    # -- Reads -------------------------------------------------------------------------------------

    async def _find_applicant(self, email: str, job_id: str) -> str | None:
        response = await self._send(
            "POST",
            f"{self.api_base}/company/{self.company_id}/search/applicants",
            what="flatchr search applicants",
            json={"email": email, "vacancy": job_id},
        )
        rows = response.json()
        if not isinstance(rows, list):
            raise TransientError("flatchr search applicants: unexpected answer shape")
        # Rows are checked, not trusted: a search ignoring a filter must not pick another
        # person's or another vacancy's applicant.
        vacancy_id = (await self._vacancy(job_id)).get("vacancy_id")
        for row in rows:
            if not isinstance(row, dict) or not row.get("applicant"):
                continue
            same_person = str(row.get("email") or "").lower() == email.lower()
            same_vacancy = vacancy_id is None or str(row.get("vacancy_id")) == str(vacancy_id)
            if same_person and same_vacancy:
                return str(row["applicant"])
        return None

    async def _vacancy(self, job_id: str) -> dict[str, Any]:
        """The vacancy with its questions, cached briefly (questions change rarely)."""

        async def load() -> dict[str, Any]:
            response = await self._send(
                "GET",
                f"{self.api_base}/vacancy/{quote(job_id, safe='')}",
                what="flatchr get vacancy",
                params={"fields": "questions"},
            )
            vacancy = response.json()
            if not isinstance(vacancy, dict):
                raise TransientError("flatchr get vacancy: unexpected answer shape")
            return vacancy

        return await self._vacancies.get_or_load(job_id, load)

    async def list_jobs(self, query: JobQuery) -> JobPage:
        """One page of ``GET /company/{companyId}/vacancies?fields=address[&status=]``. Flatchr
        answers one JSON array, unpaginated: the cursor is an offset into it, the body is read
        element by element (`json_array_items`), only the page's vacancies are decoded and the
        connection is closed right after them. `status` is Flatchr's own filter; name and update
        date are applied per page (docs/connectors/flatchr.md, "Pagination and filters")."""
        if query.status is not None and query.status not in STATUS_FILTER:
            return JobPage(jobs=[])  # no Flatchr status is a DRAFT
        offset = 0
        if query.cursor:
            if not query.cursor.isdigit():
                raise PermanentError("cursor is not one of this listing's", status=400)
            offset = int(query.cursor)
        size = max(1, min(query.page_size, MAX_PAGE))
        params = {"fields": "address"}
        if query.status is not None:
            params["status"] = str(STATUS_FILTER[query.status])
        url = f"{self.api_base}/company/{self.company_id}/vacancies"
        jobs: list[Job] = []
        more = False
        try:
            async with self.http.stream(
                "GET", url, params=params, headers=self._headers(), timeout=self.connection.timeout_s
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    reason = response_reason(response, [self.connection.credentials])
                    what = "flatchr list vacancies"
                    raise error_for_response(response, f"{what} ({reason})" if reason else what)
                index = 0
                async for raw in json_array_items(response.aiter_bytes()):
                    if index >= offset + size:
                        more = True
                        break
                    if index >= offset:
                        vacancy = msgspec.json.decode(raw)
                        if isinstance(vacancy, dict) and vacancy.get("id"):
                            jobs.append(job_from_vacancy(vacancy))
                    index += 1
        except httpx.HTTPError as exc:
            raise error_for_transport(exc, "flatchr list vacancies", sent=True) from None
        except (ValueError, msgspec.DecodeError):
            raise TransientError("flatchr list vacancies: unexpected answer shape") from None
        return JobPage(
            jobs=[j for j in jobs if _job_matches(j, query)], next_cursor=str(offset + size) if more else None
        )

    async def _fresh_vacancy(self, job_id: str) -> dict[str, Any] | None:
        """The vacancy with its questions and address, read now (and kept for the delivery's
        cache); None when Flatchr has no such vacancy."""
        try:
            response = await self._send(
                "GET",
                f"{self.api_base}/vacancy/{quote(self._safe_id(job_id, 'job_id'), safe='')}",
                what="flatchr get vacancy",
                params={"fields": "questions,address"},
            )
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        vacancy = response.json()
        if not isinstance(vacancy, dict):
            raise TransientError("flatchr get vacancy: unexpected answer shape")
        self._vacancies.put(job_id, vacancy)
        return vacancy

    @staticmethod
    def _questions_of(vacancy: Mapping[str, Any]) -> list[ScreeningQuestion]:
        rows = [q for q in vacancy.get("questions") or [] if isinstance(q, dict)]
        parents = {str(q.get("id")): q for q in rows}
        language = str(vacancy.get("language") or "fr_FR")
        questions = [question_from_raw(q, language, parents) for q in rows]
        return sorted(questions, key=lambda q: (q.index is None, q.index or 0))

    async def get_job(self, job_id: str) -> Job | None:
        if not SAFE_ID.match(job_id):
            return None
        vacancy = await self._fresh_vacancy(job_id)
        if vacancy is None:
            return None
        job = job_from_vacancy(vacancy)
        return msgspec.structs.replace(
            job, screening_questions=self._questions_of(vacancy), stages=await self.list_stages()
        )

    async def job_questions(self, job_id: str) -> list[ScreeningQuestion]:
        """The vacancy's questions (``GET /vacancy/{id}?fields=questions``), by position."""
        vacancy = await self._fresh_vacancy(job_id) if SAFE_ID.match(job_id) else None
        if vacancy is None:
            raise PermanentError(f"vacancy {job_id} not found", status=404)
        return self._questions_of(vacancy)

    async def list_stages(self, job_id: str | None = None) -> list[Stage]:
        """The company's pipeline columns (``GET /company/{companyId}/columns``): Flatchr's
        stages are company-wide, so a job's stages are the same columns (hidden ones too)."""
        columns = await self._company_columns()
        ordered = sorted(columns, key=_position)
        return [
            Stage(
                id=str(c.get("id")),
                remote_id=str(c.get("id")),
                name=str(c.get("title") or ""),
                index=c.get("position") if isinstance(c.get("position"), int) else None,
            )
            for c in ordered
            if c.get("id") is not None
        ]

    async def job_status(self, job_id: str) -> str | None:
        """ "open" for an OPEN vacancy, "closed" for another, "missing" when Flatchr has none."""
        if not SAFE_ID.match(job_id):
            return "missing"
        vacancy = await self._fresh_vacancy(job_id)
        if vacancy is None:
            return "missing"
        return "open" if job_from_vacancy(vacancy).status == "OPEN" else "closed"

    async def screening_questions(self, job_id: str) -> list[dict[str, Any]]:
        """The vacancy's questions; option ids are the option texts (Flatchr has no option ids)."""
        vacancy = await self._vacancy(self._safe_id(job_id, "job_id"))
        out = []
        for q in vacancy.get("questions") or []:
            options = question_options(q)
            kind = unified_type(q)
            if kind == "BOOLEAN" and not options:
                options = list(boolean_labels(q, str(vacancy.get("language") or "fr_FR")))
            out.append(
                {
                    "id": str(q.get("id")),
                    "type": kind,
                    "required": bool(q.get("required")),
                    "label": q.get("text"),
                    "options": [{"id": o, "label": o} for o in options],
                    "remote_type": q.get("type"),
                    "index": q.get("position"),
                    "precondition_question_id": q.get("parent_question"),
                    "precondition_options": [expected] if (expected := q.get("parent_answer_expected")) else [],
                }
            )
        return out

    async def application_status(self, application_id: str, job_id: str | None = None) -> dict[str, Any] | None:
        """For status sync: the applicant's pipeline column, read from a search of the vacancy's
        applicants (no candidate data needed) and the company's columns (their `hired` flag).
        assumption: an applicant no longer listed among the vacancy's active applicants was
        archived, which in Flatchr means turned down."""
        if not job_id:
            return None
        response = await self._send(
            "POST",
            f"{self.api_base}/company/{self.company_id}/search/applicants",
            what="flatchr search vacancy applicants",
            json={"vacancy": self._safe_id(job_id, "job_id")},
        )
        rows = response.json()
        if not isinstance(rows, list):
            raise TransientError("flatchr search applicants: unexpected answer shape")
        row = next((r for r in rows if isinstance(r, dict) and str(r.get("applicant")) == application_id), None)
        if row is None:
            return {"stage_id": None, "stage_name": None, "outcome": "DECLINED", "archived": True}
        columns = await self._company_columns()
        column = next((c for c in columns if c.get("title") == row.get("column")), None)
        return {
            "stage_id": str(column["id"]) if column and column.get("id") else None,
            "stage_name": row.get("column"),
            "outcome": "HIRED" if column and column.get("hired") else "PENDING",
        }

    async def _company_columns(self) -> list[dict[str, Any]]:
        """The company's pipeline columns, re-read at most every minute."""

        async def load() -> list[dict[str, Any]]:
            response = await self._send(
                "GET", f"{self.api_base}/company/{self.company_id}/columns", what="flatchr list columns"
            )
            rows = response.json()
            return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []

        return await self._columns.get_or_load("all", load)

    async def candidate_attachments(self, candidate_id: str) -> list[dict[str, Any]]:
        """Files of a Flatchr applicant (the relay's candidate id is the applicant id), from
        ``GET /company/{companyId}/applicant/{applicantId}/medias``. assumption: that route of
        the 2020 docs is served by api.flatchr.io."""
        applicant = self._safe_id(candidate_id, "candidate_id")
        response = await self._send(
            "GET",
            f"{self.api_base}/company/{self.company_id}/applicant/{applicant}/medias",
            what="flatchr list applicant files",
        )
        rows = response.json()
        if not isinstance(rows, list):
            raise TransientError("flatchr list applicant files: unexpected answer shape")
        return [self._attachment_row(r) for r in rows if isinstance(r, dict)]

    @staticmethod
    def _attachment_row(row: Mapping[str, Any]) -> dict[str, Any]:
        raw = row.get("attachment")
        attachment: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        name = str(attachment.get("name") or "")
        tag = str(row.get("tag") or "").lower()
        return {
            "id": str(attachment.get("id") or row.get("id") or ""),
            "name": name,
            "content_type": mimetypes.guess_type(name)[0],
            "size": attachment.get("size"),
            "type": "CV" if tag in ("cv", "resume") else "OTHER",
            "created_at": attachment.get("created_at") or row.get("created_at"),
            "url": attachment.get("url"),
        }

    async def passthrough(
        self, method: str, path: str, query: Mapping[str, str] | None, body: Any
    ) -> PassthroughResult:
        """A call under the API base (``company/{id}/columns`` or ``/company/...``) with the key."""
        send = functools.partial(self._send, what="flatchr passthrough", expect=ANY_STATUS)
        return await rest_passthrough(send, self.api_base, method, path, query, body)


# -- Helpers ---------------------------------------------------------------------------------------


def _position(row: Mapping[str, Any]) -> int:
    position = row.get("position")
    return position if isinstance(position, int) else 0


def extra_attachment_warnings(attachments: list[AttachmentRef]) -> list[StepWarning]:
    cv = pick_cv(attachments)
    return [
        StepWarning(
            "attachment_not_supported", f"attachment #{a.index} ({a.type}): Flatchr takes a single CV, not sent"
        )
        for a in attachments
        if a is not cv
    ]


def unsupported_field_warnings(application: StoredApplication) -> list[StepWarning]:
    """Canonical fields the Flatchr create route has no place for."""
    names = [
        f"candidate.{n}"
        for n in ("company", "location", "gender", "availability_date")
        if getattr(application.candidate, n) is not None
    ]
    if application.application.stage_id:
        names.append("application.stage_id")
    if application.source and not application.source.id and (application.source.name or application.source.unified_key):
        names.append("source.name")
    if application.gdpr_consent is not None:
        names.append("gdpr_consent")
    extra = application.remote_fields.get("flatchr")
    if isinstance(extra, Mapping):
        names += [f"remote_fields.flatchr.{k}" for k in extra if k not in REMOTE_FIELDS]
    return [StepWarning("field_not_supported", f"{n} is not written to Flatchr") for n in names]


def file_answer_warnings(answers: list[StoredAnswer]) -> list[StepWarning]:
    return [
        StepWarning(
            "answer_type_unsupported",
            f"FILE answer to question {a.question_id} is not supported by Flatchr on create; not sent",
        )
        for a in answers
        if isinstance(a.answer, AttachmentRef)
    ]
