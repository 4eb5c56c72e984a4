"""Laura (LAURA Rekrytointi, Finland) connector.

Laura publishes no API reference: the only public facts are Kombo's passthrough base URL
(``https://{subdomain}.rekrytointi.com/api/v1.2``) and Kombo's coverage table (create candidate /
application with location, gender and screening answers; move application to stage; no
attachments). Everything about endpoints, auth and payload shapes is therefore an assumption, and
all of it lives in `LauraWire` below, so correcting it against the real API touches one class.

Plan: ``candidate`` (look up by email, else create; 409 duplicate = success) → ``application``
(look up by candidate + job, else validate the answers against the job's questions and create
the application carrying them) → ``stage`` (only when the application names a stage).

Reads (Kombo's shapes): jobs (``GET /jobs``, page numbers), the job's questions, the global stage
list; no sources (docs/connectors/laura.md, "Read models").

Settings (`LauraSettings`): ``drop_attachments`` and ``api_path``. Coverage, steps and every
assumption: docs/connectors/laura.md.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import httpx
import msgspec
from msgspec import Meta

from app.core import answers as answers_check
from app.core.catalog import (
    READ_JOBS,
    READ_SCREENING_QUESTIONS,
    READ_STAGES,
    Job,
    JobPage,
    JobQuery,
    JobStatus,
    Option,
    QuestionFormat,
    QuestionType,
    ScreeningQuestion,
    Stage,
    Visibility,
)
from app.core.model import AttachmentRef, FileAnswer, StoredApplication
from app.core.pii import scrub
from connectors.base import (
    ACTION_MOVE_APPLICATION_TO_STAGE,
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
    error_for_response,
    error_for_transport,
    record_id,
)
from connectors.http import ANY_STATUS, TtlCache, rest_passthrough

# -- Settings --------------------------------------------------------------------------------------

API_PATH = "/api/v1.2"
QUESTIONS_CACHE_S = 60.0
QUESTIONS_CACHE_MAX = 1000  # jobs; the cache is cleared when it grows past this


class LauraSettings(ConnectorSettings, frozen=True):  # frozen: inherited, restated for mypy
    """A Laura connection's own keys (docs/connectors/laura.md)."""

    # accept applications with attachments, drop the files (one warning each) instead of refusing
    drop_attachments: bool = False
    # appended to base_url unless it already has /api/
    api_path: Annotated[str, Meta(pattern=r"^/", description="a path starting with /")] = API_PATH


# -- Wire format -----------------------------------------------------------------------------------
# The one place that knows Laura's HTTP shapes (all of it assumed, see the module docstring).

TEXT, NUMBER, BOOLEAN, DATE = "TEXT", "NUMBER", "BOOLEAN", "DATE"
SINGLE_SELECT, MULTI_SELECT = "SINGLE_SELECT", "MULTI_SELECT"


class LauraWire:
    """Encode requests and decode responses for Laura's API v1.2.

    Assumptions (no public reference exists): bearer-token auth; JSON bodies; every answer wrapped
    as ``{"data": ...}``, errors as ``{"error": {"code", "message", "existing_id"?}}``; integer ids;
    ``409`` with ``existing_id`` for a duplicate candidate email or candidate+job application;
    question formats ``text|textarea|number|boolean|date|select|multiselect`` (`KOMBO_FORMATS`);
    gender as
    ``male|female|other``; location as ``address {city, zip_code, country_code}``.
    """

    GENDERS = {"MALE": "male", "FEMALE": "female", "OTHER": "other"}

    # requests

    @staticmethod
    def headers(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    @staticmethod
    def wire_id(value: str) -> int | str:
        """Laura's ids look numeric (public job URLs use ``jid=<int>``): send numbers as numbers."""
        return int(value) if value.isascii() and value.isdigit() else value

    @staticmethod
    def find_candidate(email: str) -> tuple[str, dict[str, str]]:
        return "/candidates", {"email": email}

    @classmethod
    def candidate_body(cls, application: StoredApplication) -> dict[str, Any]:
        c = application.candidate
        body: dict[str, Any] = {"first_name": c.first_name, "last_name": c.last_name, "email": c.email_address}
        if c.phone_number:
            body["phone"] = c.phone_number
        if c.gender:
            body["gender"] = cls.GENDERS[c.gender]
        if c.location:
            address = {"city": c.location.city, "zip_code": c.location.zip_code, "country_code": c.location.country}
            address = {k: v for k, v in address.items() if v}
            if address:
                body["address"] = address
        return body

    @classmethod
    def find_application(cls, candidate_id: str, job_id: str) -> tuple[str, dict[str, str]]:
        return "/applications", {"candidate_id": candidate_id, "job_id": job_id}

    @classmethod
    def answer_value(cls, kind: str, value: Any) -> Any:
        """Typed answer → wire value: option ids as Laura ids, the rest as JSON scalars."""
        if kind == SINGLE_SELECT:
            return cls.wire_id(value)
        if kind == MULTI_SELECT:
            return [cls.wire_id(v) for v in value]
        return value

    @classmethod
    def application_body(cls, candidate_id: str, job_id: str, answers: list[tuple[str, str, Any]]) -> dict[str, Any]:
        """`answers`: (question id, neutral type, coerced value) of the questions shown."""
        return {
            "candidate_id": cls.wire_id(candidate_id),
            "job_id": cls.wire_id(job_id),
            "answers": [
                {"question_id": cls.wire_id(qid), "value": cls.answer_value(kind, value)}
                for qid, kind, value in answers
            ],
        }

    @staticmethod
    def segment(value: str) -> str:
        """An id as one path segment: client-given ids must not be able to add segments or ``..``."""
        return quote(value, safe="")

    @classmethod
    def job_questions_path(cls, job_id: str) -> str:
        return f"/jobs/{cls.segment(job_id)}/questions"

    @classmethod
    def stage_path(cls, application_id: str) -> str:
        return f"/applications/{cls.segment(application_id)}/stage"

    @classmethod
    def stage_body(cls, stage_id: str) -> dict[str, Any]:
        return {"stage_id": cls.wire_id(stage_id)}

    @classmethod
    def application_path(cls, application_id: str) -> str:
        return f"/applications/{cls.segment(application_id)}"

    STAGES_PATH = "/stages"
    OUTCOMES = {"hired": "HIRED", "rejected": "DECLINED", "declined": "DECLINED", "withdrawn": "DECLINED"}

    @classmethod
    def status_of(cls, record: Mapping[str, Any], stage_names: Mapping[str, str]) -> dict[str, Any]:
        """An application's stage and outcome. assumption: `current_stage_id` and an `outcome`
        of hired / rejected / declined / withdrawn (null while in process)."""
        stage = record.get("current_stage_id")
        stage_id = None if stage is None else str(stage)
        outcome = cls.OUTCOMES.get(str(record.get("outcome") or "").lower(), "PENDING")
        return {"stage_id": stage_id, "stage_name": stage_names.get(stage_id or ""), "outcome": outcome}

    # reads (Kombo's shapes, app/core/catalog.py; docs/connectors/laura.md "Read models")

    JOBS_PATH = "/jobs"
    PER_PAGE_MAX = 100  # assumption: Laura's page size limit
    JOB_STATUSES: Mapping[str, JobStatus] = {
        "open": "OPEN",
        "closed": "CLOSED",
        "draft": "DRAFT",
        "archived": "ARCHIVED",
    }
    VISIBILITIES: Mapping[str, Visibility] = {"public": "PUBLIC", "internal": "INTERNAL"}
    # Laura format.type -> (Kombo format type, display_type)
    KOMBO_FORMATS: Mapping[str, tuple[QuestionType, Any]] = {
        "text": ("TEXT", "SINGLE_LINE"),
        "textarea": ("TEXT", "MULTI_LINE"),
        "number": ("NUMBER", "FIELD"),
        "boolean": ("BOOLEAN", None),
        "date": ("DATE", None),
        "select": ("SINGLE_SELECT", "DROPDOWN"),
        "multiselect": ("MULTI_SELECT", None),
    }

    @classmethod
    def jobs_params(cls, query: JobQuery) -> dict[str, str]:
        """Page-number pagination (``page`` from 1, ``per_page``); `status` and `updated_after`
        are filtered by Laura, `name_contains` is not (applied per page by the connector)."""
        page = query.cursor or "1"
        if not (page.isascii() and page.isdigit() and int(page) >= 1):
            raise PermanentError("not a cursor of this Laura listing", status=400)
        params = {"page": page, "per_page": str(max(1, min(query.page_size, cls.PER_PAGE_MAX)))}
        if query.status:
            params["status"] = query.status.lower()
        if query.updated_after:
            when = query.updated_after
            params["updated_after"] = (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).isoformat()
        return params

    @staticmethod
    def next_page(payload: Any, params: Mapping[str, str], rows: int) -> str | None:
        """The next page number while ``meta`` says there are more (without ``meta``: while pages
        come back full)."""
        page, per_page = int(params["page"]), int(params["per_page"])
        meta = payload.get("meta") if isinstance(payload, Mapping) else None
        total = meta.get("total") if isinstance(meta, Mapping) else None
        if isinstance(total, int):
            return str(page + 1) if page * per_page < total else None
        return str(page + 1) if rows >= per_page else None

    @classmethod
    def job(cls, row: Mapping[str, Any]) -> Job:
        jid = str(row.get("id"))
        return Job(
            id=jid,
            remote_id=jid,
            name=str(row.get("name") or ""),
            status=cls.JOB_STATUSES.get(str(row.get("status") or "").lower(), "CLOSED"),
            description=row.get("description"),
            visibility=cls.VISIBILITIES.get(str(row.get("visibility") or "").lower()),
            post_url=row.get("post_url"),
            changed_at=_datetime(row.get("changed_at")),
            remote_data=dict(row),
        )

    @classmethod
    def kombo_question(cls, row: Mapping[str, Any], kinds: Mapping[str, str]) -> ScreeningQuestion:
        """A job-specific question row (the question embedded) → Kombo's ScreeningQuestion.
        `kinds` maps question ids of the job to their Laura format type, for preconditions: a
        boolean parent's ``"true"`` becomes ``True`` (Kombo's ``[true]``), a select parent's option
        ids stay strings."""
        q = row.get("question") or {}
        fmt = q.get("format") or {}
        laura_type = str(fmt.get("type") or "")
        kind, display = cls.KOMBO_FORMATS.get(laura_type, ("UNKNOWN", None))
        options = None
        if kind in ("SINGLE_SELECT", "MULTI_SELECT"):
            options = [
                Option(id=str(o["id"]), remote_id=str(o["id"]), name=str(o.get("label", "")))
                for o in fmt.get("options") or []
            ]
        pre = row.get("precondition_question_id")
        pre_options: list[str | bool] | None = None
        if pre is not None:
            raw = [str(o) for o in row.get("precondition_options") or []]
            if kinds.get(str(pre)) == "boolean":
                pre_options = [o.lower() == "true" for o in raw]
            else:
                pre_options = list(raw)
        qid = str(row.get("question_id", q.get("id")))
        return ScreeningQuestion(
            id=qid,
            remote_id=qid,
            title=str(q.get("title") or ""),
            format=QuestionFormat(
                type=kind,
                display_type=display,
                max_length=fmt.get("max_length") if kind == "TEXT" else None,
                min=fmt.get("min") if kind == "NUMBER" else None,
                max=fmt.get("max") if kind == "NUMBER" else None,
                options=options,
            ),
            required=bool(row.get("required")),
            index=row.get("index"),
            precondition_question_id=None if pre is None else str(pre),
            precondition_options=pre_options,
        )

    @staticmethod
    def stage(row: Mapping[str, Any]) -> Stage:
        sid = str(row.get("id"))
        return Stage(id=sid, remote_id=sid, name=str(row.get("name") or ""), index=row.get("global_index"))

    # responses

    @staticmethod
    def data(response: httpx.Response) -> Any:
        """A 2xx answer's `data`. One that is no JSON envelope (a maintenance page served with
        200) is no answer: a read is safe to repeat, so it is transient, not a refusal."""
        try:
            payload = response.json()
        except ValueError:
            raise TransientError(f"Laura answered HTTP {response.status_code} with a non-JSON body") from None
        if not isinstance(payload, dict) or "data" not in payload:
            raise TransientError(f"Laura answered HTTP {response.status_code} without a data envelope")
        return payload["data"]

    @classmethod
    def created_id(cls, response: httpx.Response) -> str:
        """The new record's id. A 2xx we cannot read is an unknown outcome, not a failure: the
        record may exist, and the retry's lookup will find it."""
        try:
            record = cls.data(response)
        except TransientError as exc:
            raise UnknownOutcome(f"create answered without a readable body: {exc.detail}") from None
        return record_id(record.get("id") if isinstance(record, dict) else None, "Laura's create answer")

    @classmethod
    def first_id(cls, response: httpx.Response, matches: Callable[[Mapping[str, Any]], bool]) -> str | None:
        """The first row that really matches: a server ignoring a filter must not make us file an
        application under someone else."""
        rows = cls.data(response)
        if not isinstance(rows, list):
            return None
        return next((str(r["id"]) for r in rows if isinstance(r, Mapping) and "id" in r and matches(r)), None)

    @staticmethod
    def candidate_matches(email: str) -> Callable[[Mapping[str, Any]], bool]:
        return lambda row: str(row.get("email", "")).strip().casefold() == email.strip().casefold()

    @staticmethod
    def application_matches(candidate_id: str, job_id: str) -> Callable[[Mapping[str, Any]], bool]:
        return lambda row: (str(row.get("candidate_id")), str(row.get("job_id"))) == (candidate_id, job_id)

    @staticmethod
    def duplicate_id(response: httpx.Response) -> str | None:
        """A 409's ``error.existing_id``, if Laura names the record it already has."""
        try:
            existing = response.json().get("error", {}).get("existing_id")
        except (ValueError, AttributeError):
            return None
        return None if existing is None else str(existing)

    @staticmethod
    def neutral(q: ScreeningQuestion) -> dict[str, Any]:
        """Kombo's ScreeningQuestion → the relay's older neutral shape (`screening_questions`,
        the boards' question mapping): booleans in preconditions as ``"true"``/``"false"``."""
        fmt = q.format
        out: dict[str, Any] = {
            "id": q.id,
            "index": q.index if q.index is not None else 0,
            "label": q.title,
            "type": fmt.type,
            "required": q.required,
            "options": [{"id": o.id, "label": o.name} for o in fmt.options or []],
            "precondition_question_id": q.precondition_question_id,
            "precondition_options": [
                str(o).lower() if isinstance(o, bool) else str(o) for o in q.precondition_options or []
            ],
        }
        for key in ("max_length", "min", "max"):
            if getattr(fmt, key) is not None:
                out[key] = getattr(fmt, key)
        if fmt.display_type == "MULTI_LINE":
            out["display_type"] = "MULTI_LINE"
        return out


# -- Answer encoding -------------------------------------------------------------------------------
# Screening answers are checked by the relay's shared check (app/core/answers.py: intake against
# the catalog, and again here before the application is created); this section only encodes the
# answers it keeps into Laura's wire values.


def _answer_pairs(answers: Iterable[Any]) -> list[tuple[str, Any]]:
    """(question_id, answer) from StoredAnswer / ScreeningAnswer objects or plain dicts."""
    pairs = []
    for a in answers:
        if isinstance(a, Mapping):
            pairs.append((str(a.get("question_id")), a.get("answer")))
        else:
            pairs.append((str(a.question_id), a.answer))
    return pairs


def _is_file(value: Any) -> bool:
    return isinstance(value, FileAnswer | AttachmentRef) or (
        isinstance(value, Mapping) and ("data" in value or "data_url" in value or "name" in value)
    )


def encode_answer(question: ScreeningQuestion, value: Any) -> Any:
    """A checked answer as Laura stores it: whole numbers as integers, dates as YYYY-MM-DD (a
    date-time keeps its date), the rest as it is (option ids become Laura ids in `LauraWire`)."""
    kind = question.format.type
    if kind == NUMBER and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == DATE and isinstance(value, str):
        return dt.date.fromisoformat(value.strip()[:10]).isoformat()
    return value


def encoded_answers(
    questions: Sequence[ScreeningQuestion], answers: Sequence[Any]
) -> tuple[answers_check.AnswerCheck, list[tuple[str, str, Any]]]:
    """The shared check's result, and (question id, type, wire value) of the answers it keeps,
    in the job's question order."""
    result = answers_check.check_answers(questions, answers)
    by_id = {q.id: q for q in questions}
    kept = {answers[i].question_id: answers[i].answer for i in result.kept}
    encoded: list[tuple[str, str, Any]] = [
        (q.id, q.format.type, encode_answer(q, kept[q.id]))
        for q in sorted(by_id.values(), key=lambda q: (q.index if q.index is not None else 0, q.id))
        if q.id in kept
    ]
    return result, encoded


# -- Connector -------------------------------------------------------------------------------------


class LauraConnector(Connector[LauraSettings]):
    """Laura: candidate + application (with answers) + optional stage; no attachments (refused
    at intake, or dropped with a warning each under ``drop_attachments``)."""

    name = "laura"
    settings_type = LauraSettings

    capabilities = Capabilities(
        attachment_types=frozenset(),  # refused or dropped by check(), per the drop_attachments setting
        actions=frozenset({ACTION_MOVE_APPLICATION_TO_STAGE}),
        # Laura's stages are one global list (global_index); it has no sources
        reads=frozenset({READ_JOBS, READ_SCREENING_QUESTIONS, READ_STAGES}),
    )

    def __init__(self, connection: ConnectionSpec[LauraSettings], http: httpx.AsyncClient) -> None:
        super().__init__(connection, http)
        self._questions: TtlCache[str, list[ScreeningQuestion]] = TtlCache(
            QUESTIONS_CACHE_S, max_entries=QUESTIONS_CACHE_MAX
        )
        self._stage_names: TtlCache[str, dict[str, str]] = TtlCache(QUESTIONS_CACHE_S)

    # -- Transport ---------------------------------------------------------------------------------

    @property
    def api_root(self) -> str:
        base = self.connection.base_url.rstrip("/")
        if "/api/" in urlsplit(base).path + "/":
            return base
        return base + self.settings.api_path

    async def _call(
        self, method: str, path: str, *, what: str, expect: tuple[int, ...] = (200, 201), **kwargs: Any
    ) -> httpx.Response:
        headers = LauraWire.headers(self.connection.credentials)
        return await self.request(method, self.api_root + path, what=what, expect=expect, headers=headers, **kwargs)

    async def verify_credentials(self) -> None:
        """`GET /jobs?per_page=1`: the smallest authenticated read of Laura's API; a refusal keeps
        Laura's own message (`{"error": {"message"}}`), scrubbed of the token (docs/connections.md)."""
        headers = LauraWire.headers(self.connection.credentials)
        url = self.api_root + LauraWire.JOBS_PATH
        try:
            response = await self.http.get(
                url, params={"page": "1", "per_page": "1"}, headers=headers, timeout=self.connection.timeout_s
            )
        except httpx.HTTPError as exc:
            raise error_for_transport(exc, "check credentials", sent=False) from None
        if response.status_code != 200:
            raise error_for_response(
                response, f"check credentials{_error_message(response, self.connection.credentials)}"
            )

    async def _find(
        self, path: str, params: Mapping[str, str], matches: Callable[[Mapping[str, Any]], bool], *, what: str
    ) -> str | None:
        response = await self._call("GET", path, what=what, expect=(200,), params=params)
        return LauraWire.first_id(response, matches)

    async def _require(
        self, path: str, params: Mapping[str, str], matches: Callable[[Mapping[str, Any]], bool], kind: str
    ) -> str:
        found = await self._find(path, params, matches, what=f"find {kind}")
        if not found:  # the search may lag the write: look again later rather than give up
            raise TransientError(f"Laura reported a duplicate {kind} that its search does not show yet")
        return found

    # -- Intake check ------------------------------------------------------------------------------

    def check(self, application: StoredApplication) -> tuple[list[str], list[StepWarning]]:
        """Errors are ``"<field>: <reason>"`` (intake splits on the first colon)."""
        errors: list[str] = []
        warnings: list[StepWarning] = []
        if application.attachments:
            if self.settings.drop_attachments:
                warnings.extend(dropped_attachment_warnings(application))
            else:
                errors.append(
                    f"attachments: Laura takes no attachments ({len(application.attachments)} "
                    "given); remove them or set drop_attachments = true on the connection"
                )
        for qid, value in _answer_pairs(application.screening_question_answers):
            if _is_file(value):
                errors.append(f"question {qid}: file answers are not supported by Laura")
        c = application.candidate
        for name, present in (
            ("candidate.company", c.company),
            ("candidate.availability_date", c.availability_date),
            ("source", application.source),
            ("gdpr_consent", application.gdpr_consent),
            ("remote_fields", application.remote_fields),
        ):
            if present:
                warnings.append(StepWarning("field_unsupported", f"{name} is not written to Laura"))
        return errors, warnings

    # -- Plan --------------------------------------------------------------------------------------

    def plan(self, application: StoredApplication) -> list[Step]:
        steps = [
            Step("candidate", lambda ctx: self._candidate(application)),
            Step("application", lambda ctx: self._application(application, ctx)),
        ]
        if application.application.stage_id:
            stage_id = application.application.stage_id
            steps.append(Step("stage", lambda ctx: self._move(ctx.remote_id("application"), stage_id)))
        return steps

    # -- Steps -------------------------------------------------------------------------------------

    async def _candidate(self, application: StoredApplication) -> str:
        """Validate the answers first (nothing is written for a doomed application), then find
        the candidate by email before creating; a 409 duplicate is success with the existing id."""
        await self._valid_answers(application, fresh=True)
        path, params = LauraWire.find_candidate(application.candidate.email_address)
        matches = LauraWire.candidate_matches(application.candidate.email_address)
        existing = await self._find(path, params, matches, what="find candidate")
        if existing:
            return existing
        response = await self._call(
            "POST",
            "/candidates",
            what="create candidate",
            expect=(200, 201, 409),
            json=LauraWire.candidate_body(application),
        )
        if response.status_code != 409:
            return LauraWire.created_id(response)
        return LauraWire.duplicate_id(response) or await self._require(path, params, matches, "candidate")

    async def _application(self, application: StoredApplication, ctx: StepContext) -> str:
        """Find by candidate + job; else validate the answers (→ PermanentError) and create."""
        if application.attachments:
            if not self.settings.drop_attachments:
                raise PermanentError("Laura takes no attachments and drop_attachments is not set")
            for w in dropped_attachment_warnings(application):
                ctx.warn(w.code, w.message)
        candidate_id = ctx.remote_id("candidate")
        job_id = application.application.job_id
        path, params = LauraWire.find_application(candidate_id, job_id)
        matches = LauraWire.application_matches(candidate_id, job_id)
        existing = await self._find(path, params, matches, what="find application")
        if existing:
            return existing
        answers = await self._valid_answers(application)
        response = await self._call(
            "POST",
            "/applications",
            what="create application",
            expect=(200, 201, 409),
            json=LauraWire.application_body(candidate_id, job_id, answers),
        )
        if response.status_code != 409:
            return LauraWire.created_id(response)
        return LauraWire.duplicate_id(response) or await self._require(path, params, matches, "application")

    async def _valid_answers(
        self, application: StoredApplication, *, fresh: bool = False
    ) -> list[tuple[str, str, Any]]:
        """The answers to send, coerced, or PermanentError naming every problem (dead letter)."""
        questions = await self._job_questions(application.application.job_id, fresh=fresh)
        result, answers = encoded_answers(questions, application.screening_question_answers)
        if not result.ok:
            raise PermanentError("screening answers rejected: " + result.summary())
        return answers

    async def _move(self, application_id: str, stage_id: str) -> str:
        """PUT is idempotent: a re-run after an unknown outcome just sets the same stage again."""
        await self._call(
            "PUT",
            LauraWire.stage_path(application_id),
            what="move application to stage",
            json=LauraWire.stage_body(stage_id),
        )
        return stage_id

    # -- Actions -----------------------------------------------------------------------------------

    def action_plan(self, action: str, params: Mapping[str, Any], attachments: list[AttachmentRef]) -> list[Step]:
        if action != ACTION_MOVE_APPLICATION_TO_STAGE:
            return super().action_plan(action, params, attachments)
        application_id, stage_id = params.get("application_id"), params.get("stage_id")
        if not application_id or not stage_id:
            raise PermanentError("move_application_to_stage needs application_id and stage_id")
        return [Step("stage", lambda ctx: self._move(str(application_id), str(stage_id)))]

    # -- Reads -------------------------------------------------------------------------------------

    async def list_jobs(self, query: JobQuery) -> JobPage:
        """One page of ``GET /jobs`` (page-number pagination; the cursor is the next page number);
        `status` and `updated_after` go to Laura, `name_contains` is applied to the page read."""
        params = LauraWire.jobs_params(query)
        response = await self._call("GET", LauraWire.JOBS_PATH, what="list jobs", expect=(200,), params=params)
        rows = LauraWire.data(response)
        if not isinstance(rows, list):
            raise TransientError("Laura's job list has no rows")
        jobs = [LauraWire.job(r) for r in rows if isinstance(r, Mapping) and "id" in r]
        if query.name_contains:
            needle = query.name_contains.casefold()
            jobs = [j for j in jobs if needle in j.name.casefold()]
        return JobPage(jobs=jobs, next_cursor=LauraWire.next_page(response.json(), params, len(rows)))

    async def _job_row(self, job_id: str) -> Mapping[str, Any] | None:
        try:
            response = await self._call("GET", f"/jobs/{LauraWire.segment(job_id)}", what="get job", expect=(200,))
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        row = LauraWire.data(response)
        return row if isinstance(row, Mapping) else None

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._job_row(job_id)
        if row is None:
            return None
        questions = await self.job_questions(job_id)
        return msgspec.structs.replace(
            LauraWire.job(row), screening_questions=questions, stages=await self.list_stages()
        )

    async def job_questions(self, job_id: str) -> list[ScreeningQuestion]:
        """``GET /jobs/{id}/questions`` in Kombo's shape, ordered by index; PermanentError(404)
        for an unknown job. Always read from Laura: the catalog caches reads (in Redis, shared
        by every process), a second cache here would only make them staler. The answer refreshes
        the minute cache the older `screening_questions` path reads."""
        return await self._job_questions(job_id, fresh=True)

    async def _job_questions(self, job_id: str, *, fresh: bool = False) -> list[ScreeningQuestion]:

        async def load() -> list[ScreeningQuestion]:
            path = LauraWire.job_questions_path(job_id)
            rows = LauraWire.data(await self._call("GET", path, what="job questions", expect=(200,)))
            rows = [r for r in rows if isinstance(r, Mapping)] if isinstance(rows, list) else []
            kinds = {
                str(r.get("question_id")): str(((r.get("question") or {}).get("format") or {}).get("type"))
                for r in rows
            }
            questions = [LauraWire.kombo_question(r, kinds) for r in rows]
            return sorted(questions, key=lambda q: (q.index if q.index is not None else 0, q.id))

        return await self._questions.get_or_load(job_id, load, fresh=fresh)

    async def screening_questions(self, job_id: str, *, fresh: bool = False) -> list[dict[str, Any]]:
        """The job's questions in the neutral shape (plus ``precondition_question_id`` and
        ``precondition_options``), derived from `job_questions`, cached a minute (`fresh`
        bypasses the cache)."""
        return [LauraWire.neutral(q) for q in await self._job_questions(job_id, fresh=fresh)]

    async def job_status(self, job_id: str) -> str | None:
        row = await self._job_row(job_id)
        if row is None:
            return "missing"
        return "open" if LauraWire.job(row).status == "OPEN" else "closed"

    async def list_stages(self, job_id: str | None = None) -> list[Stage]:
        """Laura's one global stage list (``global_index``); `job_id` does not scope it."""
        rows = LauraWire.data(await self._call("GET", LauraWire.STAGES_PATH, what="list stages", expect=(200,)))
        stages = [LauraWire.stage(r) for r in rows or [] if isinstance(r, Mapping) and "id" in r]
        return sorted(stages, key=lambda s: (s.index if s.index is not None else 0, s.id))

    async def application_status(self, application_id: str, job_id: str | None = None) -> dict[str, Any] | None:
        """For status sync: the application's stage (name from the cached stage list) and outcome."""
        response = await self._call(
            "GET", LauraWire.application_path(application_id), what="get application", expect=(200,)
        )
        record = LauraWire.data(response)
        if not isinstance(record, Mapping):
            raise TransientError("Laura's application answer has no record")

        async def load_names() -> dict[str, str]:
            rows = LauraWire.data(await self._call("GET", LauraWire.STAGES_PATH, what="list stages", expect=(200,)))
            return {str(r["id"]): str(r.get("name", "")) for r in rows if isinstance(r, Mapping) and "id" in r}

        return LauraWire.status_of(record, await self._stage_names.get_or_load("all", load_names))

    async def passthrough(
        self, method: str, path: str, query: Mapping[str, str] | None, body: Any
    ) -> PassthroughResult:
        """Forward a raw call under the API root; the ATS's status and body come back as they are."""
        headers = LauraWire.headers(self.connection.credentials)
        send = functools.partial(self.request, what="passthrough", expect=ANY_STATUS, headers=headers)
        return await rest_passthrough(send, self.api_root, method, path, query, body)


# -- Helpers ---------------------------------------------------------------------------------------


def _datetime(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def dropped_attachment_warnings(application: StoredApplication) -> list[StepWarning]:
    """One warning per file (no file name: names can carry the candidate's name)."""
    return [
        StepWarning("attachment_dropped", f"attachment {i + 1} ({ref.type}) dropped: Laura takes no attachments")
        for i, ref in enumerate(application.attachments)
    ]


def _error_message(response: httpx.Response, token: str) -> str:
    """Laura's `{"error": {"message"}}` as " (message)", scrubbed of the token; "" without one."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    message = error.get("message") if isinstance(error, Mapping) else None
    return f" ({scrub(str(message), [token], limit=200)})" if message else ""
