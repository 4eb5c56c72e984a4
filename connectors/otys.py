"""OTYS connector: the OWS JSON-RPC API (``POST {base}/jservice.php``, files via ``fileService.php``).

Wire facts come from public sources (the official OTYS WordPress plugin, public OWS clients);
choices where they are silent are marked "assumption:" here and listed, with the settings
(`OtysSettings`) and the coverage, in docs/connectors/otys.md.

Plan of a delivery (checkpoint names are stable):

    source        referrer portal uid ("herkomst"), looked up by id / name / alias, created if missing
    candidate     check the screening answers against the vacancy's questionset, then find by
                  e-mail (ACTONOMY search) → updateEx, else CandidateService.add (answers in
                  the candidate's fields)
    gdpr          CandidateService.setGdprDueDatePartner (only with gdpr_consent)
    application   find the procedure (candidate × vacancy) → else ProcedureService.add with the stage
                  (and the motivation answer as KillerQuestions)
    attachment:*  core=False, one per file: list the candidate's documents and skip a file OTYS
                  already holds (sha256 marker in the description, else name + size), else upload
                  to fileService.php and link it with AttachedDocumentsService.add; FILE answers
                  the same way, typed by their question's documentTypeId

Reads (Kombo's shapes): vacancies, the questionset, status list 1 as stages, referrer portals as
sources (docs/connectors/otys.md, "Read models").

Files are never fused into the create call (OTYS has no such call), so a refused file only fails
its own attachment step: the candidate and application are complete, and the engine's
full-attachment retry re-runs the unconfirmed attachment steps, which skip what OTYS confirms.

Sessions: ``loginByUid`` with the API key; the session is reused for the connector's lifetime. A
"please login again" error (HTTP 200 + JSON-RPC error) triggers one fresh login and one repeat of
the call inside the connector, so an expired session never spends a retry attempt; only a second
refusal raises AuthError.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import itertools
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import httpx
import msgspec
from msgspec import Meta

from app.core.catalog import (
    READ_JOBS,
    READ_SCREENING_QUESTIONS,
    READ_SOURCES,
    READ_STAGES,
    DisplayType,
    Job,
    JobLocation,
    JobPage,
    JobQuery,
    JobStatus,
    Option,
    QuestionFormat,
    QuestionType,
    ScreeningQuestion,
    Source,
    Stage,
)
from app.core.model import AttachmentRef, FileAnswer, StoredApplication
from app.core.pii import scrub
from connectors.base import (
    ACTION_ADD_ATTACHMENT_TO_APPLICATION,
    ACTION_ADD_ATTACHMENT_TO_CANDIDATE,
    ACTION_ADD_RESULT_LINK_TO_APPLICATION,
    ACTION_ADD_RESULT_LINK_TO_CANDIDATE,
    ACTION_MOVE_APPLICATION_TO_STAGE,
    AttachmentRejected,
    AuthError,
    Capabilities,
    ConnectionSpec,
    Connector,
    ConnectorError,
    ConnectorSettings,
    PassthroughResult,
    PermanentError,
    Step,
    StepContext,
    StepWarning,
    TransientError,
    UnknownOutcome,
    attachment_step_name,
    record_id,
)
from connectors.http import TtlCache

# -- Settings --------------------------------------------------------------------------------------

DEFAULT_BASE_URL = "https://ows.otys.nl"
STAGE_CACHE_S = 60.0
HIRED_CODES = ("hired", "aangenomen", "geplaatst", "placed")
DECLINED_CODES = ("rejected", "afgewezen", "declined", "withdrawn", "teruggetrokken")

# assumption: typeId 1 = CV and 201 = other are confirmed by the plugin; 2 for cover letters is not
DEFAULT_DOCUMENT_TYPES = {"CV": 1, "COVER_LETTER": 2, "OTHER": 201}

# assumption: Person.gender option codes (read them with CandidateService.getOptionLists per tenant)
DEFAULT_GENDERS = {"MALE": "m", "FEMALE": "f", "OTHER": "o"}
# The settings' bounds: a due date must be a date (dt.date stops at year 9999, so 10**6 months
# would be a ValueError in the worker on every GDPR step, never a refusal when the connection is
# made), and OTYS's ids are its database's 32-bit integers.
Months = Annotated[int, Meta(ge=0, le=1200, description="months, at most 1,200 (100 years)")]
Days = Annotated[int, Meta(ge=0, le=36500, description="days, at most 36,500 (100 years)")]
TypeId = Annotated[int, Meta(gt=0, le=2**31 - 1, description="an OTYS document type id")]


class OtysSettings(ConnectorSettings, frozen=True):  # frozen: inherited, restated for mypy
    """An OTYS connection's own keys (docs/connectors/otys.md)."""

    default_source: str | None = None  # source when the application names none
    create_sources: bool = True  # create a referrer portal for an unknown source name
    update_existing_candidates: bool = True  # updateEx a candidate found by e-mail
    company_field: str = "currentEmployer"  # the candidate field for candidate.company
    gender_map: dict[Literal["MALE", "FEMALE", "OTHER"], str] = {}  # over DEFAULT_GENDERS
    document_types: dict[Literal["CV", "COVER_LETTER", "OTHER"], TypeId] = {}  # over DEFAULT_DOCUMENT_TYPES
    gdpr_retention_months: Months = 12  # due date when consent is given without expires_at
    gdpr_decline_days: Days = 30  # due date when consent is declined
    result_link_type_id: TypeId = 201  # document type of result-link documents
    language_code: str | None = None  # Person.languageCode
    job_id_map: dict[str, str | int] = {}  # board job id -> OTYS vacancy uid
    procedure_portal: bool = False  # also write portalId on the procedure (undocumented there)
    hired_stage_codes: tuple[str, ...] = HIRED_CODES
    declined_stage_codes: tuple[str, ...] = DECLINED_CODES


# -- Wire format -----------------------------------------------------------------------------------

T = TypeVar("T")
SVC = "Otys.Services."
SESSION_MESSAGES = ("please login again", "please login first")
DEDUPE_MARKER = "applyrelay-sha256:"


class _SessionRefused(Exception):
    """The server said the session is no longer valid (HTTP 200, JSON-RPC error)."""


def classify_rpc_error(code: Any, message: str, what: str) -> Exception:
    """A JSON-RPC ``error`` (inside an HTTP 200) → the retry policy's error classes.

    assumption: OTYS's numeric codes are not public, so the message decides first: session
    messages → re-login; other "Access denied" → AuthError; overload / temporary wording and the
    JSON-RPC server-error codes (-32603, -32000..-32099) → transient; everything else (validation,
    not found, -32600/-32601/-32602) → permanent. The OTYS message (no candidate data in it: OTYS
    names fields, not values) is kept, truncated, for the operator.
    """
    lower = message.lower()
    detail = f"{what}: OTYS error {code}: {scrub(message, [], numbers=True, limit=200)}"
    if any(m in lower for m in SESSION_MESSAGES):
        return _SessionRefused(detail)
    if lower.startswith("access denied") or "not allowed to" in lower or "no rights" in lower:
        return AuthError(detail)
    if any(
        w in lower
        for w in (
            "too many requests",
            "rate limit",
            "try again",
            "temporar",
            "timeout",
            "maintenance",
            "unavailable",
        )
    ):
        return TransientError(detail, retry_after=60.0 if "too many" in lower or "rate" in lower else None)
    if isinstance(code, int) and (code == -32603 or -32099 <= code <= -32000):
        return TransientError(detail)
    return PermanentError(detail)


def is_duplicate(error: PermanentError) -> bool:
    return "duplicate" in error.detail.lower() or "already" in error.detail.lower()


def _uid(result: Any, what: str) -> str:
    """An OTYS uid from a create's result; null/false/empty is not an id (the write may or may
    not have happened: the retry's lookup decides)."""
    return record_id(result, f"OTYS's {what}")


def dedupe_marker(sha256: str) -> str:
    return f"{DEDUPE_MARKER}{sha256}"


def otys_datetime(value: dt.date | dt.datetime) -> str:
    """OTYS dates are ``Y-m-d H:i:s`` (plugin validation)."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return f"{value.isoformat()} 00:00:00"


def expiry_date(value: str | dt.date | dt.datetime) -> str:
    """The consent expiry as OTYS's due date (``YYYY-MM-DD``): the canonical model carries an ISO
    8601 date or date-time string (older model: date / datetime)."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError:
        raise PermanentError("gdpr_consent.expires_at is not an ISO 8601 date") from None


def stage_field(stage_id: str) -> tuple[str, str]:
    """Canonical stage id → (procedure field, status uid). OTYS has three parallel status lists;
    ids are ``"<list>_<uid>"`` (``"1_3"``); a bare uid means list 1, the pipeline stage."""
    head, sep, _ = stage_id.partition("_")
    if sep and head in {"1", "2", "3"}:
        return f"ProcedureStatus{head}", stage_id
    return "ProcedureStatus1", f"1_{stage_id}"


# -- Answer encoding -------------------------------------------------------------------------------
# OTYS keeps no answer records: each question of a questionset names a candidate field
# (`fieldName`) and the answer is written into the candidate (``extraInfoN`` as a string, multi
# values comma-separated; ``matchCriteria_N`` as an object keyed by option id), a motivation into
# the procedure's ``KillerQuestions``, a file as a document of the question's ``documentTypeId``
# (the official plugin's apply flow; docs/connectors/otys.md "Read models").

# OTYS question (sub)type, lower-cased as the plugin does → Kombo format type and display_type
KOMBO_FORMATS: dict[str, tuple[QuestionType, DisplayType | None]] = {
    "textfield": ("TEXT", "SINGLE_LINE"),
    "textarea": ("TEXT", "MULTI_LINE"),
    "motivation": ("TEXT", "MULTI_LINE"),
    "dateselect": ("DATE", None),
    "file": ("FILE", None),
    "multifile": ("FILE", None),
    "select": ("SINGLE_SELECT", "DROPDOWN"),
    "criteria": ("SINGLE_SELECT", "DROPDOWN"),  # the plugin renders a criterion as a single select
    "radio": ("SINGLE_SELECT", "RADIO"),
    "multiselect": ("MULTI_SELECT", None),
    "multicheckbox": ("MULTI_SELECT", None),
    "checkbox": ("BOOLEAN", None),
    "other": ("BOOLEAN", None),  # rendered as a checkbox by the plugin
}
# The plugin's list, "based on the default allowed document types in OTYS"
DOCUMENT_MIME_TYPES = [
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/pdf",
    "application/rtf",
    "text/rtf",
    "text/plain",
    "application/encrypted",
    "application/x-pkcs12",
]
# Questions the canonical application answers itself (candidate data, terms, GDPR consent):
# not screening questions.
CANDIDATE_FIELD_PREFIXES = ("Person.",)
CANDIDATE_FIELDS = frozenset({"acceptTerms", "candidate_gdpr_accept"})


def otys_kind(raw: Mapping[str, Any]) -> str:
    """The plugin's rule: the subtype when set, else the type, lower-cased."""
    return str(raw.get("subtype") or raw.get("type") or "").lower()


def is_screening_question(raw: Mapping[str, Any]) -> bool:
    field_name = str(raw.get("fieldName") or "")
    return not (field_name.startswith(CANDIDATE_FIELD_PREFIXES) or field_name in CANDIDATE_FIELDS)


def possible_answers(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    answers = raw.get("PossibleAnswersExt") or []
    if isinstance(answers, Mapping):  # keyed by uid in some answers
        return [{"uid": k, **(v if isinstance(v, Mapping) else {"answer": v})} for k, v in answers.items()]
    return [a for a in answers if isinstance(a, Mapping)]


def kombo_question(qid: str, raw: Mapping[str, Any], index: int) -> ScreeningQuestion:
    """One questionset question → Kombo's ScreeningQuestion; option ids are the OTYS answer uids."""
    kind, display = KOMBO_FORMATS.get(otys_kind(raw), ("UNKNOWN", None))
    validation = raw.get("Validation") or {}
    if kind == "TEXT" and display == "SINGLE_LINE" and validation.get("email"):
        display = "EMAIL"
    options = None
    if kind in ("SINGLE_SELECT", "MULTI_SELECT"):
        options = [
            Option(id=str(a.get("uid")), remote_id=str(a.get("uid")), name=str(a.get("answer") or ""))
            for a in possible_answers(raw)
        ]
    return ScreeningQuestion(
        id=qid,
        remote_id=qid,
        title=str(raw.get("question") or ""),
        description=raw.get("explanation") or None,
        format=QuestionFormat(
            type=kind,
            display_type=display,
            options=options,
            accepted_mime_types=list(DOCUMENT_MIME_TYPES) if kind == "FILE" else None,
        ),
        required=bool(validation.get("mandatory")),
        index=index,
    )


class _Invalid(Exception):
    pass


def _coerce(q: ScreeningQuestion, value: Any) -> Any:
    """A canonical answer checked against its question: str | bool | list[str] | date string |
    AttachmentRef; raises _Invalid (the message never carries the value)."""
    kind = q.format.type
    ids = {o.id for o in q.format.options or []}
    if kind == "FILE":
        if not isinstance(value, AttachmentRef | FileAnswer):
            raise _Invalid("must be a file")
        return value
    if isinstance(value, AttachmentRef | FileAnswer):
        raise _Invalid("is not a file question")
    if kind == "TEXT":
        if not isinstance(value, str):
            raise _Invalid("must be text")
        return value
    if kind == "BOOLEAN":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise _Invalid("must be true or false")
        return value
    if kind == "DATE":
        try:
            text = str(value).strip()
            when = dt.datetime.fromisoformat(text) if len(text) > 10 else dt.date.fromisoformat(text)
        except ValueError:
            raise _Invalid("must be an ISO 8601 date") from None
        return otys_datetime(when)
    if kind == "SINGLE_SELECT":
        chosen = value[0] if isinstance(value, list) and len(value) == 1 else value
        if not isinstance(chosen, str) or chosen not in ids:
            raise _Invalid("must be one of the question's option ids")
        return chosen
    if kind == "MULTI_SELECT":
        chosen = value if isinstance(value, list) else [value]
        if not chosen or any(not isinstance(v, str) or v not in ids for v in chosen) or len(set(chosen)) != len(chosen):
            raise _Invalid("must be a list of the question's option ids")
        return list(chosen)
    raise _Invalid(f"has type {kind}, which the relay cannot answer")


def field_value(field_name: str, kind: QuestionType, value: Any) -> Any:
    """A checked answer as the candidate field stores it (the plugin's buildCandidateData)."""
    if field_name.startswith("matchCriteria_"):
        if kind not in ("SINGLE_SELECT", "MULTI_SELECT"):
            raise _Invalid(f"is a {kind} question on a match criterion, which takes option ids only")
        return {v: 1 for v in (value if isinstance(value, list) else [value])}
    if field_name.startswith("extraInfo"):  # free fields are strings; multi values comma-separated
        if isinstance(value, bool):
            return "true" if value else "false"  # assumption: how a checkbox reads in a free field
        return ",".join(value) if isinstance(value, list) else str(value)
    return value


def _nested(path: str, value: Any) -> dict[str, Any]:
    """``"a.b"`` → ``{"a": {"b": value}}`` (OWS field paths, the plugin's owsFieldValuesToObject)."""
    head, _, rest = path.partition(".")
    return {head: _nested(rest, value) if rest else value}


def _deep_merge(target: dict[str, Any], patch: Mapping[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_merge(target[key], value)
        else:
            target[key] = value


class EncodedAnswers(msgspec.Struct):
    """Where each answer goes: candidate fields, the procedure's KillerQuestions, documents."""

    candidate: dict[str, Any] = {}
    killer_questions: list[str] = []
    files: list[tuple[str, AttachmentRef, int]] = []  # (question id, file, document type id)
    errors: list[str] = []
    unknown: list[str] = []


def encode_answers(
    questions: Sequence[tuple[ScreeningQuestion, Mapping[str, Any]]],
    answers: list[Any],
    attachments: Sequence[AttachmentRef] = (),
    document_types: Mapping[str, int] | None = None,
) -> EncodedAnswers:
    """Check the canonical answers against the job's questions and place them as OTYS stores them.
    Errors name the question (``"question <id>: <reason>"``), never the answer. A required FILE
    question is also met by an attachment of its document type (a CV question by the CV)."""
    out = EncodedAnswers(candidate={}, killer_questions=[], files=[], errors=[], unknown=[])
    by_id = {q.id: (q, raw) for q, raw in questions}
    given: dict[str, Any] = {}
    for a in answers:
        qid, value = (
            (str(a.get("question_id")), a.get("answer")) if isinstance(a, Mapping) else (a.question_id, a.answer)
        )
        if qid not in by_id:
            out.unknown.append(qid)
        elif qid in given:
            out.errors.append(f"question {qid}: answered more than once")
        elif value is not None and value != "" and value != []:
            given[qid] = value
    held_types = {(document_types or DEFAULT_DOCUMENT_TYPES).get(ref.type, 201) for ref in attachments}
    for q, raw in questions:
        field_name = str(raw.get("fieldName") or "")
        if q.id not in given:
            doc_type = int(raw.get("documentTypeId") or 201)
            if q.required and not (q.format.type == "FILE" and doc_type in held_types):
                out.errors.append(f"question {q.id}: required")
            continue
        try:
            value = _coerce(q, given[q.id])
        except _Invalid as exc:
            out.errors.append(f"question {q.id}: {exc}")
            continue
        if q.format.type == "FILE":
            if isinstance(value, AttachmentRef):
                out.files.append((q.id, value, int(raw.get("documentTypeId") or 201)))
        elif otys_kind(raw) == "motivation" or field_name == "motivation":
            out.killer_questions.append(str(value))
        elif field_name:
            try:
                placed = field_value(field_name, q.format.type, value)
            except _Invalid as exc:
                out.errors.append(f"question {q.id}: {exc}")
                continue
            _deep_merge(out.candidate, _nested(field_name, placed))
        else:
            out.errors.append(f"question {q.id}: OTYS names no field to write it to")
    return out


def to_neutral(q: ScreeningQuestion, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The older neutral shape of `screening_questions` (docs/connectors/otys.md)."""
    return {
        "id": q.id,
        "type": q.format.type,
        "required": q.required,
        "label": q.title,
        "field_name": raw.get("fieldName"),
        "options": [{"id": o.id, "label": o.name} for o in q.format.options or []],
    }


# -- Connector -------------------------------------------------------------------------------------


class OtysConnector(Connector[OtysSettings]):
    name = "otys"
    settings_type = OtysSettings
    default_base_url = DEFAULT_BASE_URL

    capabilities = Capabilities(
        attachment_types=frozenset({"CV", "COVER_LETTER", "OTHER"}),
        actions=frozenset(
            {
                ACTION_ADD_ATTACHMENT_TO_APPLICATION,
                ACTION_ADD_ATTACHMENT_TO_CANDIDATE,
                ACTION_ADD_RESULT_LINK_TO_APPLICATION,
                ACTION_ADD_RESULT_LINK_TO_CANDIDATE,
                ACTION_MOVE_APPLICATION_TO_STAGE,
            }
        ),
        # stages: status list 1 for every vacancy; sources: the referrer portals
        reads=frozenset({READ_JOBS, READ_SCREENING_QUESTIONS, READ_STAGES, READ_SOURCES}),
    )

    def __init__(self, connection: ConnectionSpec[OtysSettings], http: httpx.AsyncClient) -> None:
        super().__init__(connection, http)
        self._session: str | None = None
        self._stage_names: TtlCache[str, dict[str, str]] = TtlCache(STAGE_CACHE_S)
        self._questions: TtlCache[str, list[tuple[ScreeningQuestion, dict[str, Any]]]] = TtlCache(
            STAGE_CACHE_S, max_entries=1000
        )
        self._login_lock = asyncio.Lock()
        self._ids = itertools.count(1)
        base = (connection.base_url or DEFAULT_BASE_URL).rstrip("/")
        self.rpc_url = f"{base}/jservice.php"
        self.file_url = f"{base}/fileService.php"

    # -- Transport ---------------------------------------------------------------------------------
    # A session (loginByUid) reused for the connector's lifetime; JSON-RPC over jservice.php.

    async def _login(self, stale: str | None) -> str:
        """One login at a time; a caller whose session was refused logs in only if nobody has
        replaced that session meanwhile."""
        async with self._login_lock:
            if self._session is not None and self._session != stale:
                return self._session
            self._session = None
            body = await self._post_json(
                {
                    "jsonrpc": "2.0",
                    "method": "loginByUid",
                    "params": [self.connection.credentials],
                    "id": next(self._ids),
                },
                what="OTYS login",
            )
            error = body.get("error")
            if error:
                exc = classify_rpc_error(error.get("code"), str(error.get("message", "")), "OTYS login")
                if isinstance(exc, TransientError):
                    raise exc
                reason = scrub(str(error.get("message", "")), [self.connection.credentials], limit=200)
                raise AuthError(f"OTYS login refused: {reason}")
            session = body.get("result")
            if not isinstance(session, str) or not session:
                raise AuthError("OTYS login returned no session")
            self._session = session
            return session

    async def verify_credentials(self) -> None:
        """`loginByUid` with the key, fresh: the call every session starts with, and the one OTYS
        refuses a wrong key on, with its message (docs/connections.md)."""
        await self._login(self._session)

    async def _ensure_session(self) -> str:
        return self._session if self._session is not None else await self._login(None)

    async def _post_json(self, payload: dict[str, Any], *, what: str) -> dict[str, Any]:
        response = await self.request(
            "POST",
            self.rpc_url,
            what=what,
            expect=(200,),
            json=payload,
            headers={"Accept": "application/json"},
        )
        return self._decode(response, what)

    @staticmethod
    def _decode(response: httpx.Response, what: str) -> Any:
        """An HTTP 200 that is not JSON: the call may or may not have been applied."""
        try:
            return response.json()
        except ValueError:
            raise UnknownOutcome(f"{what}: OTYS answered HTTP 200 without JSON") from None

    async def _with_session(self, attempt: Callable[[str, bool], Awaitable[T]], what: str) -> T:
        """Run `attempt(session, last)`; when it raises _SessionRefused, log in again once and
        repeat (the refused call was not applied, so repeating it is safe)."""
        stale: str | None = None
        for last in (False, True):
            session = await self._login(stale) if stale else await self._ensure_session()
            try:
                return await attempt(session, last)
            except _SessionRefused:
                if last:
                    raise AuthError(f"{what}: OTYS refused a fresh session") from None
                stale = session
        raise AssertionError("unreachable")

    async def call(self, method: str, *args: Any, what: str) -> Any:
        """Call an OWS method with the session as first param (re-login once on expiry)."""

        async def attempt(session: str, _last: bool) -> Any:
            payload = {"jsonrpc": "2.0", "method": method, "params": [session, *args], "id": next(self._ids)}
            body = await self._post_json(payload, what=what)
            error = body.get("error") if isinstance(body, dict) else None
            if not error:
                return body.get("result") if isinstance(body, dict) else None
            raise classify_rpc_error(error.get("code"), str(error.get("message", "")), what)

        return await self._with_session(attempt, what)

    async def _upload(self, name: str, content_type: str, data: bytes, *, what: str) -> str:
        """fileService.php (multipart: ``file`` + ``sessionId``) → the file's ouid. Any refusal of
        the file itself is AttachmentRejected, so the engine completes the rest of the delivery."""

        async def attempt(session: str, _last: bool) -> str:
            try:
                response = await self.request(
                    "POST",
                    self.file_url,
                    what=what,
                    expect=(200,),
                    files={"file": (name, data, content_type)},
                    data={"sessionId": session},
                )
            except (AuthError, TransientError):
                raise
            except PermanentError as exc:  # 413 / 415 / 400 from the file endpoint
                raise AttachmentRejected(exc.detail, status=exc.status) from None
            body = self._decode(response, what)
            if isinstance(body, dict) and body.get("error"):
                error = body["error"]
                refusal = classify_rpc_error(error.get("code"), str(error.get("message", "")), what)
                if isinstance(refusal, PermanentError):
                    raise AttachmentRejected(refusal.detail) from None
                raise refusal
            first = (
                next(iter(body.values()), None)
                if isinstance(body, dict)
                else (body[0] if isinstance(body, list) and body else None)
            )
            ouid = first.get("ouid") if isinstance(first, dict) else None
            if not ouid:
                raise UnknownOutcome(f"{what}: OTYS upload answer has no file id")
            return str(ouid)

        return await self._with_session(attempt, what)

    async def close(self) -> None:
        if self._session is None:
            return
        session, self._session = self._session, None
        try:
            await self._post_json(
                {"jsonrpc": "2.0", "method": "logout", "params": [session], "id": next(self._ids)},
                what="OTYS logout",
            )
        except Exception:  # noqa: S110 - logging out is best effort
            pass

    # -- Intake check ------------------------------------------------------------------------------

    def check(self, application: StoredApplication) -> tuple[list[str], list[StepWarning]]:
        warnings: list[StepWarning] = []
        known = self._document_types()
        for ref in application.attachments:
            if ref.type not in known:
                warnings.append(StepWarning("attachment_type", f"OTYS: attachment type {ref.type} sent as other"))
        return [], warnings

    async def check_answers(self, application: StoredApplication) -> list[str]:
        """The answers against the vacancy's questionset (cached a minute); [] when OTYS cannot
        be asked now (the candidate step checks again and dead-letters with the reason)."""
        if not application.screening_question_answers:
            return []
        try:
            questions = await self._questionset(application.application.job_id)
        except PermanentError as exc:
            return ["application.job_id: not a vacancy in this OTYS tenant"] if exc.status == 404 else []
        except ConnectorError:
            return []
        return self._encode(application, questions).errors

    def _encode(
        self, application: StoredApplication, questions: list[tuple[ScreeningQuestion, dict[str, Any]]]
    ) -> EncodedAnswers:
        return encode_answers(
            questions, application.screening_question_answers, application.attachments, self._document_types()
        )

    async def _answers(self, ctx: StepContext, application: StoredApplication, *, fresh: bool) -> EncodedAnswers:
        """The answers placed as OTYS stores them, or PermanentError naming every fault. `fresh`
        (the candidate step, which runs first) reads the questionset anew and warns once per
        unknown question; the application step reuses the cached questionset."""
        if not application.screening_question_answers:
            return EncodedAnswers(candidate={}, killer_questions=[], files=[], errors=[], unknown=[])
        encoded = self._encode(application, await self._questionset(application.application.job_id, fresh=fresh))
        if encoded.errors:
            raise PermanentError("screening answers rejected: " + "; ".join(encoded.errors), status=422)
        for qid in encoded.unknown if fresh else []:
            ctx.warn(
                "answer_unknown_question", f"OTYS: question {qid} is not in the vacancy's questionset; not written"
            )
        return encoded

    # -- Plan --------------------------------------------------------------------------------------

    def plan(self, application: StoredApplication) -> list[Step]:
        steps: list[Step] = []
        if self._source_spec(application) is not None:
            steps.append(Step("source", lambda ctx: self._step_source(ctx, application)))
        steps.append(Step("candidate", lambda ctx: self._step_candidate(ctx, application)))
        if application.gdpr_consent is not None:
            steps.append(Step("gdpr", lambda ctx: self._step_gdpr(ctx, application)))
        steps.append(Step("application", lambda ctx: self._step_application(ctx, application)))
        for ref in application.attachments:
            steps.append(self._attachment_step(ref))
        names = {s.name for s in steps}
        for answer in application.screening_question_answers:
            file = answer.answer
            if isinstance(file, AttachmentRef) and attachment_step_name(file) not in names:
                names.add(attachment_step_name(file))
                steps.append(self._answer_file_step(application, answer.question_id, file))
        return steps

    def _answer_file_step(self, application: StoredApplication, question_id: str, ref: AttachmentRef) -> Step:
        """A FILE answer: a document of the question's documentTypeId on the candidate and procedure."""

        async def run(ctx: StepContext) -> str:
            questions = await self._questionset(application.application.job_id)
            raw = next((r for q, r in questions if q.id == question_id), None)
            if raw is None:  # not a question of the vacancy: warned by the candidate step, not written
                return ""
            data = await ctx.load_attachment(ref)
            return await self._put_document(
                ctx.remote_id("candidate"),
                ctx.checkpoints.get("application"),
                name=ref.name,
                data=data,
                sha256=hashlib.sha256(data).hexdigest(),
                content_type=ref.content_type or "application/octet-stream",
                type_id=int(raw.get("documentTypeId") or 201),
            )

        return Step(attachment_step_name(ref), run, attachment=ref, core=False)

    def _attachment_step(
        self, ref: AttachmentRef, *, candidate_uid: str | None = None, procedure_uid: str | None = None
    ) -> Step:
        async def run(ctx: StepContext) -> str:
            cand = candidate_uid or ctx.remote_id("candidate")
            proc = procedure_uid if candidate_uid else ctx.checkpoints.get("application")
            return await self.deliver_attachment(ctx, ref, cand, proc)

        return Step(attachment_step_name(ref), run, attachment=ref, core=False)

    # -- Steps -------------------------------------------------------------------------------------

    # source: the referrer portal ("herkomst")

    def _source_spec(self, application: StoredApplication) -> tuple[str, str] | None:
        src = application.source
        if src is not None and src.id:
            return "id", src.id
        if src is not None and (src.name or src.unified_key):
            return "name", str(src.name or src.unified_key)
        default = self.settings.default_source
        return ("name", default) if default else None

    async def _step_source(self, ctx: StepContext, application: StoredApplication) -> str:
        spec = self._source_spec(application)
        assert spec is not None
        kind, value = spec
        portals = await self._portals()
        if kind == "id":
            if any(p.get("uid") == value for p in portals):
                return value
            ctx.warn("source_not_found", "OTYS: source id is not a referrer portal of this tenant")
            return ""
        keys = [value]
        if application.source is not None and application.source.unified_key:
            keys.append(application.source.unified_key)
        found = self._match_portal(portals, keys)
        if found:
            return found
        if not self.settings.create_sources:
            ctx.warn("source_not_found", "OTYS: no referrer portal matches the source; none set")
            return ""
        try:  # assumption: ReferrerPortalService.add {portal} creates a portal and returns its uid
            return _uid(
                await self.call(f"{SVC}ReferrerPortalService.add", {"portal": value}, what="create referrer portal"),
                "referrer portal",
            )
        except UnknownOutcome:
            found = self._match_portal(await self._portals(), keys)  # created meanwhile / by us
            if found:
                return found
            raise
        except PermanentError:  # the source is metadata: never lose the application over it
            found = self._match_portal(await self._portals(), keys)
            if found:
                return found
            ctx.warn("source_not_written", "OTYS refused to create the referrer portal; no source set")
            return ""

    async def _portals(self) -> list[dict[str, Any]]:
        result = await self.call(
            f"{SVC}ReferrerPortalService.getListEx",
            {
                "what": {"uid": 1, "portal": 1, "alias1": 1, "alias2": 1, "alias3": 1, "originalId": 1},
                "limit": 500,
                "offset": 0,
                "excludeLimitCheck": True,
            },
            what="list referrer portals",
        )
        return list((result or {}).get("listOutput", []))

    @staticmethod
    def _match_portal(portals: list[dict[str, Any]], keys: list[str]) -> str | None:
        wanted = {k.strip().lower() for k in keys if k}
        for portal in portals:
            names = {str(portal.get(f) or "").strip().lower() for f in ("portal", "alias1", "alias2", "alias3")}
            if wanted & (names - {""}):
                return str(portal["uid"])
        return None

    # candidate

    def _candidate_payload(self, application: StoredApplication, portal_uid: str | None) -> dict[str, Any]:
        cand = application.candidate
        person: dict[str, Any] = {
            "firstName": cand.first_name,
            "lastName": cand.last_name,
            "emailPrimary": cand.email_address,
        }
        if cand.gender:
            genders = DEFAULT_GENDERS | self.settings.gender_map
            person["gender"] = genders[cand.gender]
        if cand.location is not None:
            address = {
                k: v
                for k, v in (
                    ("city", cand.location.city),
                    ("countryCode", cand.location.country),
                    ("postcode", cand.location.zip_code),
                )
                if v
            }
            if address:
                person["AddressPrimary"] = address
        if cand.phone_number:
            person["PhoneNumbers"] = {"1": {"type": "primary", "phoneNumber": cand.phone_number}}
        if self.settings.language_code:
            person["languageCode"] = self.settings.language_code
        payload: dict[str, Any] = {"Person": person}
        if cand.company:
            # assumption: the candidate's current employer field; configurable per tenant
            payload[self.settings.company_field] = cand.company
        if cand.availability_date:
            payload["availableAt"] = otys_datetime(cand.availability_date)
        if portal_uid:
            payload["portalId"] = portal_uid
        if application.gdpr_consent is not None and application.gdpr_consent.given:
            payload["acceptTerms"] = True
            payload["acceptTermsTs"] = dt.datetime.fromtimestamp(application.origin.received_at, dt.UTC).strftime(
                "%Y/%m/%d %H:%M:%S"
            )
        payload.update(self._source_tags(application))
        payload.update(_remote_object(application, "candidate"))
        return payload

    def _source_tags(self, application: StoredApplication) -> dict[str, Any]:
        src = application.source
        label = (src.name or src.unified_key) if src is not None else None
        label = label or application.origin.board
        return {"UtmTags": {"utm_source": label, "utm_medium": "applyrelay"}} if label else {}

    async def find_candidate(self, email: str) -> str | None:
        """The plugin's lookup: ACTONOMY keyword search on the e-mail address."""
        result = await self.call(
            f"{SVC}CandidateService.getListEx",
            {
                "what": {"uid": 1, "Person": {"emailPrimary": 1}},
                "limit": 10,
                "offset": 0,
                "getTotalCount": 1,
                "search": {
                    "ACTONOMY": {
                        "DATA": {
                            "hasEmail": {"options": {"required": True, "persistent": True}, "value": "1"},
                            "keywords": {
                                "options": {
                                    "enableExpansion": False,
                                    "required": True,
                                    "searchList": ["emailAddress"],
                                    "searchMode": "one",
                                },
                                "value": f'"{email}"',
                            },
                        },
                        "OPTIONS": {"limit": 10},
                        "VERSION": 2,
                        "SUB_VERSION": 0,
                    }
                },
            },
            what="find candidate by e-mail",
        )
        found = self._row_with_email(result, email)
        return found or await self._find_candidate_by_condition(email)

    async def _find_candidate_by_condition(self, email: str) -> str | None:
        """Second lookup on the stored field itself: a search index may lag behind a candidate
        created a moment ago (the very case of a re-run after an unknown outcome).
        assumption: ``Person.emailPrimary`` is accepted in a getListEx condition; if OTYS refuses
        the condition, the ACTONOMY answer stands."""
        try:
            result = await self.call(
                f"{SVC}CandidateService.getListEx",
                {
                    "what": {"uid": 1, "Person": {"emailPrimary": 1}},
                    "limit": 10,
                    "offset": 0,
                    "condition": {"type": "COND", "field": "Person.emailPrimary", "op": "EQ", "param": email},
                },
                what="find candidate by e-mail field",
            )
        except PermanentError:
            return None
        return self._row_with_email(result, email)

    @staticmethod
    def _row_with_email(result: Any, email: str) -> str | None:
        for row in (result or {}).get("listOutput", []):
            found = str(((row.get("Person") or {}).get("emailPrimary")) or "")
            if found.lower() == email.lower() and row.get("uid"):
                return str(row["uid"])
        return None

    async def _step_candidate(self, ctx: StepContext, application: StoredApplication) -> str:
        """Answers are checked first (nothing is written for a doomed application) and written
        into the candidate's fields."""
        email = application.candidate.email_address
        payload = self._candidate_payload(application, ctx.checkpoints.get("source") or None)
        _deep_merge(payload, (await self._answers(ctx, application, fresh=True)).candidate)
        existing = await self.find_candidate(email)
        if existing:
            if self.settings.update_existing_candidates:
                await self._update_candidate(existing, payload)
            return existing
        try:
            return _uid(await self.call(f"{SVC}CandidateService.add", payload, what="create candidate"), "candidate")
        except PermanentError as exc:
            if is_duplicate(exc):
                found = await self.find_candidate(email)
                if found:
                    return found
                raise TransientError("OTYS reports a duplicate candidate its search does not show yet") from None
            raise

    async def _update_candidate(self, uid: str, payload: dict[str, Any]) -> None:
        patch = json.loads(json.dumps(payload))
        person = patch.get("Person", {})
        person.pop("emailPrimary", None)
        if "PhoneNumbers" in person:  # OWS wants DELETE on phone updates (plugin); drop slot 1 only
            person["PhoneNumbers"]["DELETE"] = ["1"]
        patch.pop("portalId", None)  # keep the candidate's first source
        await self.call(f"{SVC}CandidateService.updateEx", uid, patch, what="update candidate")

    # GDPR

    def gdpr_due_date(self, application: StoredApplication) -> str:
        """The consent's expiry, else the tenant's retention rule (plugin: accepted → +N months
        (SE2999), declined → +N days (SE2997); the defaults stand in for those settings)."""
        consent = application.gdpr_consent
        assert consent is not None
        if consent.expires_at is not None:
            return expiry_date(consent.expires_at)
        received = dt.datetime.fromtimestamp(application.origin.received_at, dt.UTC).date()
        if consent.given:
            months = self.settings.gdpr_retention_months
            year, month = divmod(received.month - 1 + months, 12)
            day = min(received.day, 28)
            return dt.date(received.year + year, month + 1, day).isoformat()
        return (received + dt.timedelta(days=self.settings.gdpr_decline_days)).isoformat()

    async def _step_gdpr(self, ctx: StepContext, application: StoredApplication) -> str:
        consent = application.gdpr_consent
        assert consent is not None
        due = self.gdpr_due_date(application)
        reason = "otherYes" if consent.given else "cron"
        await self.call(
            f"{SVC}CandidateService.setGdprDueDatePartner",
            ctx.remote_id("candidate"),
            due,
            reason,
            False,
            False,
            what="set GDPR due date",
        )
        return f"{reason}:{due}"

    # application (procedure)

    async def find_procedure(self, candidate_uid: str, vacancy_uid: str) -> str | None:
        result = await self.call(
            f"{SVC}ProcedureService.getListEx",
            {
                "what": {"uid": 1},
                "limit": 1,
                "offset": 0,
                "condition": {
                    "type": "AND",
                    "items": [
                        {"type": "COND", "field": "candidateUid", "op": "EQ", "param": candidate_uid},
                        {"type": "COND", "field": "vacancyUid", "op": "EQ", "param": vacancy_uid},
                    ],
                },
            },
            what="find application",
        )
        rows = (result or {}).get("listOutput", [])
        return str(rows[0]["uid"]) if rows else None

    async def _step_application(self, ctx: StepContext, application: StoredApplication) -> str:
        candidate_uid = ctx.remote_id("candidate")
        vacancy_uid = self._vacancy_uid(application.application.job_id)
        existing = await self.find_procedure(candidate_uid, vacancy_uid)
        if existing:
            return existing
        body: dict[str, Any] = {"candidateUid": candidate_uid, "vacancyUid": vacancy_uid}
        if application.application.stage_id:
            key, uid = stage_field(application.application.stage_id)
            body[key] = {"uid": uid}
        portal = ctx.checkpoints.get("source")
        if portal and self.settings.procedure_portal:
            # assumption, off by default: only candidates are documented to take portalId
            body["portalId"] = portal
        body.update(self._source_tags(application))
        killer = (await self._answers(ctx, application, fresh=False)).killer_questions
        if killer:
            body["KillerQuestions"] = killer  # the plugin writes the motivation here
        body.update(_remote_object(application, "procedure"))
        try:
            return _uid(await self.call(f"{SVC}ProcedureService.add", body, what="create application"), "application")
        except PermanentError as exc:
            if is_duplicate(exc):
                found = await self.find_procedure(candidate_uid, vacancy_uid)
                if found:
                    return found
                raise TransientError("OTYS reports a duplicate application its search does not show yet") from None
            raise

    def _vacancy_uid(self, job_id: str) -> str:
        return str(self.settings.job_id_map.get(job_id, job_id))

    # attachments

    def _document_types(self) -> dict[str, int]:
        return DEFAULT_DOCUMENT_TYPES | self.settings.document_types

    @staticmethod
    def _held(documents: list[dict[str, Any]], name: str, sha256: str, size: int) -> str | None:
        """OTYS already holds this file: our sha256 marker, or (fallback, e.g. a file a recruiter
        attached by hand) the same file name and size."""
        marker = dedupe_marker(sha256)
        for doc in documents:
            if marker in str(doc.get("description") or ""):
                return str(doc["uid"])
        for doc in documents:
            if (doc.get("fileName") or doc.get("subject")) == name and doc.get("fileSize") == size:
                return str(doc["uid"])
        return None

    async def deliver_attachment(
        self, ctx: StepContext, ref: AttachmentRef, candidate_uid: str, procedure_uid: str | None
    ) -> str:
        data = await ctx.load_attachment(ref)
        sha256 = hashlib.sha256(data).hexdigest()
        return await self._put_document(
            candidate_uid,
            procedure_uid,
            name=ref.name,
            data=data,
            sha256=sha256,
            content_type=ref.content_type or "application/octet-stream",
            type_id=self._document_types().get(ref.type, 201),
        )

    async def _put_document(
        self,
        candidate_uid: str,
        procedure_uid: str | None,
        *,
        name: str,
        data: bytes,
        sha256: str,
        content_type: str,
        type_id: int,
        subject: str | None = None,
    ) -> str:
        held = self._held(await self.candidate_documents(candidate_uid), name, sha256, len(data))
        if held:
            return held
        file_uid = await self._upload(name, content_type, data, what="upload file")
        document: dict[str, Any] = {
            "candidateUid": candidate_uid,
            "fileUid": file_uid,
            "subject": subject or name,
            "typeId": type_id,
            "private": False,
            "customerRightsLevel": 0,
            "alwaysOnTop": False,
            "description": dedupe_marker(sha256),
        }
        if procedure_uid:
            document["applicationUid"] = procedure_uid  # documented as optional on AttachedDocumentsService.add
        try:
            return _uid(
                await self.call(f"{SVC}AttachedDocumentsService.add", document, what="attach document"), "document"
            )
        except AttachmentRejected:
            raise
        except PermanentError as exc:
            raise AttachmentRejected(exc.detail, status=exc.status) from None

    # -- Actions -----------------------------------------------------------------------------------

    def action_plan(self, action: str, params: Mapping[str, Any], attachments: list[AttachmentRef]) -> list[Step]:
        if action == ACTION_ADD_ATTACHMENT_TO_CANDIDATE:
            if not attachments:
                raise PermanentError("add_attachment_to_candidate needs one attachment")
            return [self._action_attachment_step(attachments[0], str(params["candidate_id"]), None)]
        if action == ACTION_ADD_ATTACHMENT_TO_APPLICATION:
            if not attachments:
                raise PermanentError("add_attachment_to_application needs one attachment")
            candidate = params.get("candidate_id")
            return [
                self._action_attachment_step(
                    attachments[0], str(candidate) if candidate else None, str(params["application_id"])
                )
            ]
        if action in (ACTION_ADD_RESULT_LINK_TO_APPLICATION, ACTION_ADD_RESULT_LINK_TO_CANDIDATE):
            return [Step("result_link", lambda ctx: self._result_link(action, params))]
        if action == ACTION_MOVE_APPLICATION_TO_STAGE:
            return [Step("stage", lambda ctx: self._move_stage(params))]
        return super().action_plan(action, params, attachments)

    def _action_attachment_step(self, ref: AttachmentRef, candidate_uid: str | None, procedure_uid: str | None) -> Step:
        async def run(ctx: StepContext) -> str:
            cand = candidate_uid or await self._procedure_candidate(str(procedure_uid))
            return await self.deliver_attachment(ctx, ref, cand, procedure_uid)

        return Step(attachment_step_name(ref), run, attachment=ref, core=False)

    async def _procedure_candidate(self, procedure_uid: str) -> str:
        detail = await self.call(
            f"{SVC}ProcedureService.getDetail",
            procedure_uid,
            {"uid": 1, "candidateUid": 1},
            what="read application",
        )
        uid = (detail or {}).get("candidateUid")
        if not uid:
            raise PermanentError("OTYS application has no candidate")
        return str(uid)

    @staticmethod
    def result_link_text(params: Mapping[str, Any]) -> str:
        """assumption: OTYS has no result-link object; the link is written as a small text document
        (subject = label) on the candidate / procedure, attributes as ``<prefix><key>: <value>``."""
        details = params.get("details") or {}
        prefix = str(details.get("custom_field_name_prefix") or "")
        attributes = details.get("attributes") or []
        pairs = (
            list(attributes.items())
            if isinstance(attributes, Mapping)
            else [(a.get("key"), a.get("value")) for a in attributes]
        )
        lines = [str(params.get("label") or "Result"), str(params.get("url") or "")]
        lines += [f"{prefix}{' ' if prefix and not prefix.endswith(' ') else ''}{k}: {v}" for k, v in pairs]
        return "\n".join(lines) + "\n"

    async def _result_link(self, action: str, params: Mapping[str, Any]) -> str:
        url = str(params.get("url") or "")
        if not url.startswith(("https://", "http://")):
            raise PermanentError("result link url must be http(s)")
        if action == ACTION_ADD_RESULT_LINK_TO_APPLICATION:
            procedure_uid: str | None = str(params["application_id"])
            candidate_uid = str(params.get("candidate_id") or await self._procedure_candidate(str(procedure_uid)))
        else:
            procedure_uid, candidate_uid = None, str(params["candidate_id"])
        data = self.result_link_text(params).encode()
        label = str(params.get("label") or "Result")
        safe = "".join(c if c.isalnum() or c in " -_" else "_" for c in label).strip() or "result"
        return await self._put_document(
            candidate_uid,
            procedure_uid,
            name=f"{safe}.txt",
            data=data,
            sha256=hashlib.sha256(data).hexdigest(),
            content_type="text/plain",
            type_id=self.settings.result_link_type_id,
            subject=label,
        )

    async def _move_stage(self, params: Mapping[str, Any]) -> str:
        key, uid = stage_field(str(params["stage_id"]))
        await self.call(
            f"{SVC}ProcedureService.update",
            str(params["application_id"]),
            {key: {"uid": uid}},
            what="move application stage",
        )
        return uid

    # -- Reads -------------------------------------------------------------------------------------

    async def candidate_documents(self, candidate_uid: str) -> list[dict[str, Any]]:
        # assumption: AttachedDocumentsService.getListEx filters on candidateUid and returns these fields
        result = await self.call(
            f"{SVC}AttachedDocumentsService.getListEx",
            {
                "what": {
                    "uid": 1,
                    "subject": 1,
                    "description": 1,
                    "fileName": 1,
                    "fileSize": 1,
                    "typeId": 1,
                    "mimeType": 1,
                    "applicationUid": 1,
                },
                "limit": 200,
                "offset": 0,
                "condition": {"type": "COND", "field": "candidateUid", "op": "EQ", "param": candidate_uid},
            },
            what="list candidate documents",
        )
        return list((result or {}).get("listOutput", []))

    async def candidate_attachments(self, candidate_id: str) -> list[dict[str, Any]]:
        types = {v: k for k, v in self._document_types().items()}
        return [
            {
                "id": d.get("uid"),
                "name": d.get("fileName") or d.get("subject"),
                "content_type": d.get("mimeType"),
                "size": d.get("fileSize"),
                "type": types.get(int(d.get("typeId") or 201), "OTHER"),
            }
            for d in await self.candidate_documents(candidate_id)
        ]

    # jobs (vacancies)

    VACANCY_FIELDS: ClassVar[dict[str, Any]] = {
        "uid": 1,
        "internalId": 1,
        "title": 1,
        "status": 1,
        "referenceNr": 1,
        "locationCity": 1,
        "locationPostcode": 1,
        "locationCountryCode": 1,
        "textField_description": 1,
        "customApplyUrl": 1,
        "entryDateTime": 1,
        "lastModified": 1,
    }

    async def list_jobs(self, query: JobQuery) -> JobPage:
        """One page of ``VacancyService.getListEx`` (limit / offset: the cursor is the next
        offset); status, title (LIKE) and lastModified (GE) are conditions OTYS applies."""
        offset = _offset(query.cursor)
        limit = max(1, min(query.page_size, MAX_LIST_LIMIT))
        request: dict[str, Any] = {
            "what": self.VACANCY_FIELDS,
            "limit": limit,
            "offset": offset,
            "getTotalCount": 1,
        }
        condition = vacancy_condition(query)
        if condition:
            request["condition"] = condition
        result = await self.call(f"{SVC}VacancyService.getListEx", request, what="list vacancies")
        rows = [r for r in (result or {}).get("listOutput", []) if isinstance(r, Mapping) and r.get("uid")]
        jobs = [vacancy_job(r) for r in rows]
        if query.updated_after:  # OTYS has GE; "after" is strict
            after = _aware(query.updated_after)
            jobs = [j for j in jobs if j.changed_at is None or j.changed_at > after]
        total = (result or {}).get("totalCount")
        more = offset + limit < total if isinstance(total, int) else len(rows) >= limit
        return JobPage(jobs=jobs, next_cursor=str(offset + limit) if more else None)

    async def _vacancy(self, job_id: str) -> Mapping[str, Any] | None:
        try:
            detail = await self.call(
                f"{SVC}VacancyService.getDetail", self._vacancy_uid(job_id), self.VACANCY_FIELDS, what="read vacancy"
            )
        except PermanentError as exc:
            if "not found" in exc.detail.lower():
                return None
            raise
        return detail if isinstance(detail, Mapping) and detail.get("uid") else None

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._vacancy(job_id)
        if row is None:
            return None
        questions = await self.job_questions(job_id)
        return msgspec.structs.replace(vacancy_job(row), screening_questions=questions, stages=await self.list_stages())

    async def job_status(self, job_id: str) -> str | None:
        row = await self._vacancy(job_id)
        if row is None:
            return "missing"
        return "open" if vacancy_job(row).status == "OPEN" else "closed"

    # questions (the vacancy's questionset)

    async def _questionset(self, job_id: str, *, fresh: bool = False) -> list[tuple[ScreeningQuestion, dict[str, Any]]]:
        """(Kombo question, raw OTYS question) in questionset order, cached a minute per vacancy;
        PermanentError(404) for an unknown vacancy."""

        async def load() -> list[tuple[ScreeningQuestion, dict[str, Any]]]:
            try:
                qs_uid = await self.call(
                    f"{SVC}QuestionSetService.getVacancyQsIdByVacancyOuid",
                    self._vacancy_uid(job_id),
                    what="read questionset id",
                )
            except PermanentError as exc:
                if "not found" in exc.detail.lower():
                    raise PermanentError(exc.detail, status=404) from None
                raise
            if not qs_uid:
                return []
            detail = await self.call(f"{SVC}QuestionSetService.getDetail", qs_uid, what="read questionset")
            out: list[tuple[ScreeningQuestion, dict[str, Any]]] = []
            for page in (detail or {}).get("Pages", []):
                questions = page.get("Questions") or {}
                pairs = questions.items() if isinstance(questions, Mapping) else enumerate(questions)
                for key, raw in pairs:
                    if isinstance(raw, Mapping) and raw.get("type") and is_screening_question(raw):
                        out.append((kombo_question(str(raw.get("id", key)), raw, len(out)), dict(raw)))
            return out

        return await self._questions.get_or_load(job_id, load, fresh=fresh)

    async def job_questions(self, job_id: str) -> list[ScreeningQuestion]:
        """The questionset's screening questions in Kombo's shape (candidate-data questions left
        out: the application's candidate answers them). Always read from OTYS (the catalog caches
        reads in Redis); the answer refreshes the minute cache the steps and `check_answers` use."""
        return [q for q, _ in await self._questionset(job_id, fresh=True)]

    async def screening_questions(self, job_id: str) -> list[dict[str, Any]]:
        return [to_neutral(q, raw) for q, raw in await self._questionset(job_id)]

    # stages and sources

    async def list_stages(self, job_id: str | None = None) -> list[Stage]:
        """Status list 1 (the pipeline), the same for every vacancy; ids as `move_application_to_stage`
        and `application.stage_id` take them (``"1_<uid>"``)."""
        return [
            Stage(id=r["id"], remote_id=r["id"], name=str(r["name"] or ""), index=i)
            for i, r in enumerate(await self.stages())
        ]

    async def list_sources(self) -> list[Source]:
        """The referrer portals ("herkomst"), paged by 200; an application names one by uid or name."""
        sources: list[Source] = []
        offset = 0
        while True:
            result = await self.call(
                f"{SVC}ReferrerPortalService.getListEx",
                {"what": {"uid": 1, "portal": 1}, "limit": MAX_LIST_LIMIT, "offset": offset, "getTotalCount": 1},
                what="list referrer portals",
            )
            rows = list((result or {}).get("listOutput", []))
            sources += [
                Source(id=str(r["uid"]), remote_id=str(r["uid"]), name=str(r.get("portal") or "")) for r in rows
            ]
            total = (result or {}).get("totalCount")
            offset += MAX_LIST_LIMIT
            if not rows or (isinstance(total, int) and offset >= total) or len(rows) < MAX_LIST_LIMIT:
                return sources

    async def application_status(self, application_id: str, job_id: str | None = None) -> dict[str, Any] | None:
        """For status sync: the procedure's pipeline stage (status list 1) and an outcome.
        assumption: OTYS has no outcome field; HIRED / DECLINED are read from the stage's code,
        per the settings `hired_stage_codes` / `declined_stage_codes` (defaults in English and Dutch)."""
        detail = await self.call(
            f"{SVC}ProcedureService.getDetail",
            application_id,
            {"uid": 1, "ProcedureStatus1": 1},
            what="read application status",
        )
        status = (detail or {}).get("ProcedureStatus1") if isinstance(detail, Mapping) else None
        stage_id = str(status.get("uid")) if isinstance(status, Mapping) and status.get("uid") else None
        names = await self._stage_names.get_or_load("all", self._stage_name_map)
        name = names.get(stage_id or "")
        code = (name or "").casefold()
        hired = {c.casefold() for c in self.settings.hired_stage_codes}
        declined = {c.casefold() for c in self.settings.declined_stage_codes}
        outcome = "HIRED" if code in hired else "DECLINED" if code in declined else "PENDING"
        return {"stage_id": stage_id, "stage_name": name, "outcome": outcome}

    async def _stage_name_map(self) -> dict[str, str]:
        return {r["id"]: str(r["name"] or "") for r in await self.stages()}

    async def stages(self) -> list[dict[str, Any]]:
        """Status list 1 (the pipeline) as ``{"id": "1_<uid>", "name"}``."""
        rows = await self.call(
            f"{SVC}ProcedureStatus1Service.getList",
            {"what": {"uid": 1, "code": 1, "automaticallySelectEvent": 1}},
            what="read stages",
        )
        return [{"id": f"1_{r['uid']}", "name": r.get("code")} for r in rows or []]

    async def passthrough(
        self, method: str, path: str, query: Mapping[str, str] | None, body: Any
    ) -> PassthroughResult:
        """``POST jservice.php`` with ``{"method", "params"}``: the session is put in front of the
        params (as Kombo's ``otys/json-rpc`` passthrough does) and re-logged in if it expired. The
        OTYS envelope comes back as-is (errors included). Nothing else is reachable."""
        clean = path.strip().lstrip("/")
        if method.upper() != "POST" or clean not in ("", "jservice.php") or query:
            raise PermanentError("OTYS passthrough: only POST jservice.php (JSON-RPC) is allowed")
        if not isinstance(body, Mapping) or not isinstance(body.get("method"), str):
            raise PermanentError("OTYS passthrough: body must be {method, params}")
        rpc_method = str(body["method"])
        if rpc_method in ("loginByUid", "logout") or not rpc_method.startswith(("Otys.Services.", "check")):
            raise PermanentError("OTYS passthrough: method not allowed")
        params = body.get("params") or []
        if not isinstance(params, list):
            raise PermanentError("OTYS passthrough: params must be a list")

        async def attempt(session: str, last: bool) -> PassthroughResult:
            envelope = {
                "jsonrpc": "2.0",
                "method": rpc_method,
                "params": [session, *params],
                "id": body.get("id", next(self._ids)),
            }
            response = await self.request("POST", self.rpc_url, what="OTYS passthrough", expect=(200,), json=envelope)
            data = self._decode(response, "OTYS passthrough")
            error = data.get("error") if isinstance(data, dict) else None
            message = str((error or {}).get("message", "")).lower()
            if error and any(m in message for m in SESSION_MESSAGES) and not last:
                raise _SessionRefused(message)
            # the envelope goes back as it is, errors included (a second refusal too)
            return PassthroughResult(
                status=response.status_code, headers={"content-type": "application/json"}, body=data
            )

        return await self._with_session(attempt, "OTYS passthrough")


# -- Helpers ---------------------------------------------------------------------------------------

MAX_LIST_LIMIT = 200  # "max 200 results per request for most services"
# assumption: OTYS's vacancy status values (the emulator's); one small table to correct on a tenant
VACANCY_STATUSES: dict[str, JobStatus] = {
    "open": "OPEN",
    "online": "OPEN",
    "closed": "CLOSED",
    "filled": "CLOSED",
    "draft": "DRAFT",
    "concept": "DRAFT",
    "archived": "ARCHIVED",
}


def vacancy_condition(query: JobQuery) -> dict[str, Any] | None:
    """The listing's filters as a getListEx condition tree (status EQ, title LIKE, lastModified GE)."""
    items: list[dict[str, Any]] = []
    if query.status:
        values = [k for k, v in VACANCY_STATUSES.items() if v == query.status]
        items.append(
            {"type": "OR", "items": [{"type": "COND", "field": "status", "op": "EQ", "param": v} for v in values]}
        )
    if query.name_contains:
        items.append({"type": "COND", "field": "title", "op": "LIKE", "param": f"%{query.name_contains}%"})
    if query.updated_after:
        since = _aware(query.updated_after).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        items.append({"type": "COND", "field": "lastModified", "op": "GE", "param": since})
    return {"type": "AND", "items": items} if items else None


def vacancy_job(row: Mapping[str, Any]) -> Job:
    """An OTYS vacancy → Kombo's Job (OTYS dates are ``Y-m-d H:i:s``, taken as UTC)."""
    uid = str(row["uid"])
    location = JobLocation(
        city=row.get("locationCity") or None,
        zip_code=row.get("locationPostcode") or None,
        country=row.get("locationCountryCode") or None,
    )
    return Job(
        id=uid,
        remote_id=uid,
        name=str(row.get("title") or ""),
        status=VACANCY_STATUSES.get(str(row.get("status") or "").lower(), "CLOSED"),
        description=row.get("textField_description") or None,
        job_code=row.get("referenceNr") or None,
        post_url=row.get("customApplyUrl") or None,
        location=location if location != JobLocation() else None,
        changed_at=_otys_time(row.get("lastModified")),
        remote_created_at=_otys_time(row.get("entryDateTime")),
        remote_data=dict(row),
    )


def _otys_time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return None


def _aware(when: dt.datetime) -> dt.datetime:
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _offset(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not (cursor.isascii() and cursor.isdigit()):
        raise PermanentError("not a cursor of this OTYS listing", status=400)
    return int(cursor)


def _remote_object(application: StoredApplication, name: str) -> dict[str, Any]:
    """`remote_fields.otys.<name>`, which must be an object of OTYS fields."""
    otys = (application.remote_fields or {}).get("otys", {})
    if not isinstance(otys, Mapping):
        raise PermanentError("remote_fields.otys must be an object")
    value = otys.get(name, {})
    if not isinstance(value, Mapping):
        raise PermanentError(f"remote_fields.otys.{name} must be an object")
    return dict(value)
