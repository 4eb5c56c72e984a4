"""Laura emulator: the API v1.2 subset the connector uses, designed from Kombo's coverage table.

Laura publishes no API reference, so the shapes here are the connector's assumptions (see
`connectors.laura.LauraWire`), not a copy of the real API. What it holds to, like a real ATS:
bearer-token auth (401), a ``{"data": ...}`` envelope and ``{"error": {...}}`` errors, integer
ids, one candidate per email and one application per candidate + job (409 with
``existing_id``), server-side validation of answers against the job's questions (required,
type, options, preconditions → 422), closed jobs refuse applications (422), unknown ids 404.
No attachment endpoint: Laura takes no files.

Job listing (assumed, like the rest): ``GET /jobs?page=&per_page=`` (page from 1, per_page ≤ 100,
``meta {page, per_page, total}``), filters ``status`` (open|closed|draft|archived) and
``updated_after`` (ISO 8601; jobs whose ``changed_at`` is later), both refused with 422 when
malformed; no name search. Seed: jobs 101-103 plus 62 generated ones (201-262) to page through.

Sandbox-only: ``POST /_sandbox/laura/jobs/{id}/questions`` adds a question to a job at runtime
(``{"title", "format", "required"?, "index"?, "precondition_question_id"?,
"precondition_options"?}``), so a test can see a cache expire.
"""

from __future__ import annotations

import copy
import datetime as dt
import hmac
import re
import threading
from typing import Any

from litestar import Litestar, Request, Response, Router, get, post, put

from connectors.sandbox.common import sandbox_app

API = "/api/v1.2"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
GENDERS = {"male", "female", "other"}
ADDRESS_FIELDS = ("street", "city", "zip_code", "country_code")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _err(status: int, code: str, message: str, **extra: Any) -> Response[Any]:
    return Response({"error": {"code": code, "message": message, **extra}}, status_code=status)


def _ok(data: Any, status: int = 200, **meta: Any) -> Response[Any]:
    body: dict[str, Any] = {"data": data}
    if meta:
        body["meta"] = meta
    return Response(body, status_code=status)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


# ---------------------------------------------------------------------------------------------
# Seed


STAGES = [
    {"id": 1, "name": "Uusi hakemus / New", "global_index": 0},
    {"id": 2, "name": "Esikarsinta / Screening", "global_index": 1},
    {"id": 3, "name": "Haastattelu / Interview", "global_index": 2},
    {"id": 4, "name": "Tarjous / Offer", "global_index": 3},
    {"id": 5, "name": "Palkattu / Hired", "global_index": 4},
    {"id": 6, "name": "Hylätty / Rejected", "global_index": 5},
]


def _q(qid: int, title: str, kind: str, **fmt: Any) -> dict[str, Any]:
    if "options" in fmt:
        fmt["options"] = [{"id": oid, "label": label} for oid, label in fmt["options"]]
    return {"id": qid, "title": title, "format": {"type": kind, **fmt}}


QUESTIONS = [
    _q(501, "Onko sinulla ajokortti? / Do you hold a driving licence?", "boolean"),
    _q(502, "Ajokorttiluokat / Licence classes", "multiselect", options=[(1, "B"), (2, "C"), (3, "D")]),
    _q(
        503,
        "Toivottu toimipaikka / Preferred location",
        "select",
        options=[(11, "Helsinki"), (12, "Tampere"), (13, "Etätyö / Remote")],
    ),
    _q(504, "Miksi Tampere? / Why Tampere?", "text", max_length=500),
    _q(505, "Työkokemus vuosina / Years of experience", "number", min=0, max=60),
    _q(506, "Aloituspäivä / Earliest start date", "date"),
    _q(507, "Vapaa sana / Anything else?", "textarea", max_length=2000),
]


def _jq(
    jq_id: int,
    job_id: int,
    question_id: int,
    index: int,
    required: bool,
    pre: int | None = None,
    pre_options: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "id": jq_id,
        "job_id": job_id,
        "question_id": question_id,
        "index": index,
        "required": required,
        "precondition_question_id": pre,
        "precondition_options": pre_options or [],
        "changed_at": "2026-11-01T08:00:00+00:00",
        "remote_deleted_at": None,
    }


JOBS: list[dict[str, Any]] = [
    {
        "id": 101,
        "name": "Ohjelmistokehittäjä / Software Developer",
        "status": "open",
        "visibility": "public",
        "description": "Backend work in Python.",
        "opened_at": "2026-10-01",
        "closed_at": None,
        "post_url": "https://sandbox.rekrytointi.com/paikat/?o=A_RJ&jgid=1&jid=101",
        "changed_at": "2026-10-01T09:00:00+00:00",
    },
    {
        "id": 102,
        "name": "Sairaanhoitaja / Nurse",
        "status": "open",
        "visibility": "public",
        "description": "Shift work.",
        "opened_at": "2026-10-15",
        "closed_at": None,
        "post_url": "https://sandbox.rekrytointi.com/paikat/?o=A_RJ&jgid=1&jid=102",
        "changed_at": "2026-10-15T09:00:00+00:00",
    },
    {
        "id": 103,
        "name": "Kesätyöntekijä / Summer worker",
        "status": "closed",
        "visibility": "public",
        "description": "Closed posting.",
        "opened_at": "2026-03-01",
        "closed_at": "2026-05-31",
        "post_url": "https://sandbox.rekrytointi.com/paikat/?o=A_RJ&jgid=1&jid=103",
        "changed_at": "2026-05-31T17:00:00+00:00",
    },
]

JOB_STATUSES = ("open", "closed", "draft", "archived")
PER_PAGE_MAX = 100


def _generated_jobs() -> list[dict[str, Any]]:
    """62 more jobs to page through: statuses and visibilities mixed, changed one day apart."""
    kinds = ["Sairaanhoitaja / Nurse", "Ohjelmistokehittäjä / Developer", "Opettaja / Teacher"]
    cycle = ["open", "open", "closed", "draft", "archived"]
    start = dt.datetime(2026, 9, 1, 8, 0, tzinfo=dt.UTC)
    jobs = []
    for n in range(62):
        jid = 201 + n
        status = cycle[n % len(cycle)]
        jobs.append(
            {
                "id": jid,
                "name": f"{kinds[n % len(kinds)]} {n + 1}",
                "status": status,
                "visibility": "internal" if n % 4 == 3 else "public",
                "description": f"<p>Position {n + 1}.</p>",
                "opened_at": (start + dt.timedelta(days=n)).date().isoformat(),
                "closed_at": None
                if status in ("open", "draft")
                else (start + dt.timedelta(days=n + 30)).date().isoformat(),
                "post_url": f"https://sandbox.rekrytointi.com/paikat/?o=A_RJ&jgid=1&jid={jid}",
                "changed_at": (start + dt.timedelta(days=n)).isoformat(),
            }
        )
    return jobs


JOB_QUESTIONS = [
    # job 101: every format; 502 shown when 501 is "true"; 504 shown when 503 is Tampere (12)
    _jq(9001, 101, 501, 0, True),
    _jq(9002, 101, 502, 1, True, 501, ["true"]),
    _jq(9003, 101, 503, 2, True),
    _jq(9004, 101, 504, 3, True, 503, ["12"]),
    _jq(9005, 101, 505, 4, True),
    _jq(9006, 101, 506, 5, False),
    _jq(9007, 101, 507, 6, False),
    # job 102: optional questions only
    _jq(9011, 102, 505, 0, False),
    _jq(9012, 102, 507, 1, False),
    # job 201: a chain: 503 shown when 501 is "true", 504 shown when 503 is Tampere (12)
    _jq(9021, 201, 501, 0, True),
    _jq(9022, 201, 503, 1, True, 501, ["true"]),
    _jq(9023, 201, 504, 2, True, 503, ["12"]),
    _jq(9024, 201, 505, 3, False),
]


# ---------------------------------------------------------------------------------------------
# State


class LauraState:
    """Everything the emulated tenant holds; `reset()` restores the seed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.stages = copy.deepcopy(STAGES)
        self.questions = {q["id"]: copy.deepcopy(q) for q in QUESTIONS}
        self.jobs: dict[int, dict[str, Any]] = {j["id"]: copy.deepcopy(j) for j in JOBS + _generated_jobs()}
        self.job_questions = copy.deepcopy(JOB_QUESTIONS)
        self.candidates: dict[int, dict[str, Any]] = {}
        self.applications: dict[int, dict[str, Any]] = {}
        self.stage_moves: list[dict[str, Any]] = []
        self.next_id = 10_001

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def questions_of(self, job_id: int) -> list[dict[str, Any]]:
        rows = [dict(r, question=self.questions[r["question_id"]]) for r in self.job_questions if r["job_id"] == job_id]
        return sorted(rows, key=lambda r: r["index"])

    def records(self) -> dict[str, Any]:
        return copy.deepcopy(
            {
                "stages": self.stages,
                "questions": list(self.questions.values()),
                "jobs": [dict(j, questions=self.questions_of(j["id"])) for j in self.jobs.values()],
                "candidates": list(self.candidates.values()),
                "applications": list(self.applications.values()),
                "stage_moves": self.stage_moves,
                "files": [],
            }
        )


# ---------------------------------------------------------------------------------------------
# Validation (server side, independent of the connector's own validator)


def _candidate_errors(data: dict[str, Any]) -> list[str]:
    errors = [
        f"{k} is required"
        for k in ("first_name", "last_name", "email")
        if not isinstance(data.get(k), str) or not data[k].strip()
    ]
    if isinstance(data.get("email"), str) and data["email"] and not EMAIL.match(data["email"]):
        errors.append("email is not a valid address")
    if "gender" in data and (not isinstance(data["gender"], str) or data["gender"] not in GENDERS):
        errors.append("gender must be one of male, female, other")
    if "phone" in data and not isinstance(data["phone"], str):  # the types the connector's wire format assumes
        errors.append("phone must be a string")
    address = data.get("address")
    if address is not None:
        if not isinstance(address, dict):
            errors.append("address must be an object")
        else:
            errors += [
                f"address.{k} must be a string"
                for k in ADDRESS_FIELDS
                if k in address and not isinstance(address[k], str)
            ]
            cc = address.get("country_code")
            if cc is not None and not (isinstance(cc, str) and re.fullmatch(r"[A-Z]{2}", cc)):
                errors.append("address.country_code must be ISO 3166-1 alpha-2")
            if len(str(address.get("zip_code") or "")) > 10:
                errors.append("address.zip_code is too long")
    return errors


def _value_error(fmt: dict[str, Any], value: Any) -> str | None:
    kind = fmt["type"]
    options = {o["id"] for o in fmt.get("options", [])}
    if kind in ("text", "textarea"):
        if not isinstance(value, str):
            return "must be a string"
        if fmt.get("max_length") and len(value) > fmt["max_length"]:
            return "is too long"
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if value < fmt.get("min", float("-inf")) or value > fmt.get("max", float("inf")):
            return "is out of range"
    elif kind == "boolean":
        if not isinstance(value, bool):
            return "must be a boolean"
    elif kind == "date":
        try:
            dt.date.fromisoformat(value)
        except (TypeError, ValueError):
            return "must be YYYY-MM-DD"
    elif kind == "select":
        if _int(value) not in options:
            return "must be one option id"
    elif kind == "multiselect":
        if not isinstance(value, list) or not value or any(_int(v) not in options for v in value):
            return "must be a non-empty list of option ids"
    return None


def _shown(row: dict[str, Any], answers: dict[int, Any], rows: dict[int, dict[str, Any]]) -> bool:
    pre = row["precondition_question_id"]
    if pre is None:
        return True
    if pre not in answers or (pre in rows and not _shown(rows[pre], answers, rows)):
        return False
    given = answers[pre]
    tokens = {
        str(v).lower() if isinstance(v, bool) else str(v) for v in (given if isinstance(given, list) else [given])
    }
    return not row["precondition_options"] or bool(tokens & set(row["precondition_options"]))


def _answer_errors(state: LauraState, job_id: int, raw: Any) -> tuple[list[dict[str, Any]], list[str]]:
    if not isinstance(raw, list):
        return [], ["answers must be a list"]
    rows = {r["question_id"]: r for r in state.questions_of(job_id)}
    answers: dict[int, Any] = {}
    errors: list[str] = []
    for item in raw:
        qid = _int(item.get("question_id")) if isinstance(item, dict) else None
        if qid is None or qid not in rows:
            errors.append("answer to a question this job does not have")
        elif qid in answers:
            errors.append(f"question {qid} answered twice")
        else:
            answers[qid] = item.get("value")
    for qid, row in rows.items():
        shown = _shown(row, answers, rows)
        if qid in answers and not shown:
            errors.append(f"question {qid} is not shown (precondition not met) but was answered")
        elif qid in answers:
            problem = _value_error(row["question"]["format"], answers[qid])
            if problem:
                errors.append(f"question {qid} {problem}")
        elif shown and row["required"]:
            errors.append(f"question {qid} is required")
    stored = [{"question_id": q, "value": v} for q, v in answers.items()]
    return stored, errors


# ---------------------------------------------------------------------------------------------
# App


def create_app(api_key: str = "sandbox", **options: Any) -> Litestar:
    """The Laura emulator; `api_key` is the bearer token it accepts."""
    state = LauraState()

    def check_auth(request: Request[Any, Any, Any]) -> Response[Any] | None:
        presented = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(presented, f"Bearer {api_key}".encode()):
            return _err(401, "UNAUTHORIZED", "missing or invalid API token")
        return None

    @get("/jobs", sync_to_thread=False)
    def list_jobs(
        page: int = 1, per_page: int = 50, status: str | None = None, updated_after: str | None = None
    ) -> Response[Any]:
        if page < 1 or not 1 <= per_page <= PER_PAGE_MAX:
            return _err(422, "VALIDATION_ERROR", f"page must be >= 1 and per_page 1..{PER_PAGE_MAX}")
        if status is not None and status not in JOB_STATUSES:
            return _err(422, "VALIDATION_ERROR", "status must be one of " + ", ".join(JOB_STATUSES))
        after = None
        if updated_after is not None:
            try:
                after = dt.datetime.fromisoformat(updated_after)
            except ValueError:
                return _err(422, "VALIDATION_ERROR", "updated_after must be an ISO 8601 date-time")
            if after.tzinfo is None:
                after = after.replace(tzinfo=dt.UTC)
        jobs = [
            j
            for j in sorted(state.jobs.values(), key=lambda j: j["id"])
            if (status is None or j["status"] == status)
            and (after is None or dt.datetime.fromisoformat(j["changed_at"]) > after)
        ]
        window = jobs[(page - 1) * per_page : page * per_page]
        return _ok(copy.deepcopy(window), page=page, per_page=per_page, total=len(jobs))

    @get("/jobs/{job_id:int}", sync_to_thread=False)
    def get_job(job_id: int) -> Response[Any]:
        job = state.jobs.get(job_id)
        return _ok(job) if job else _err(404, "NOT_FOUND", "job not found")

    @get("/jobs/{job_id:int}/questions", sync_to_thread=False)
    def job_questions(job_id: int) -> Response[Any]:
        if job_id not in state.jobs:
            return _err(404, "NOT_FOUND", "job not found")
        return _ok(state.questions_of(job_id))

    @get("/questions", sync_to_thread=False)
    def list_questions() -> Response[Any]:
        return _ok(list(state.questions.values()))

    @get("/stages", sync_to_thread=False)
    def list_stages() -> Response[Any]:
        return _ok(state.stages)

    @get("/candidates", sync_to_thread=False)
    def list_candidates(email: str | None = None) -> Response[Any]:
        rows = [c for c in state.candidates.values() if email is None or c["email"].lower() == email.strip().lower()]
        return _ok(rows, total=len(rows))

    @get("/candidates/{candidate_id:int}", sync_to_thread=False)
    def get_candidate(candidate_id: int) -> Response[Any]:
        c = state.candidates.get(candidate_id)
        return _ok(c) if c else _err(404, "NOT_FOUND", "candidate not found")

    @post("/candidates", sync_to_thread=False)
    def create_candidate(data: dict[str, Any]) -> Response[Any]:
        errors = _candidate_errors(data)
        if errors:
            return _err(422, "VALIDATION_ERROR", "; ".join(errors))
        with state.lock:
            for c in state.candidates.values():
                if c["email"].lower() == data["email"].strip().lower():
                    return _err(409, "DUPLICATE_CANDIDATE", "a candidate with this email exists", existing_id=c["id"])
            cid = state.new_id()
            keep = ("first_name", "last_name", "email", "phone", "gender", "address")
            record = {"id": cid, **{k: data[k] for k in keep if k in data}, "created_at": _now(), "changed_at": _now()}
            state.candidates[cid] = record
        return _ok(record, 201)

    @get("/applications", sync_to_thread=False)
    def list_applications(candidate_id: int | None = None, job_id: int | None = None) -> Response[Any]:
        rows = [
            a
            for a in state.applications.values()
            if (candidate_id is None or a["candidate_id"] == candidate_id) and (job_id is None or a["job_id"] == job_id)
        ]
        return _ok(rows, total=len(rows))

    @get("/applications/{application_id:int}", sync_to_thread=False)
    def get_application(application_id: int) -> Response[Any]:
        a = state.applications.get(application_id)
        return _ok(a) if a else _err(404, "NOT_FOUND", "application not found")

    @post("/applications", sync_to_thread=False)
    def create_application(data: dict[str, Any]) -> Response[Any]:
        job_id, candidate_id = _int(data.get("job_id")), _int(data.get("candidate_id"))
        job = state.jobs.get(job_id) if job_id is not None else None
        if job is None:
            return _err(404, "NOT_FOUND", "job not found")
        if job["status"] != "open":
            return _err(422, "JOB_CLOSED", "the job no longer accepts applications")
        if candidate_id not in state.candidates:
            return _err(422, "VALIDATION_ERROR", "candidate_id does not name a candidate")
        answers, errors = _answer_errors(state, job["id"], data.get("answers", []))
        if errors:
            return _err(422, "VALIDATION_ERROR", "; ".join(errors))
        with state.lock:
            for a in state.applications.values():
                if a["candidate_id"] == candidate_id and a["job_id"] == job["id"]:
                    return _err(
                        409, "DUPLICATE_APPLICATION", "the candidate already applied to this job", existing_id=a["id"]
                    )
            aid = state.new_id()
            record = {
                "id": aid,
                "candidate_id": candidate_id,
                "job_id": job["id"],
                "current_stage_id": state.stages[0]["id"],
                "outcome": None,
                "screening_question_answers": answers,
                "created_at": _now(),
                "changed_at": _now(),
            }
            state.applications[aid] = record
        return _ok(record, 201)

    @put("/applications/{application_id:int}/stage", sync_to_thread=False)
    def move_stage(application_id: int, data: dict[str, Any]) -> Response[Any]:
        application = state.applications.get(application_id)
        if application is None:
            return _err(404, "NOT_FOUND", "application not found")
        stage_id = _int(data.get("stage_id"))
        if stage_id not in {s["id"] for s in state.stages}:
            return _err(422, "VALIDATION_ERROR", "stage_id does not name a stage")
        with state.lock:
            if application["current_stage_id"] != stage_id:
                state.stage_moves.append(
                    {
                        "application_id": application_id,
                        "to": stage_id,
                        "from": application["current_stage_id"],
                        "at": _now(),
                    }
                )
            application["current_stage_id"] = stage_id
            application["changed_at"] = _now()
        return _ok(application)

    @post("/_sandbox/laura/jobs/{job_id:int}/questions", sync_to_thread=False)
    def add_question(job_id: int, data: dict[str, Any]) -> Response[Any]:
        """Sandbox only: a recruiter adds a question to a job (the job's changed_at moves too)."""
        job = state.jobs.get(job_id)
        fmt = data.get("format")
        if job is None:
            return _err(404, "NOT_FOUND", "job not found")
        if not isinstance(data.get("title"), str) or not isinstance(fmt, dict) or "type" not in fmt:
            return _err(422, "VALIDATION_ERROR", "title and format {type} are required")
        with state.lock:
            qid = state.new_id()
            state.questions[qid] = {"id": qid, "title": data["title"], "format": fmt}
            existing = [r for r in state.job_questions if r["job_id"] == job_id]
            row = _jq(
                state.new_id(),
                job_id,
                qid,
                int(data.get("index", len(existing))),
                bool(data.get("required", False)),
                data.get("precondition_question_id"),
                data.get("precondition_options"),
            )
            row["changed_at"] = _now()
            state.job_questions.append(row)
            job["changed_at"] = _now()
        return _ok(dict(row, question=state.questions[qid]), 201)

    api = Router(
        path=API,
        before_request=check_auth,
        route_handlers=[
            list_jobs,
            get_job,
            job_questions,
            list_questions,
            list_stages,
            list_candidates,
            get_candidate,
            create_candidate,
            list_applications,
            get_application,
            create_application,
            move_stage,
        ],
    )
    return sandbox_app(name="laura", routes=[api, add_question], records=state.records, reset=state.reset)
