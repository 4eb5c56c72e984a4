"""OTYS connector: the OWS JSON-RPC API (``POST {base}/jservice.php``, files via ``fileService.php``).

Wire facts come from public sources (the official OTYS WordPress plugin, public OWS clients);
choices where they are silent are marked "assumption:" here and listed, with the settings
(`OtysSettings`) and the coverage, in docs/connectors/otys.md.

Plan of a delivery (checkpoint names are stable):

    source        referrer portal uid ("herkomst"), looked up by id / name / alias, created if missing
    candidate     find by e-mail (ACTONOMY search) → updateEx, else CandidateService.add
    gdpr          CandidateService.setGdprDueDatePartner (only with gdpr_consent)
    application   find the procedure (candidate × vacancy) → else ProcedureService.add with the stage
    attachment:*  core=False, one per file: list the candidate's documents and skip a file OTYS
                  already holds (sha256 marker in the description, else name + size), else upload
                  to fileService.php and link it with AttachedDocumentsService.add

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
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

import httpx
from msgspec import Meta

from app.core.model import AttachmentRef, StoredApplication
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
    ConnectorSettings,
    PassthroughResult,
    PermanentError,
    Step,
    StepContext,
    StepWarning,
    TransientError,
    UnknownOutcome,
    attachment_step_name,
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
Count = Annotated[int, Meta(ge=0)]


class OtysSettings(ConnectorSettings, frozen=True):  # frozen: inherited, restated for mypy
    """An OTYS connection's own keys (docs/connectors/otys.md)."""

    default_source: str | None = None  # source when the application names none
    create_sources: bool = True  # create a referrer portal for an unknown source name
    update_existing_candidates: bool = True  # updateEx a candidate found by e-mail
    company_field: str = "currentEmployer"  # the candidate field for candidate.company
    gender_map: dict[Literal["MALE", "FEMALE", "OTHER"], str] = {}  # over DEFAULT_GENDERS
    document_types: dict[Literal["CV", "COVER_LETTER", "OTHER"], int] = {}  # over DEFAULT_DOCUMENT_TYPES
    gdpr_retention_months: Count = 12  # due date when consent is given without expires_at
    gdpr_decline_days: Count = 30  # due date when consent is declined
    result_link_type_id: int = 201  # document type of result-link documents
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
    if isinstance(result, bool) or not isinstance(result, str | int) or result in ("", 0):
        raise UnknownOutcome(f"OTYS returned no {what} id")
    return str(result)


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
# Screening answers are not in the OTYS coverage: intake warns and none are written. Only the
# questions are read (QuestionSetService), with their types in the relay's neutral names.


QUESTION_TYPES = {
    "textField": "TEXT",
    "textarea": "TEXT",
    "motivation": "TEXT",
    "dateSelect": "DATE",
    "file": "FILE",
    "multiFile": "FILE",
    "select": "SINGLE_SELECT",
    "radio": "SINGLE_SELECT",
    "multiSelect": "MULTI_SELECT",
    "multiCheckbox": "MULTI_SELECT",
    "criteria": "MULTI_SELECT",
    "checkbox": "BOOLEAN",
}


# -- Connector -------------------------------------------------------------------------------------


class OtysConnector(Connector[OtysSettings]):
    name = "otys"
    settings_type = OtysSettings

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
    )

    def __init__(self, connection: ConnectionSpec[OtysSettings], http: httpx.AsyncClient) -> None:
        super().__init__(connection, http)
        self._session: str | None = None
        self._stage_names: TtlCache[str, dict[str, str]] = TtlCache(STAGE_CACHE_S)
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
        if application.screening_question_answers:
            warnings.append(
                StepWarning(
                    "answers_not_written",
                    "OTYS: screening answers are not part of the OTYS coverage; not written",
                )
            )
        known = self._document_types()
        for ref in application.attachments:
            if ref.type not in known:
                warnings.append(StepWarning("attachment_type", f"OTYS: attachment type {ref.type} sent as other"))
        return [], warnings

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
        return steps

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
        email = application.candidate.email_address
        payload = self._candidate_payload(application, ctx.checkpoints.get("source") or None)
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

    async def screening_questions(self, job_id: str) -> list[dict[str, Any]]:
        qs_uid = await self.call(
            f"{SVC}QuestionSetService.getVacancyQsIdByVacancyOuid",
            self._vacancy_uid(job_id),
            what="read questionset id",
        )
        if not qs_uid:
            return []
        detail = await self.call(f"{SVC}QuestionSetService.getDetail", qs_uid, what="read questionset")
        out: list[dict[str, Any]] = []
        for page in (detail or {}).get("Pages", []):
            questions = page.get("Questions") or {}
            for qid, q in questions.items() if isinstance(questions, Mapping) else enumerate(questions):
                answers = q.get("PossibleAnswersExt") or []
                if isinstance(answers, Mapping):
                    answers = [
                        {"uid": k, **(v if isinstance(v, Mapping) else {"answer": v})} for k, v in answers.items()
                    ]
                out.append(
                    {
                        "id": str(q.get("id", qid)),
                        "type": QUESTION_TYPES.get(str(q.get("subtype") or q.get("type")), "UNKNOWN"),
                        "required": bool((q.get("Validation") or {}).get("mandatory")),
                        "label": q.get("question"),
                        "field_name": q.get("fieldName"),
                        "options": [{"id": str(a.get("uid")), "label": a.get("answer")} for a in answers],
                    }
                )
        return out

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


def _remote_object(application: StoredApplication, name: str) -> dict[str, Any]:
    """`remote_fields.otys.<name>`, which must be an object of OTYS fields."""
    otys = (application.remote_fields or {}).get("otys", {})
    if not isinstance(otys, Mapping):
        raise PermanentError("remote_fields.otys must be an object")
    value = otys.get(name, {})
    if not isinstance(value, Mapping):
        raise PermanentError(f"remote_fields.otys.{name} must be an object")
    return dict(value)
