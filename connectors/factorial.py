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
* auth: ``x-api-key`` or OAuth bearer with one refresh on 401 (refresh-token grant).

Settings (`FactorialSettings`), coverage, steps and assumptions: docs/connectors/factorial.md.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote

import httpx
from msgspec import Meta

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
    attachment_step_name,
    error_for_response,
    error_for_transport,
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
    """Factorial answers are strings: options by their text, several comma-joined
    (assumption: the separator is undocumented), booleans Yes/No, dates ISO."""
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
    if isinstance(item, bool):
        item = "Yes" if item else "No"
    text = str(item)
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

    capabilities = Capabilities(
        attachment_types=frozenset({"CV"}),
        actions=frozenset({ACTION_ADD_ATTACHMENT_TO_APPLICATION, ACTION_MOVE_APPLICATION_TO_STAGE}),
    )

    def __init__(self, connection: ConnectionSpec[FactorialSettings], http: httpx.AsyncClient) -> None:
        super().__init__(connection, http)
        self.api = f"{connection.base_url}/api/{self.settings.api_version}/resources/"
        self.cv_upload = self.settings.cv_upload
        self.cv_link_ttl_s = self.settings.cv_link_ttl_days * 86400
        self.oauth = self.settings.auth == "oauth"
        self._access_token = connection.credentials if self.oauth else None
        self._refresh_token = _env(self.settings.oauth_refresh_token_env)
        self._company_id: str | None = None
        self._questions: TtlCache[str, list[dict[str, Any]]] = TtlCache(READ_CACHE_S)
        self._sources: TtlCache[str, list[dict[str, Any]]] = TtlCache(READ_CACHE_S)
        self._phases: TtlCache[str, dict[str, dict[str, Any]]] = TtlCache(READ_CACHE_S)

    # -- Transport ---------------------------------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        if self.oauth:
            return {"authorization": f"Bearer {self._access_token}"}
        return {"x-api-key": self.connection.credentials}

    async def _send(
        self, method: str, path: str, *, what: str, expect: tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> httpx.Response:
        """One API call with auth; on 401 with OAuth, refresh the token once and repeat."""
        url = path if path.startswith("http") else self.api + path
        for attempt in (1, 2):
            try:
                response = await self.http.request(
                    method, url, headers=self._auth_headers(), timeout=self.connection.timeout_s, **kwargs
                )
            except httpx.HTTPError as exc:
                raise error_for_transport(exc, what, sent=True) from None
            if response.status_code == 401 and self.oauth and attempt == 1 and await self._refresh():
                continue
            if response.status_code not in expect:
                raise error_for_response(response, f"{what}{_reason(response)}")
            return response
        raise AuthError(f"{what}: refused after token refresh", status=401)

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
            page = (await self._send("GET", path, what=what, params=query)).json()
            items.extend(page.get("data", []))
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
            data = (await self._send("GET", "api_public/credentials", what="read credentials")).json()
            rows = data.get("data", data if isinstance(data, list) else [data])
            if not rows or not rows[0].get("company_id"):
                raise PermanentError("the credentials carry no company_id")
            self._company_id = str(rows[0]["company_id"])
        return self._company_id

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
            return str(match["id"])
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
        created = (await self._send("POST", "ats/candidates", what="create candidate", json=body)).json()
        ctx.created_here.add("candidate")
        return str(created["id"])

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
            match = (await self._send("POST", "ats/applications", what="create application", json=body)).json()
            ctx.created_here.add("application")
        kind, _, source_id = ctx.checkpoints.get("source", "none:").partition(":")
        if kind == "id" and str(match.get("source_id") or "") != source_id:
            await self._send(
                "PUT",
                f"ats/applications/{match['id']}",
                what="set application source",
                json={"id": str(match["id"]), "source_id": source_id},
            )
        return str(match["id"])

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
        return str(response.json()["id"])

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

    async def _raw_questions(self, job_id: str) -> list[dict[str, Any]]:
        """The posting's questions (ids as strings), cached a minute per posting."""

        async def load() -> list[dict[str, Any]]:
            rows = await self._list("ats/questions", [("ats_job_posting_ids[]", job_id)], what="list questions")
            return [{**q, "id": str(q["id"])} for q in rows]

        return await self._questions.get_or_load(job_id, load)

    async def job_status(self, job_id: str) -> str | None:
        try:
            posting = (
                await self._send("GET", f"ats/job_postings/{quote(job_id, safe='')}", what="read job posting")
            ).json()
        except PermanentError as exc:
            if exc.status == 404:
                return "missing"
            raise
        return "open" if posting.get("status") in ("published", "unlisted") else "closed"

    async def screening_questions(self, job_id: str) -> list[dict[str, Any]]:
        return [
            {
                "id": q["id"],
                "label": q["label"],
                "type": q["question_type"],
                "required": bool(q.get("mandatory")),
                "options": [{"id": o["text"], "label": o["text"]} for o in q.get("options") or []],
            }
            for q in await self._raw_questions(job_id)
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

    async def _posting_phases(self, posting_id: str) -> dict[str, dict[str, Any]]:
        """The posting's application phases by id, cached a minute per posting."""

        async def load() -> dict[str, dict[str, Any]]:
            rows = await self._list(
                "ats/application_phases", [("ats_job_posting_ids[]", posting_id)], what="list application phases"
            )
            return {str(p["id"]): p for p in rows}

        return await self._phases.get_or_load(posting_id, load)

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
