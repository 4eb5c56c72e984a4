"""Factorial ATS connector (API version in the path, default 2026-07-01: ids are strings).

Steps: company → source → candidate → application → answers → CV (attachment step).

* find-before-create: candidates by ``emails[]``, applications by candidate + posting, answers by
  application (so a re-run after a timeout never duplicates);
* source writing: ``source.id`` (checked), else a source matched by name / label / unified key
  among ``ats/candidate_sources`` (read-only in the API), sent as the application's ``source`` and
  fixed with ``PUT ats/applications/{id}`` ``source_id`` when Factorial did not resolve it;
* answers through ``POST ats/answers`` typed by the question (options by their text; several
  options comma-joined; file questions are not writable: warning);
* the CV only (Factorial takes a single CV), sent per the connection's ``cv_upload`` setting:
  ``message`` (default: a message from the candidate on the application's conversation, the one
  documented multipart route), ``legacy_cv_part`` (the v1 multipart ``cv`` part) or ``link`` (a
  signed, expiring relay link in the cover letter); the route is to be confirmed on a live tenant;
* auth: ``x-api-key`` or OAuth bearer with one refresh on 401: through the connection's shared
  token chain when the relay keeps its tokens (``ConnectionSpec.tokens``), else in-process
  (refresh-token grant, the legacy env-based settings);
* reads in Kombo's shapes: job postings page by page (the status filter server-side, one walk per
  Factorial status), questions with option ids hashed from their text, phases per posting,
  hiring stages, candidate sources (docs/connectors/factorial.md, "Read models").

Settings (`FactorialSettings`), coverage, steps and assumptions: docs/connectors/factorial.md.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
import msgspec
from msgspec import Meta

from app.core.catalog import (
    READ_JOB_STAGES,
    READ_JOBS,
    READ_SCREENING_QUESTIONS,
    READ_SOURCES,
    READ_STAGES,
    EmploymentType,
    Job,
    JobPage,
    JobQuery,
    JobStatus,
    Option,
    QuestionFormat,
    ScreeningQuestion,
    Source,
    Stage,
    Visibility,
    parse_timestamp,
    text_option_id,
)
from app.core.model import AttachmentRef, StoredAnswer, StoredApplication
from connectors.base import (
    ACTION_ADD_ATTACHMENT_TO_APPLICATION,
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
    StepFn,
    StepWarning,
    TransientError,
    UnknownOutcome,
    answer_json,
    attachment_step_name,
    error_for_response,
    error_for_transport,
    record_id,
)
from connectors.http import ANY_STATUS, TtlCache, rest_passthrough

# -- Settings --------------------------------------------------------------------------------------

DEFAULT_VERSION = "2026-07-01"
READ_CACHE_S = 60.0  # questions, sources and phases: re-read at most once a minute


class FactorialSettings(ConnectorSettings, frozen=True):  # frozen: inherited, restated for mypy
    """A Factorial connection's own keys (docs/connectors/factorial.md)."""

    api_version: Annotated[str, Meta(pattern=r"^\d{4}-\d{2}-\d{2}$", description="a dated API version, YYYY-MM-DD")] = (
        DEFAULT_VERSION
    )
    auth: Literal["api_key", "oauth"] = "api_key"
    # OAuth refresh (auth = "oauth"): the names of the variables holding the app's id and secret
    # and the refresh token; the connection's credentials are then the current access token.
    oauth_client_id_env: str | None = None
    oauth_client_secret_env: str | None = None
    oauth_refresh_token_env: str | None = None
    cv_upload: Literal["message", "legacy_cv_part", "link"] = "message"
    cv_link_ttl_days: Annotated[float, Meta(gt=0)] = 7.0  # `link` mode: how long the CV link works
    default_source: str | None = None  # candidate source when the application names none


# -- Wire format -----------------------------------------------------------------------------------

CV_MARKER = "applyrelay-cv"
GENDERS = {"MALE": "male", "FEMALE": "female", "OTHER": "other"}


# Kombo's unified source keys → Factorial source categories, for `source.unified_key`.
UNIFIED_KEY_CATEGORIES = {
    "job_board": "job_board",
    "agency": "agency_or_external_recruiter",
    "event": "event",
    "social_media": "social_media",
    "referral": "referral",
    "internal": "internal",
    "organic": "organic",
    "career_site": "organic",
}


# Job posting `status` -> Kombo's status and visibility (docs/connectors/factorial.md, "Read models").
# `deleted` postings are still listed by the API: ARCHIVED.
POSTING_STATUS: dict[str, tuple[JobStatus, Visibility | None]] = {
    "published": ("OPEN", "PUBLIC"),
    "unlisted": ("OPEN", "UNLISTED"),
    "draft": ("DRAFT", None),
    "archived": ("ARCHIVED", None),
    "cancelled": ("CLOSED", None),
    "deleted": ("ARCHIVED", None),
}
# The API's `status` filter takes one value: a Kombo status is one listing walk per value.
STATUS_WALKS: dict[JobStatus, tuple[str, ...]] = {
    "OPEN": ("published", "unlisted"),
    "DRAFT": ("draft",),
    "ARCHIVED": ("archived", "deleted"),
    "CLOSED": ("cancelled",),
}
CONTRACT_EMPLOYMENT: dict[str, EmploymentType] = {
    "intern": "INTERNSHIP",
    "training": "INTERNSHIP",
    "apprenticeship": "INTERNSHIP",
    "alternant": "INTERNSHIP",
    "apprentissage": "INTERNSHIP",
    "apprendistato": "INTERNSHIP",
    "estagio": "INTERNSHIP",
    "werkstudent": "INTERNSHIP",
    "jovem_aprendiz": "INTERNSHIP",
    "freelance": "CONTRACT",
    "vendor_contractor": "CONTRACT",
    "temporary": "CONTRACT",
    "interim": "CONTRACT",
    "pj": "CONTRACT",
    "recibos_verdes": "CONTRACT",
}
# Question `question_type` -> Kombo's format (type, display_type).
QUESTION_FORMATS: dict[str, tuple[Any, Any]] = {
    "text": ("TEXT", "SINGLE_LINE"),
    "long_text": ("TEXT", "MULTI_LINE"),
    "single_choice": ("SINGLE_SELECT", None),
    "multiple_choice": ("MULTI_SELECT", None),
    "file": ("FILE", None),
}
PAGE_MAX = 100  # Factorial clamps `limit` to 100


option_id = text_option_id  # the reads' option ids (app/core/catalog.py)
_when = parse_timestamp


def job_from_posting(posting: dict[str, Any]) -> Job:
    """One `ats_job_posting` in Kombo's Job shape (no stages or questions: `get_job` adds them)."""
    status, visibility = POSTING_STATUS.get(str(posting.get("status")), ("CLOSED", None))
    contract = str(posting.get("contract_type") or "")
    schedule = posting.get("schedule_type")
    employment: EmploymentType | None = CONTRACT_EMPLOYMENT.get(contract) or (
        "FULL_TIME" if schedule == "full_time" else "PART_TIME" if schedule == "part_time" else None
    )
    created = _when(posting.get("created_at"))
    published = _when(posting.get("published_at"))
    return Job(
        id=str(posting["id"]),
        remote_id=str(posting["id"]),
        name=str(posting.get("title") or ""),
        status=status,
        description=posting.get("description"),
        visibility=visibility,
        post_url=posting.get("url") or None,
        employment_type=employment,
        changed_at=max((d for d in (created, published) if d is not None), default=None),
        remote_created_at=created,
        remote_data=posting,
    )


def question_from_raw(question: dict[str, Any]) -> ScreeningQuestion:
    """One `ats_question` in Kombo's shape; Factorial has no conditional questions."""
    kind, display = QUESTION_FORMATS.get(str(question.get("question_type")), ("UNKNOWN", None))
    options = None
    if kind in ("SINGLE_SELECT", "MULTI_SELECT"):
        texts = [str(o.get("text", "")) for o in question.get("options") or [] if isinstance(o, dict)]
        options = [Option(id=option_id(t), remote_id=option_id(t), name=t) for t in texts]
    return ScreeningQuestion(
        id=str(question["id"]),
        remote_id=str(question["id"]),
        title=str(question.get("label") or ""),
        format=QuestionFormat(type=kind, display_type=display, options=options),
        required=bool(question.get("mandatory")),
        index=question.get("position") if isinstance(question.get("position"), int) else None,
    )


def _job_matches(job: Job, query: JobQuery) -> bool:
    """The filters Factorial cannot apply server-side, applied to each page read."""
    if query.status is not None and job.status != query.status:
        return False
    if query.name_contains and query.name_contains.casefold() not in job.name.casefold():
        return False
    if query.updated_after is not None:
        after = query.updated_after if query.updated_after.tzinfo else query.updated_after.replace(tzinfo=dt.UTC)
        return job.changed_at is not None and job.changed_at > after
    return True


def _reason(response: httpx.Response) -> str:
    """Factorial's error text, for the dead letter. Its validation messages name fields, not
    values, so they carry no candidate data; cut short all the same."""
    try:
        body = response.json()
    except ValueError:
        return ""
    errors = body.get("errors") if isinstance(body, dict) else None
    if isinstance(errors, dict):
        errors = errors.get("errors", errors)
    if isinstance(errors, list) and errors:
        return " — " + "; ".join(str(e) for e in errors)[:300]
    if isinstance(body, dict) and body.get("message"):
        return " — " + str(body["message"])[:300]
    return ""


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# -- Answer encoding -------------------------------------------------------------------------------


def _encode_answer(question: dict[str, Any], answer: StoredAnswer, ctx: StepContext) -> str | None:
    """Factorial answers are strings: options (named by `option_id` or by text) as their text,
    several comma-joined (assumption: the separator is undocumented), booleans Yes/No, dates ISO,
    numbers as written (docs/connectors/factorial.md, "Answer encoding")."""
    qtype, value = question["question_type"], answer.answer
    options = [o["text"] for o in question.get("options") or []]
    if qtype == "file" or isinstance(value, AttachmentRef):
        ctx.warn("answer_not_supported", f"question {answer.question_id}: file answers cannot be written")
        return None
    if qtype in ("single_choice", "multiple_choice"):
        chosen = value if isinstance(value, list) else [value]
        labels = []
        for item in chosen:
            label = _option_label(options, item)
            if label is None:
                raise PermanentError(f"question {answer.question_id}: answer is not one of its options")
            labels.append(label)
        if qtype == "single_choice" and len(labels) != 1:
            raise PermanentError(f"question {answer.question_id}: exactly one option expected")
        return ", ".join(labels)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(value)
    return str(value)


def _option_label(options: list[str], item: Any) -> str | None:
    """The option an answer names: by its id (`option_id`, what the reads expose), its text
    (the older spelling, still accepted), or its index."""
    if isinstance(item, bool):
        item = "Yes" if item else "No"
    text = str(item)
    by_id = {option_id(o): o for o in options}
    if text in by_id:
        return by_id[text]
    if text in options:
        return text
    folded = {o.casefold(): o for o in options}
    if text.casefold() in folded:
        return folded[text.casefold()]
    if text.isdigit() and int(text) < len(options):  # an option index
        return options[int(text)]
    return None


# -- Connector -------------------------------------------------------------------------------------


class FactorialConnector(Connector[FactorialSettings]):
    name = "factorial"
    settings_type = FactorialSettings
    default_base_url = "https://api.factorialhr.com"

    capabilities = Capabilities(
        attachment_types=frozenset({"CV"}),
        actions=frozenset({ACTION_ADD_ATTACHMENT_TO_APPLICATION, ACTION_MOVE_APPLICATION_TO_STAGE}),
        reads=frozenset({READ_JOBS, READ_SCREENING_QUESTIONS, READ_STAGES, READ_JOB_STAGES, READ_SOURCES}),
    )

    def __init__(self, connection: ConnectionSpec[FactorialSettings], http: httpx.AsyncClient) -> None:
        super().__init__(connection, http)
        self.api = f"{connection.base_url}/api/{self.settings.api_version}/resources/"
        self.cv_upload = self.settings.cv_upload
        self.cv_link_ttl_s = self.settings.cv_link_ttl_days * 86400
        self.oauth = self.settings.auth == "oauth"
        self.tokens = connection.tokens  # the relay's shared token chain (app/connections/oauth.py)
        self._access_token = connection.credentials if self.oauth else None
        self._refresh_token = _env(self.settings.oauth_refresh_token_env)
        self._company_id: str | None = None
        self._questions: TtlCache[str, list[dict[str, Any]]] = TtlCache(READ_CACHE_S)
        self._sources: TtlCache[str, list[dict[str, Any]]] = TtlCache(READ_CACHE_S)
        self._phases: TtlCache[str, dict[str, dict[str, Any]]] = TtlCache(READ_CACHE_S)

    # -- Transport ---------------------------------------------------------------------------------

    async def _auth_headers(self) -> dict[str, str]:
        if self.tokens is not None:
            return {"authorization": f"Bearer {await self.tokens.access_token()}"}
        if self.oauth:
            return {"authorization": f"Bearer {self._access_token}"}
        return {"x-api-key": self.connection.credentials}

    async def _send(
        self, method: str, path: str, *, what: str, expect: tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> httpx.Response:
        """One API call with auth; on 401 with OAuth, refresh the token once and repeat (the shared
        chain's `refreshed`, app/connections/oauth.py, or the legacy in-process refresh)."""
        url = path if path.startswith("http") else self.api + path
        for attempt in (1, 2):
            headers = await self._auth_headers()
            try:
                response = await self.http.request(
                    method, url, headers=headers, timeout=self.connection.timeout_s, **kwargs
                )
            except httpx.HTTPError as exc:
                raise error_for_transport(exc, what, sent=True) from None
            if response.status_code == 401 and attempt == 1 and await self._refresh_after_401(headers):
                continue
            if response.status_code not in expect:
                raise error_for_response(response, f"{what}{_reason(response)}")
            return response
        raise AuthError(f"{what}: refused after token refresh", status=401)

    async def _refresh_after_401(self, sent: dict[str, str]) -> bool:
        if self.tokens is not None:
            await self.tokens.refreshed(sent["authorization"].removeprefix("Bearer "))
            return True
        return self.oauth and await self._refresh()

    async def _send_file(self, method: str, path: str, *, what: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self._send(method, path, what=what, **kwargs)
        except PermanentError as exc:
            if exc.status in (400, 413, 415, 422):
                raise AttachmentRejected(exc.detail, status=exc.status) from None
            raise

    async def _refresh(self) -> bool:
        client_id = _env(self.settings.oauth_client_id_env)
        client_secret = _env(self.settings.oauth_client_secret_env)
        if not (client_id and client_secret and self._refresh_token):
            return False
        try:
            response = await self.http.post(
                f"{self.connection.base_url}/oauth/token",
                timeout=self.connection.timeout_s,
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": self._refresh_token,
                    "client_id": client_id,
                    "client_secret": client_secret,
                },
            )
        except httpx.HTTPError as exc:
            raise error_for_transport(exc, "oauth token refresh", sent=False) from None
        if response.status_code != 200:
            return False
        token = response.json()
        self._access_token = token["access_token"]
        self._refresh_token = token.get("refresh_token", self._refresh_token)
        return True

    async def _list(self, path: str, params: list[tuple[str, str]], *, what: str) -> list[dict[str, Any]]:
        """Every page of a list endpoint (cursor pagination on `meta.end_cursor`)."""
        items: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(100):  # 10,000 records at most: far beyond what a lookup needs
            query = [*params, ("limit", "100")] + ([("after_id", after)] if after else [])
            page = answer_json(await self._send("GET", path, what=what, params=query), what, wrote=False)
            if not isinstance(page, dict) or not isinstance(page.get("data", []), list):
                raise TransientError(f"{what}: the ATS answered a list page of another shape")
            items.extend(row for row in page.get("data", []) if isinstance(row, dict))
            meta = page.get("meta") or {}
            after = meta.get("end_cursor")
            if not meta.get("has_next_page") or not after:
                break
        return items

    # -- Intake check ------------------------------------------------------------------------------

    def check(self, application: StoredApplication) -> tuple[list[str], list[StepWarning]]:
        warnings = []
        cvs = [a for a in application.attachments if a.type == "CV"]
        for ref in application.attachments:
            if ref.type != "CV":
                warnings.append(
                    StepWarning(
                        "attachment_not_supported", f"attachment #{ref.index} ({ref.type}): Factorial takes only a CV"
                    )
                )
        for ref in cvs[1:]:
            warnings.append(
                StepWarning(
                    "attachment_not_supported",
                    f"attachment #{ref.index} (CV): Factorial takes a single CV, the first is sent",
                )
            )
        for name in ("company", "location", "availability_date"):
            if getattr(application.candidate, name) is not None:
                warnings.append(StepWarning("field_not_supported", f"candidate.{name} is not written to Factorial"))
        if application.remote_fields.get("factorial"):
            warnings.append(StepWarning("field_not_supported", "remote_fields.factorial is not used"))
        return [], warnings

    # -- Plan --------------------------------------------------------------------------------------

    def plan(self, application: StoredApplication) -> list[Step]:
        steps = [
            Step("company", self._company, writes=False),  # reads (once a process)
            Step("source", self._source, writes=False),  # reads (a cached list)
            Step("candidate", self._candidate),
            Step("application", self._application),
        ]
        if application.screening_question_answers:
            steps.append(Step("answers", self._answers))
        cv = next((a for a in application.attachments if a.type == "CV"), None)
        if cv is not None:
            steps.append(Step(attachment_step_name(cv), self._cv_step(cv, "application"), attachment=cv, core=False))
        return steps

    # -- Steps -------------------------------------------------------------------------------------

    async def _company(self, ctx: StepContext) -> str:
        """The company of the credentials: constant for a connection, so read once per process."""
        if self._company_id is None:
            self._company_id = await self._read_company()
        return self._company_id

    async def _read_company(self) -> str:
        data = (await self._send("GET", "api_public/credentials", what="read credentials")).json()
        rows = data.get("data", data if isinstance(data, list) else [data])
        if not rows or not rows[0].get("company_id"):
            raise PermanentError("the credentials carry no company_id")
        return str(rows[0]["company_id"])

    async def verify_credentials(self) -> None:
        """`GET api_public/credentials`: the read every delivery starts with, one small row, and
        a 401 with Factorial's message when the key or token is refused (docs/connections.md)."""
        self._company_id = await self._read_company()

    async def _source(self, ctx: StepContext) -> str:
        """The candidate source to write: ``id:<source id>`` or ``name:<free text>``."""
        app = _app(ctx)
        source = app.source
        if source is not None and source.id:
            await self._send("GET", f"ats/candidate_sources/{source.id}", what="read candidate source")
            return f"id:{source.id}"
        wanted = [
            v
            for v in (
                source.name if source else None,
                self.settings.default_source,
                app.origin.board,
            )
            if v
        ]
        sources = await self._candidate_sources()
        for name in wanted:
            match = next(
                (
                    s
                    for s in sources
                    if name.casefold() in (str(s.get("name", "")).casefold(), str(s.get("label", "")).casefold())
                ),
                None,
            )
            if match:
                return f"id:{match['id']}"
        if source is not None and source.unified_key:
            category = UNIFIED_KEY_CATEGORIES.get(source.unified_key.lower())
            match = next((s for s in sources if s.get("category") == category), None)
            if match:
                return f"id:{match['id']}"
        if wanted:
            ctx.warn("source_not_found", "no matching Factorial candidate source: sent as free text")
            return f"name:{wanted[0]}"
        return "none:"

    def _source_fields(self, ctx: StepContext, sources: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
        kind, _, value = ctx.checkpoints.get("source", "none:").partition(":")
        app = _app(ctx)
        fields: dict[str, str] = {}
        if kind == "name":
            fields["source"] = value
        medium = app.origin.board or app.origin.channel
        if medium:
            fields["medium"] = medium
        return fields

    async def _candidate(self, ctx: StepContext) -> str:
        app = _app(ctx)
        email = app.candidate.email_address
        found = await self._list("ats/candidates", [("emails[]", email)], what="find candidate by email")
        match = next((c for c in found if str(c.get("email", "")).casefold() == email.casefold()), None)
        if match:
            return record_id(match.get("id"), "find candidate by email")
        body: dict[str, Any] = {
            "first_name": app.candidate.first_name,
            "last_name": app.candidate.last_name,
            "company_id": ctx.remote_id("company"),
            "email": email,
        }
        if app.candidate.phone_number:
            body["phone_number"] = app.candidate.phone_number
        if app.candidate.gender:
            body["gender"] = GENDERS[app.candidate.gender]
        if app.gdpr_consent is not None and app.gdpr_consent.given:
            body["consent_given_at"] = _iso(app.origin.received_at)
        body.update(self._source_fields(ctx))
        try:
            response = await self._send("POST", "ats/candidates", what="create candidate", json=body)
        except PermanentError as exc:
            if exc.status != 409:
                raise
            # Undocumented, but "already exists" where it is sent (a search index behind the
            # write): the retry's lookup finds the candidate, rather than a dead letter now.
            raise UnknownOutcome(f"{exc.detail} (the candidate may exist: looked up again on the retry)") from None
        created = answer_json(response, "create candidate", wrote=True)
        candidate_id = record_id(created.get("id") if isinstance(created, dict) else None, "create candidate")
        ctx.created_here.add("candidate")
        return candidate_id

    async def _application(self, ctx: StepContext) -> str:
        app = _app(ctx)
        candidate_id = ctx.remote_id("candidate")
        job_id = app.application.job_id
        match = None
        if "candidate" not in ctx.created_here:  # a candidate created in this run has no applications yet
            existing = await self._list(
                "ats/applications",
                [("ats_candidate_ids[]", candidate_id), ("ats_job_posting_id", job_id)],
                what="find application",
            )
            match = next((a for a in existing if str(a.get("ats_job_posting_id")) == job_id), None)
        if match is None:
            body: dict[str, Any] = {"ats_job_posting_id": job_id, "ats_candidate_id": candidate_id}
            if app.application.stage_id:
                body["ats_application_phase_id"] = app.application.stage_id
            if app.candidate.phone_number:
                body["phone"] = app.candidate.phone_number
            if app.gdpr_consent is not None:
                body["consent_to_talent_pool"] = app.gdpr_consent.given
            if self.cv_upload == "link" and (letter := self._cv_link_letter(ctx, app)):
                body["cover_letter"] = letter
            body.update(self._source_fields(ctx))
            response = await self._send("POST", "ats/applications", what="create application", json=body)
            match = answer_json(response, "create application", wrote=True)
            if not isinstance(match, dict):
                match = {}
            application_id = record_id(match.get("id"), "create application")
            ctx.created_here.add("application")
        else:
            application_id = record_id(match.get("id"), "find application")
        kind, _, source_id = ctx.checkpoints.get("source", "none:").partition(":")
        if kind == "id" and str(match.get("source_id") or "") != source_id:
            await self._send(
                "PUT",
                f"ats/applications/{application_id}",
                what="set application source",
                json={"id": application_id, "source_id": source_id},
            )
        return application_id

    async def _answers(self, ctx: StepContext) -> str:
        app = _app(ctx)
        application_id = ctx.remote_id("application")
        questions = {q["id"]: q for q in await self._raw_questions(app.application.job_id)}
        done = {
            str(a.get("ats_question_id"))
            for a in await self._list("ats/answers", [("ats_application_ids[]", application_id)], what="list answers")
        }
        written = 0
        for answer in app.screening_question_answers:
            question = questions.get(answer.question_id)
            if question is None:
                ctx.warn("unknown_question", f"question {answer.question_id} is not on job {app.application.job_id}")
                continue
            if answer.question_id in done:
                continue
            value = _encode_answer(question, answer, ctx)
            if value is None:
                continue
            await self._send(
                "POST",
                "ats/answers",
                what=f"write answer to question {answer.question_id}",
                json={
                    "ats_question_id": answer.question_id,
                    "ats_application_id": application_id,
                    "value": value,
                    "original_question_label": question["label"],
                    "original_question_type": question["question_type"],
                },
            )
            written += 1
        answered = {a.question_id for a in app.screening_question_answers}
        for question in questions.values():
            if question.get("mandatory") and question["id"] not in answered:
                ctx.warn("required_question_unanswered", f"mandatory question {question['id']} has no answer")
        return f"{written + len(done)} answers"

    def _cv_link_letter(self, ctx: StepContext, app: StoredApplication) -> str | None:
        """`link` mode: the CV travels as a signed, expiring relay link in the cover letter."""
        cv = next((a for a in app.attachments if a.type == "CV"), None)
        if cv is None:
            return None
        url = ctx.file_link(cv, self.cv_link_ttl_s)
        if url is None:
            raise PermanentError("cv_upload = link needs APPLYRELAY_PUBLIC_URL and APPLYRELAY_LINK_SECRET")
        days = int(self.cv_link_ttl_s // 86400)
        return f"CV ({cv.name}): {url}\n(download link valid for {days} days)"

    def _cv_step(self, ref: AttachmentRef, application: str) -> StepFn:
        async def run(ctx: StepContext) -> str:
            application_id = ctx.remote_id("application") if application == "application" else application
            if self.cv_upload == "link" and application == "application":
                return f"link:{application_id}"  # written with the application's cover letter
            if self.cv_upload == "legacy_cv_part":
                return await self._legacy_cv(ctx, ref, application_id)
            return await self._cv_message(ctx, ref, application_id)

        return run

    async def _cv_message(self, ctx: StepContext, ref: AttachmentRef, application_id: str) -> str:
        marker = f"[{CV_MARKER}:{(ref.sha256 or str(ref.index))[:16]}]"
        if "application" in ctx.created_here and ctx.checkpoints.get("application") == application_id:
            # Created by this very run: no earlier try can have left a message on it, nothing to
            # look for (two of the ~6 calls of a delivery, bench P2). A re-run starts without it.
            candidate_id = ctx.remote_id("candidate")
        else:
            record = (await self._send("GET", f"ats/applications/{application_id}", what="read application")).json()
            candidate_id = str(record["ats_candidate_id"])
            if found := await self._find_cv_message(record, marker):
                return found
        data = await ctx.load_attachment(ref)
        files = [("attachments[]", (ref.name, data, ref.content_type or "application/octet-stream"))]
        form = {
            "content": f"Curriculum vitae {marker}",
            "sent_by_id": candidate_id,
            "sent_by_type": "candidate",
            "ats_application_id": application_id,
            "topic": "cv",
            "send_as_corporate_email": "false",
        }
        response = await self._send_file("POST", "ats/messages", what="upload CV as message", data=form, files=files)
        message = answer_json(response, "upload CV as message", wrote=True)
        return record_id(message.get("id") if isinstance(message, dict) else None, "upload CV as message")

    async def _find_cv_message(self, record: dict[str, Any], marker: str) -> str | None:
        """The CV message a previous try may have stored before its answer was lost."""
        conversation = record.get("ats_conversation_id")
        if conversation:
            messages = await self._list(
                "ats/messages",
                [("ats_conversation_id", str(conversation)), ("last_per_conversation", "false")],
                what="list application messages",
            )
            match = next((m for m in messages if marker in str(m.get("content", ""))), None)
            if match:
                return str(match["id"])
        return None

    async def _legacy_cv(self, ctx: StepContext, ref: AttachmentRef, application_id: str) -> str:
        data = await ctx.load_attachment(ref)
        url = f"{self.connection.base_url}/api/v1/ats/applications/{application_id}"
        files = [("cv", (ref.name, data, ref.content_type or "application/octet-stream"))]
        await self._send_file("PUT", url, what="upload CV (legacy v1)", files=files)
        return f"cv:{application_id}"

    # -- Actions -----------------------------------------------------------------------------------

    def action_plan(self, action: str, params: Mapping[str, Any], attachments: list[AttachmentRef]) -> list[Step]:
        if action == ACTION_ADD_ATTACHMENT_TO_APPLICATION:
            if not attachments or attachments[0].type != "CV":
                raise PermanentError("Factorial only takes attachments of type CV on applications")
            ref = attachments[0]
            application_id = str(params["application_id"])
            return [Step(attachment_step_name(ref), self._cv_step(ref, application_id), attachment=ref)]
        if action == ACTION_MOVE_APPLICATION_TO_STAGE:
            return [Step("move", lambda ctx: self._move(str(params["application_id"]), str(params["stage_id"])))]
        return super().action_plan(action, params, attachments)

    async def _move(self, application_id: str, stage_id: str) -> str:
        await self._send(
            "POST",
            "ats/applications/move_to_phase",
            what="move application to phase",
            json={"id": application_id, "ats_application_phase_id": stage_id},
        )
        return stage_id

    # -- Reads -------------------------------------------------------------------------------------

    async def _candidate_sources(self) -> list[dict[str, Any]]:
        """The tenant's sources, re-read at most every minute (they change rarely)."""
        return await self._sources.get_or_load(
            "all", lambda: self._list("ats/candidate_sources", [], what="list candidate sources")
        )

    async def _raw_questions(self, job_id: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        """The posting's questions (ids as strings) by position, cached a minute per posting."""

        async def load() -> list[dict[str, Any]]:
            rows = await self._list("ats/questions", [("ats_job_posting_ids[]", job_id)], what="list questions")
            rows.sort(key=lambda q: (q.get("position") if isinstance(q.get("position"), int) else 0, str(q["id"])))
            return [{**q, "id": str(q["id"])} for q in rows]

        return await self._questions.get_or_load(job_id, load, fresh=fresh)

    async def _posting(self, job_id: str) -> dict[str, Any] | None:
        try:
            response = await self._send("GET", f"ats/job_postings/{quote(job_id, safe='')}", what="read job posting")
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        posting = response.json()
        return posting if isinstance(posting, dict) else None

    async def list_jobs(self, query: JobQuery) -> JobPage:
        """One page of ``ats/job_postings`` (cursor pagination on ``after_id``, at most 100 a
        page). A Kombo status is sent as Factorial's ``status`` filter, one walk per value it
        covers (OPEN: published then unlisted); name and update date are filtered per page. The
        cursor is ``<walk>:<after_id>``."""
        walks: tuple[str | None, ...] = STATUS_WALKS[query.status] if query.status else (None,)
        walk, after = 0, ""
        if query.cursor:
            head, _, after = query.cursor.partition(":")
            if not head.isdigit() or int(head) >= len(walks):
                raise PermanentError("cursor is not one of this listing's", status=400)
            walk = int(head)
        params: list[tuple[str, str]] = [("limit", str(max(1, min(query.page_size, PAGE_MAX))))]
        if walks[walk]:
            params.append(("status", str(walks[walk])))
        if after:
            params.append(("after_id", after))
        page = (await self._send("GET", "ats/job_postings", what="list job postings", params=params)).json()
        jobs = [job_from_posting(p) for p in page.get("data") or [] if isinstance(p, dict)]
        meta = page.get("meta") or {}
        next_cursor: str | None = None
        if meta.get("has_next_page") and meta.get("end_cursor"):
            next_cursor = f"{walk}:{meta['end_cursor']}"
        elif walk + 1 < len(walks):
            next_cursor = f"{walk + 1}:"
        return JobPage(jobs=[j for j in jobs if _job_matches(j, query)], next_cursor=next_cursor)

    async def get_job(self, job_id: str) -> Job | None:
        posting = await self._posting(job_id)
        if posting is None:
            return None
        job = job_from_posting(posting)
        questions = [question_from_raw(q) for q in await self._raw_questions(job_id, fresh=True)]
        stages = await self.list_stages(job_id)
        return msgspec.structs.replace(job, screening_questions=questions, stages=stages)

    async def job_questions(self, job_id: str) -> list[ScreeningQuestion]:
        """The posting's questions (``ats/questions?ats_job_posting_ids[]=``), by position.
        Always read afresh: the relay's catalog caches (and the delivery's cache is refreshed
        with them). The posting is looked up only when it has no question (one call otherwise)."""
        rows = await self._raw_questions(job_id, fresh=True)
        if not rows and await self._posting(job_id) is None:
            raise PermanentError(f"job posting {job_id} not found", status=404)
        return [question_from_raw(q) for q in rows]

    async def list_stages(self, job_id: str | None = None) -> list[Stage]:
        """With a job: its application phases (Factorial scopes phases by posting); without:
        the company's hiring stages (the groups phases belong to)."""
        if job_id is None:
            rows = await self._list("ats/hiring_stages", [], what="list hiring stages")
            name_key = "label"
        else:
            rows = list((await self._posting_phases(job_id, fresh=True)).values())
            name_key = "name"
        rows.sort(key=lambda r: (r.get("position") if isinstance(r.get("position"), int) else 0, str(r.get("id"))))
        return [
            Stage(
                id=str(r["id"]),
                remote_id=str(r["id"]),
                name=str(r.get(name_key) or r.get("name") or ""),
                index=r.get("position") if isinstance(r.get("position"), int) else None,
            )
            for r in rows
        ]

    async def list_sources(self) -> list[Source]:
        """``ats/candidate_sources``: id, and the label Factorial shows (else its name)."""
        rows = await self._list("ats/candidate_sources", [], what="list candidate sources")
        return [
            Source(id=str(r["id"]), remote_id=str(r["id"]), name=str(r.get("label") or r.get("name") or ""))
            for r in rows
        ]

    async def job_status(self, job_id: str) -> str | None:
        """ "open" for an OPEN posting (published or unlisted), "closed" otherwise, "missing"."""
        posting = await self._posting(job_id)
        if posting is None:
            return "missing"
        return "open" if job_from_posting(posting).status == "OPEN" else "closed"

    async def screening_questions(self, job_id: str) -> list[dict[str, Any]]:
        """The older, connector-neutral shape, from the same mapping as `job_questions` (types
        are Factorial's; option ids are the option texts, which the answer encoding also takes)."""
        raw = {q["id"]: q for q in await self._raw_questions(job_id)}
        return [
            {
                "id": q.id,
                "label": q.title,
                "type": raw[q.id]["question_type"],
                "required": q.required,
                "options": [{"id": o.name, "label": o.name} for o in q.format.options or []],
            }
            for q in map(question_from_raw, raw.values())
        ]

    async def application_status(self, application_id: str, job_id: str | None = None) -> dict[str, Any] | None:
        """Phase (id, name, type) and outcome: DECLINED when disqualified or given a rejection reason,
        HIRED in a phase of type `hired`, else PENDING. Phase names are cached per job posting."""
        app = (await self._send("GET", f"ats/applications/{application_id}", what="get application")).json()
        phase_id = str(app.get("ats_application_phase_id") or "")
        phase = (await self._posting_phases(str(app.get("ats_job_posting_id") or ""))).get(phase_id, {})
        rejection = app.get("ats_rejection_reason_id")
        declined = app.get("qualified") is False or rejection not in (None, "")
        outcome = "DECLINED" if declined else "HIRED" if phase.get("phase_type") == "hired" else "PENDING"
        return {
            "stage_id": phase_id or None,
            "stage_name": phase.get("name"),
            "stage_type": phase.get("phase_type"),
            "outcome": outcome,
            "qualified": app.get("qualified"),
            "rejection_reason_id": str(rejection) if rejection not in (None, "") else None,
        }

    async def _posting_phases(self, posting_id: str, *, fresh: bool = False) -> dict[str, dict[str, Any]]:
        """The posting's application phases by id, cached a minute per posting."""

        async def load() -> dict[str, dict[str, Any]]:
            rows = await self._list(
                "ats/application_phases", [("ats_job_posting_ids[]", posting_id)], what="list application phases"
            )
            return {str(p["id"]): p for p in rows}

        return await self._phases.get_or_load(posting_id, load, fresh=fresh)

    async def passthrough(
        self, method: str, path: str, query: Mapping[str, str] | None, body: Any
    ) -> PassthroughResult:
        """Any call under the API base (``ats/...``): confined there, credentials added (an
        expired OAuth token is refreshed once, as for every call)."""
        send = functools.partial(self._send, what="passthrough", expect=ANY_STATUS)
        return await rest_passthrough(send, self.api, method, path, query, body)


# -- Helpers ---------------------------------------------------------------------------------------


def _app(ctx: StepContext) -> StoredApplication:
    if ctx.application is None:
        raise PermanentError("this step needs an application")
    return ctx.application


def _env(name: str | None) -> str | None:
    return os.environ.get(name) if name else None
