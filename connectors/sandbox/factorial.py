"""An emulator of the subset of Factorial's ATS API (dated version 2026-07-01) the connector uses.

Faithful to Factorial's OpenAPI document (docs/specs/factorial-ats-2026-07-01.yaml): paths under
``/api/{version}/resources/``, ``x-api-key`` or OAuth bearer auth, list envelope ``{data, meta}``
with cursor (``after_id``) or offset (``page``) pagination capped at 100, single records at top
level, string ids, 201 on create. Tests validate its answers against that document.

Where Factorial's behaviour is not public, the emulator picks the plausible one and says so:
* candidates are NOT de-duplicated by email (nothing documents it): de-duplication is the client's job;
* a second application of one candidate to one posting is refused with 422 (assumption);
* validation errors are 422 ``{"errors": {"errors": [...]}}``, missing records 404
  ``{"errors": ["..."]}``, auth failures 401 ``{"message": ...}`` (shapes seen by third parties);
* a file above 10 MB is refused with 413 (assumption: no limit is documented);
* an application to a posting that is not published or unlisted is refused with 422.
Reads: 63 seeded postings of every status (a bad ``status`` filter is refused with 422), questions,
phases, hiring stages and candidate sources, each list and record; ``POST
/_sandbox/factorial/questions`` adds a question at runtime (docs/connectors/factorial.md).
Write bodies are as strict as the document types them (`WRITE_BODIES`): a wrong type, a null or a
value outside an enum is a 422 and nothing is stored; a filter the document lists on the lists of
written resources is implemented or answered 400, never silently ignored.
The legacy v1 ``PUT /api/v1/ats/applications/{id}`` with a multipart ``cv`` part is emulated for
the connector's ``legacy_cv_part`` mode. OAuth (authorize, token, rotation, expiry) is
connectors/sandbox/factorial_oauth.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from litestar import Request, Response, get, post, put
from litestar.datastructures import UploadFile
from litestar.exceptions import HTTPException

from connectors.sandbox.common import sandbox_app
from connectors.sandbox.factorial_oauth import OAuthApp, OAuthState
from connectors.sandbox.factorial_oauth import routes as oauth_routes

VERSION = "2026-07-01"
MAX_FILE_BYTES = 10_000_000
COMPANY_ID = "100001"
QUESTION_TYPES = ("text", "long_text", "single_choice", "multiple_choice", "file")
ANSWER_TYPES = ("text", "long_text", "single_choice", "multiple_choice")


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FactorialError(HTTPException):
    """An error with Factorial's body shape."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status_code=status, detail="factorial error")
        self.body = body


def _validation(*messages: str) -> FactorialError:
    return FactorialError(422, {"errors": {"errors": list(messages)}})


def _not_found(what: str) -> FactorialError:
    return FactorialError(404, {"errors": [f"{what} not found"]})


HIRING_STAGES = [
    ("new", "New"),
    ("screening", "Screening"),
    ("interview", "Interview"),
    ("assessment", "Assessment"),
    ("offer", "Offer"),
    ("hired", "Hired"),
]
POSTING_STATUSES = ("draft", "published", "unlisted", "archived", "cancelled", "deleted")
ROLES = ("Data Analyst", "Frontend Engineer", "Sales Representative", "Nurse", "Warehouse Operator", "Designer")
CITIES = ("Barcelona", "Madrid", "Valencia", "Lisbon", "Paris", "Berlin")
CONTRACTS = ("indefinite", "temporary", "intern", "freelance", "indefinite", "indefinite")


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _generated_postings() -> list[tuple[str, str, str]]:
    """60 more postings (ids 2101-2160) so a listing pages: most published, some unlisted, draft,
    archived, cancelled and deleted."""
    statuses = ("published", "published", "published", "unlisted", "draft", "archived", "cancelled", "deleted")
    return [
        (
            str(2101 + i),
            f"{ROLES[i % len(ROLES)]} {CITIES[(i // len(ROLES)) % len(CITIES)]}",
            statuses[i % len(statuses)],
        )
        for i in range(60)
    ]


def _posting_extra(number: int, status: str, created: dt.datetime) -> dict[str, Any]:
    """The optional fields of a seeded posting, varied by its rank."""
    extra: dict[str, Any] = {
        "description": f"<p>Job posting #{number + 1}</p>",
        "contract_type": CONTRACTS[number % len(CONTRACTS)],
        "schedule_type": "part_time" if number % 5 == 4 else "full_time",
        "location_id": str(10 + number % len(CITIES)),
        "team_id": str(20 + number % 3),
    }
    if status in ("published", "unlisted"):
        extra["published_at"] = _stamp(created + dt.timedelta(hours=2))
    else:
        extra["url"] = None  # only published postings have a public URL
    return extra


def _generated_questions() -> list[tuple[str, str, str, str, bool, list[dict[str, Any]]]]:
    """A question on every fifth generated posting, types in turn."""
    out: list[tuple[str, str, str, str, bool, list[dict[str, Any]]]] = []
    for i in range(0, 60, 5):
        qtype = QUESTION_TYPES[(i // 5) % len(QUESTION_TYPES)]
        options = (
            [{"text": "Yes", "disqualifies": False}, {"text": "No", "disqualifies": False}]
            if qtype in ("single_choice", "multiple_choice")
            else []
        )
        out.append((str(3101 + i), str(2101 + i), f"Question {i // 5 + 1}", qtype, i % 10 == 0, options))
    return out


# -- Write bodies, typed as Factorial's OpenAPI document types them ------------------------------
# Every property of the request body of each write endpoint the connector uses, with its type or
# its enum. A body with a wrong type (null included: nothing is nullable) or value is a 422 before
# anything is stored, so a record never holds what its response schema cannot; properties the
# document does not list are ignored, as Rails does. tests/emulators/test_factorial_emulator.py
# derives malformed bodies from the document itself and checks each is refused here.
AUTHOR_TYPES = ("company", "access", "user")
SENT_BY_TYPES = ("candidate", "user")
GENDERS = ("female", "male", "unanswered", "other")  # the response's enum: the request's string must be one
WRITE_BODIES: dict[str, dict[str, type | tuple[str, ...]]] = {
    "POST ats/candidates": {
        "first_name": str,
        "last_name": str,
        "email": str,
        "company_id": str,
        "talent_pool": bool,
        "consent_given_at": str,
        "source": str,
        "medium": str,
        "phone_number": str,
        "personal_url": str,
        "gender": GENDERS,
    },
    "POST ats/applications": {
        "author_id": str,
        "author_type": AUTHOR_TYPES,
        "phone": str,
        "ats_candidate_id": str,
        "ats_job_posting_id": str,
        "ats_application_phase_id": str,
        "consent_to_talent_pool": bool,
        "cover_letter": str,
        "source": str,
        "medium": str,
        "answers": list,
    },
    "PUT ats/applications/{id}": {
        "author_id": str,
        "author_type": AUTHOR_TYPES,
        "id": str,
        "qualified": bool,
        "ats_application_phase_id": str,
        "disqualified_reason": str,
        "phone": str,
        "ats_rejection_reason_id": str,
        "source": str,
        "source_id": str,
    },
    "POST ats/applications/move_to_phase": {"id": str, "ats_application_phase_id": str},
    "POST ats/answers": {
        "ats_question_id": str,
        "ats_application_id": str,
        "value": str,
        "original_question_label": str,
        "original_question_type": ANSWER_TYPES,
    },
}
_TYPE_NAMES = {str: "a string", bool: "a boolean", list: "an array"}


def check_body(operation: str, body: dict[str, Any]) -> None:
    """422 naming every property of `body` whose type or value the document does not allow."""
    errors = []
    for name, expected in WRITE_BODIES[operation].items():
        if name not in body:
            continue
        value = body[name]
        if isinstance(expected, tuple):
            if not isinstance(value, str) or value not in expected:
                errors.append(f"{name} is not included in the list")
        elif type(value) is not expected:  # bool is an int, never a string; an int is never a bool
            errors.append(f"{name} must be {_TYPE_NAMES[expected]}")
    if errors:
        raise _validation(*errors)


def _unsupported_filters(request: Request[Any, Any, Any], *names: str) -> None:
    """A filter the document lists that the emulator does not implement is a 400, never ignored
    (an ignored filter answers records the caller did not ask for)."""
    present = [name for name in names if name in request.query_params]
    if present:
        raise FactorialError(400, {"errors": [f"the sandbox does not implement the filter {n}" for n in present]})


def _bool_filter(request: Request[Any, Any, Any], items: list[dict[str, Any]], param: str) -> list[dict[str, Any]]:
    """A boolean query filter (``qualified=true``); any other value is a 400."""
    value = request.query_params.get(param)
    if value is None:
        return items
    if value not in ("true", "false"):
        raise FactorialError(400, {"errors": [f"{param} must be true or false"]})
    return [r for r in items if bool(r.get(param)) is (value == "true")]


@dataclass
class FactorialState:
    api_key: str
    ids: itertools.count = field(default_factory=lambda: itertools.count(7_000_000_000_000_000_001))
    job_postings: dict[str, dict[str, Any]] = field(default_factory=dict)
    questions: dict[str, dict[str, Any]] = field(default_factory=dict)
    phases: dict[str, dict[str, Any]] = field(default_factory=dict)
    hiring_stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)
    applications: dict[str, dict[str, Any]] = field(default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    oauth: OAuthState = field(default_factory=OAuthState)  # the authorization server (factorial_oauth.py)
    requests: int = 0

    def new_id(self) -> str:
        # Large values on purpose: since 2026-07-01 ids are strings and may exceed 2**53.
        return str(next(self.ids))

    def seed(self) -> None:
        for name in (
            "job_postings",
            "questions",
            "phases",
            "hiring_stages",
            "sources",
            "candidates",
            "applications",
            "answers",
            "messages",
            "files",
        ):
            getattr(self, name).clear()
        now = _now()
        postings = [
            ("2001", "Backend Engineer", "published"),
            ("2002", "Account Executive", "published"),
            ("2003", "Office Manager", "archived"),
            *_generated_postings(),
        ]
        for hs_pos, (hs_name, hs_label) in enumerate(HIRING_STAGES):
            self.hiring_stages[str(hs_pos + 1)] = {
                "id": str(hs_pos + 1),
                "name": hs_name,
                "label": hs_label,
                "company_id": COMPANY_ID,
                "position": hs_pos,
            }
        for number, (pid, title, status) in enumerate(postings):
            created = dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC) + dt.timedelta(days=number)
            extra = _posting_extra(number, status, created)
            self.job_postings[pid] = {
                "id": pid,
                "company_id": COMPANY_ID,
                "ats_company_id": "1",
                "title": title,
                "remote": False,
                "status": status,
                "cv_requirement": "mandatory",
                "cover_letter_requirement": "optional",
                "phone_requirement": "optional",
                "photo_requirement": "do_not_ask",
                "personal_url_requirement": "do_not_ask",
                "salary_period": "annual",
                "created_at": _stamp(created),
                "workplace_type": "hybrid",
                "schedule_type": "full_time",
                "url": f"https://example.factorialhr.com/job_posting/{pid}",
                **extra,
            }
            for pos, (phase_name, phase_type) in enumerate(
                [
                    ("New", "initial"),
                    ("Screening", "screening"),
                    ("Interview", "interview"),
                    ("Offer", "offer"),
                    ("Hired", "hired"),
                ]
            ):
                phase_id = f"{pid}{pos + 1:02d}"
                self.phases[phase_id] = {
                    "id": phase_id,
                    "ats_job_posting_id": pid,
                    "name": phase_name,
                    "position": pos,
                    "editable": phase_type not in ("initial", "hired"),
                    "phase_type": phase_type,
                    "applications_count": 0,
                    "active_applications_count": 0,
                    "ats_hiring_stage_id": str(pos + 1),
                }
        seeded_questions = [
            ("3001", "2001", "Why do you want to join us?", "long_text", True, []),
            ("3002", "2001", "Your expected salary", "text", False, []),
            (
                "3003",
                "2001",
                "Do you hold an EU work permit?",
                "single_choice",
                True,
                [{"text": "Yes", "disqualifies": False}, {"text": "No", "disqualifies": True}],
            ),
            (
                "3004",
                "2001",
                "Which languages do you write?",
                "multiple_choice",
                False,
                [
                    {"text": "Python", "disqualifies": False},
                    {"text": "Go", "disqualifies": False},
                    {"text": "Rust", "disqualifies": False},
                ],
            ),
            ("3005", "2001", "Portfolio file", "file", False, []),
            ("3006", "2002", "Years of sales experience", "text", True, []),
            ("3007", "2002", "Cover note", "long_text", False, []),
            (
                "3008",
                "2002",
                "Preferred territory",
                "single_choice",
                False,
                [
                    {"text": "Iberia", "disqualifies": False},
                    {"text": "France, Benelux", "disqualifies": False},
                    {"text": "DACH", "disqualifies": False},
                ],
            ),
            *_generated_questions(),
        ]
        for qid, pid, label, qtype, mandatory, options in seeded_questions:
            self.questions[qid] = {
                "id": qid,
                "ats_job_posting_id": pid,
                "label": label,
                "position": len(self.questions),
                "mandatory": mandatory,
                "auto_disqualify": any(o["disqualifies"] for o in options),
                "question_type": qtype,
                "created_at": now,
                "updated_at": now,
                "options": options,
            }
        for sid, name, label, category in [
            ("4001", "linkedin", "LinkedIn", "social_media"),
            ("4002", "indeed", "Indeed", "job_board"),
            ("4003", "career_site", "Career site", "organic"),
            ("4004", "referral", "Referral", "referral"),
            ("4005", "manually_added", "Manually added", "manually_added"),
        ]:
            self.sources[sid] = {
                "id": sid,
                "company_id": COMPANY_ID,
                "category": category,
                "name": name,
                "label": label,
            }

    def records(self) -> dict[str, Any]:
        return {
            "company_id": COMPANY_ID,
            "job_postings": list(self.job_postings.values()),
            "questions": list(self.questions.values()),
            "phases": list(self.phases.values()),
            "hiring_stages": list(self.hiring_stages.values()),
            "sources": list(self.sources.values()),
            "candidates": list(self.candidates.values()),
            "applications": list(self.applications.values()),
            "answers": list(self.answers.values()),
            "messages": list(self.messages.values()),
            "files": list(self.files.values()),
            "requests": self.requests,
        }


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """Factorial omits unset fields rather than sending null where its schema says string."""
    return {k: v for k, v in record.items() if v is not None}


def _page(request: Request[Any, Any, Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    """Factorial's pagination: cursor (after_id) by default, offset (page) when asked; max 100."""
    params = request.query_params
    try:
        limit = max(1, min(int(params.get("limit", 100)), 100))
        page = int(params["page"]) if "page" in params else None
    except ValueError:
        raise _validation("limit and page must be integers") from None
    items = sorted(items, key=lambda r: int(r["id"]))
    total = len(items)
    if page is not None:
        start = (max(page, 1) - 1) * limit
    elif after := params.get("after_id"):
        start = next((i + 1 for i, r in enumerate(items) if r["id"] == after), total)
    else:
        start = 0
    chunk = [_clean(r) for r in items[start : start + limit]]
    meta: dict[str, Any] = {
        "has_previous_page": start > 0,
        "has_next_page": start + limit < total,
        "limit": limit,
        "total": total,
    }
    if chunk:
        meta["start_cursor"], meta["end_cursor"] = chunk[0]["id"], chunk[-1]["id"]
    return {"data": chunk, "meta": meta}


def _filter(request: Request[Any, Any, Any], items: list[dict[str, Any]], **filters: str) -> list[dict[str, Any]]:
    """Apply Rails-style list filters: ``ids[]=1&ids[]=2`` or a scalar ``field=value``."""
    params = request.query_params
    for param, record_field in filters.items():
        values = params.getall(param, []) if param.endswith("[]") else ([params[param]] if param in params else [])
        if values:
            wanted = {v.lower() if record_field == "email" else v for v in values}
            items = [
                r
                for r in items
                if (str(r.get(record_field) or "").lower() if record_field == "email" else str(r.get(record_field)))
                in wanted
            ]
    return items


def create_app(
    api_key: str = "sandbox",
    oauth_client_id: str | None = None,
    oauth_client_secret: str | None = None,
    oauth_refresh_token: str | None = None,
    oauth_redirect_uris: tuple[str, ...] = (),
    access_token_ttl_s: float = 3600.0,
) -> Any:
    """`oauth_*`: an OAuth app registered from the start (and a refresh token issued to it before
    the emulator started, for the connector's env-based OAuth); more with POST
    /_sandbox/factorial/oauth/apps. `access_token_ttl_s`: how long an access token lives."""
    state = FactorialState(api_key=api_key)
    state.oauth.access_token_ttl_s = access_token_ttl_s

    def reset() -> None:
        state.seed()
        state.oauth.clear()
        if oauth_client_id and oauth_client_secret:
            state.oauth.apps[oauth_client_id] = OAuthApp(oauth_client_secret, tuple(oauth_redirect_uris))
            if oauth_refresh_token:
                state.oauth.seed_refresh_token(oauth_client_id, oauth_refresh_token)

    reset()
    prefix = f"/api/{VERSION}/resources"

    def authorize(request: Request[Any, Any, Any]) -> None:
        state.requests += 1
        key = request.headers.get("x-api-key")
        if key is not None:
            if secrets.compare_digest(key, state.api_key):
                return
        else:
            auth = request.headers.get("authorization", "")
            if auth.startswith("Bearer ") and state.oauth.valid_access(auth[7:]):
                return
        raise FactorialError(401, {"message": "Unauthorized"})

    async def json_body(request: Request[Any, Any, Any]) -> dict[str, Any]:
        try:
            body = await request.json()
        except Exception:
            raise FactorialError(400, {"message": "Malformed JSON body"}) from None
        if not isinstance(body, dict):
            raise FactorialError(400, {"message": "Expected a JSON object"})
        return body

    def require(body: dict[str, Any], *names: str) -> None:
        missing = [n for n in names if body.get(n) in (None, "")]
        if missing:
            raise _validation(*(f"{n} is missing" for n in missing))
        wrong = [n for n, v in body.items() if n.endswith("_id") and v is not None and not isinstance(v, str)]
        if wrong:
            raise _validation(*(f"{n} must be a string (ids are strings since 2026-07-01)" for n in wrong))

    # -- reads ---------------------------------------------------------------------------------

    @get(f"{prefix}/api_public/credentials", sync_to_thread=False)
    def credentials(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        return {
            "data": [{"id": "1", "company_id": COMPANY_ID, "employee_id": "1", "name": "Sandbox S.L."}],
            "meta": {"has_previous_page": False, "has_next_page": False, "limit": 100, "total": 1},
        }

    @get(f"{prefix}/ats/job_postings", sync_to_thread=False)
    def list_postings(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        status = request.query_params.get("status")
        if status is not None and status not in POSTING_STATUSES:
            raise _validation("status is not included in the list")
        postings = list(state.job_postings.values())
        filters = {"ids[]": "id", "status": "status", "team_id": "team_id", "location_id": "location_id"}
        return _page(request, _filter(request, postings, **filters))

    @get(f"{prefix}/ats/job_postings/{{posting_id:str}}", sync_to_thread=False)
    def get_posting(request: Request[Any, Any, Any], posting_id: str) -> dict[str, Any]:
        authorize(request)
        if posting_id not in state.job_postings:
            raise _not_found("Job posting")
        return _clean(state.job_postings[posting_id])

    @get(f"{prefix}/ats/questions", sync_to_thread=False)
    def list_questions(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        return _page(
            request,
            _filter(
                request,
                list(state.questions.values()),
                **{"ids[]": "id", "ats_job_posting_ids[]": "ats_job_posting_id"},
            ),
        )

    @get(f"{prefix}/ats/questions/{{question_id:str}}", sync_to_thread=False)
    def get_question(request: Request[Any, Any, Any], question_id: str) -> dict[str, Any]:
        authorize(request)
        if question_id not in state.questions:
            raise _not_found("Question")
        return state.questions[question_id]

    @get(f"{prefix}/ats/application_phases/{{phase_id:str}}", sync_to_thread=False)
    def get_phase(request: Request[Any, Any, Any], phase_id: str) -> dict[str, Any]:
        authorize(request)
        if phase_id not in state.phases:
            raise _not_found("Application phase")
        return state.phases[phase_id]

    @get(f"{prefix}/ats/hiring_stages", sync_to_thread=False)
    def list_hiring_stages(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        stages = list(state.hiring_stages.values())
        if phase_id := request.query_params.get("ats_application_phase_id"):
            phase = state.phases.get(phase_id)
            stages = [s for s in stages if phase is not None and s["id"] == phase["ats_hiring_stage_id"]]
        return _page(request, _filter(request, stages, **{"ids[]": "id"}))

    @get(f"{prefix}/ats/hiring_stages/{{stage_id:str}}", sync_to_thread=False)
    def get_hiring_stage(request: Request[Any, Any, Any], stage_id: str) -> dict[str, Any]:
        authorize(request)
        if stage_id not in state.hiring_stages:
            raise _not_found("Hiring stage")
        return state.hiring_stages[stage_id]

    @get(f"{prefix}/ats/application_phases", sync_to_thread=False)
    def list_phases(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        return _page(
            request,
            _filter(
                request, list(state.phases.values()), **{"ids[]": "id", "ats_job_posting_ids[]": "ats_job_posting_id"}
            ),
        )

    @get(f"{prefix}/ats/candidate_sources", sync_to_thread=False)
    def list_sources(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        return _page(request, _filter(request, list(state.sources.values()), **{"ids[]": "id"}))

    @get(f"{prefix}/ats/candidate_sources/{{source_id:str}}", sync_to_thread=False)
    def get_source(request: Request[Any, Any, Any], source_id: str) -> dict[str, Any]:
        authorize(request)
        if source_id not in state.sources:
            raise _not_found("Candidate source")
        return state.sources[source_id]

    @get(f"{prefix}/ats/candidates", sync_to_thread=False)
    def list_candidates(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        _unsupported_filters(
            request,
            "team_ids[]",
            "location_ids[]",
            "source[]",
            "remote",
            "minimum_average_rating",
            "active",
            "archived",
        )
        candidates = _bool_filter(request, list(state.candidates.values()), "talent_pool")
        if postings := request.query_params.getall("job_posting_ids[]", []):
            candidates = [c for c in candidates if set(c["ats_job_posting_ids"]) & set(postings)]
        return _page(request, _filter(request, candidates, **{"ids[]": "id", "emails[]": "email"}))

    @get(f"{prefix}/ats/applications", sync_to_thread=False)
    def list_applications(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        _unsupported_filters(request, "ats_rejection_reason_ids[]", "search", "ats_tags_ids[]")
        return _page(
            request,
            _filter(
                request,
                _bool_filter(request, list(state.applications.values()), "qualified"),
                **{
                    "ids[]": "id",
                    "ats_candidate_ids[]": "ats_candidate_id",
                    "ats_job_posting_id": "ats_job_posting_id",
                    "ats_application_phase_id": "ats_application_phase_id",
                },
            ),
        )

    @get(f"{prefix}/ats/applications/{{application_id:str}}", sync_to_thread=False)
    def get_application(request: Request[Any, Any, Any], application_id: str) -> dict[str, Any]:
        authorize(request)
        if application_id not in state.applications:
            raise _not_found("Application")
        return _clean(state.applications[application_id])

    @get(f"{prefix}/ats/answers", sync_to_thread=False)
    def list_answers(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        return _page(
            request,
            _filter(
                request, list(state.answers.values()), **{"ids[]": "id", "ats_application_ids[]": "ats_application_id"}
            ),
        )

    @get(f"{prefix}/ats/messages", sync_to_thread=False)
    def list_messages(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        if request.query_params.get("last_per_conversation") not in ("true", "false"):
            raise FactorialError(400, {"errors": ["last_per_conversation is required (true or false)"]})
        return _page(
            request,
            _filter(
                request,
                list(state.messages.values()),
                **{
                    "id": "id",
                    "ids[]": "id",
                    "ats_conversation_id": "ats_conversation_id",
                    "ats_conversation_ids[]": "ats_conversation_id",
                },
            ),
        )

    # -- writes --------------------------------------------------------------------------------

    @post(f"{prefix}/ats/candidates", status_code=201)
    async def create_candidate(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        body = await json_body(request)
        check_body("POST ats/candidates", body)
        require(body, "first_name", "last_name", "company_id")
        if body["company_id"] != COMPANY_ID:
            raise _validation("company_id does not match the credentials' company")
        email = body.get("email")
        if email is not None and (not isinstance(email, str) or "@" not in email):
            raise _validation("email is invalid")
        gender = body.get("gender")
        source_id = None
        if body.get("source"):
            source_id = next(
                (s["id"] for s in state.sources.values() if body["source"] in (s["name"], s["label"])), None
            )
        now = _now()
        cid = state.new_id()
        state.candidates[cid] = {
            "id": cid,
            "company_id": COMPANY_ID,
            "first_name": body["first_name"],
            "last_name": body["last_name"],
            "full_name": f"{body['first_name']} {body['last_name']}",
            "email": email,
            "talent_pool": bool(body.get("talent_pool", False)),
            "phone_number": body.get("phone_number"),
            "created_at": now,
            "updated_at": now,
            "consent_given_at": body.get("consent_given_at"),
            "ats_job_posting_ids": [],
            "medium": body.get("medium"),
            "source_id": source_id,
            "gender": gender or "unanswered",
            "personal_url": body.get("personal_url"),
            "source": body.get("source"),
        }
        return _clean({k: v for k, v in state.candidates[cid].items() if k != "source"})

    def _posting_for_apply(posting_id: str) -> dict[str, Any]:
        posting = state.job_postings.get(posting_id)
        if posting is None:
            raise _validation("ats_job_posting_id is invalid")
        if posting["status"] not in ("published", "unlisted"):
            raise _validation("Job posting is not accepting applications")
        return posting

    @post(f"{prefix}/ats/applications", status_code=201)
    async def create_application(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        body = await json_body(request)
        check_body("POST ats/applications", body)
        require(body, "ats_job_posting_id")
        posting = _posting_for_apply(body["ats_job_posting_id"])
        candidate_id = body.get("ats_candidate_id")
        if candidate_id is None or candidate_id not in state.candidates:
            raise _validation("ats_candidate_id is invalid")
        if any(
            a["ats_candidate_id"] == candidate_id and a["ats_job_posting_id"] == posting["id"]
            for a in state.applications.values()
        ):
            raise _validation("Candidate has already applied to this job posting")
        phase_id = body.get("ats_application_phase_id")
        phases = [p for p in state.phases.values() if p["ats_job_posting_id"] == posting["id"]]
        if phase_id is None:
            phase_id = min(phases, key=lambda p: p["position"])["id"]
        elif not any(p["id"] == phase_id for p in phases):
            raise _validation("ats_application_phase_id does not belong to the job posting")
        source_id = None
        if body.get("source"):
            source_id = next(
                (s["id"] for s in state.sources.values() if body["source"] in (s["name"], s["label"])), None
            )
        aid = state.new_id()
        state.applications[aid] = {
            "id": aid,
            "company_id": COMPANY_ID,
            "ats_job_posting_id": posting["id"],
            "ats_candidate_id": candidate_id,
            "phone": body.get("phone"),
            "qualified": True,
            "ats_application_phase_id": phase_id,
            "created_at": _now(),
            "cover_letter": body.get("cover_letter"),
            "ats_conversation_id": state.new_id(),
            "medium": body.get("medium"),
            "source_id": source_id,
        }
        state.candidates[candidate_id]["ats_job_posting_ids"].append(posting["id"])
        return _clean(state.applications[aid])

    @put(f"{prefix}/ats/applications/{{application_id:str}}")
    async def update_application(request: Request[Any, Any, Any], application_id: str) -> dict[str, Any]:
        authorize(request)
        body = await json_body(request)
        check_body("PUT ats/applications/{id}", body)
        require(body, "id")
        app = state.applications.get(application_id)
        if app is None or body["id"] != application_id:
            raise _not_found("Application")
        if "source_id" in body:
            if body["source_id"] not in state.sources:
                raise _validation("source_id is invalid")
            app["source_id"] = body["source_id"]
        if "ats_application_phase_id" in body:
            phase = state.phases.get(body["ats_application_phase_id"])
            if phase is None or phase["ats_job_posting_id"] != app["ats_job_posting_id"]:
                raise _validation("ats_application_phase_id does not belong to the job posting")
            app["ats_application_phase_id"] = phase["id"]
        for name in ("phone", "qualified", "ats_rejection_reason_id"):
            if name in body:
                app[name] = body[name]
        return _clean(app)

    @post(f"{prefix}/ats/applications/move_to_phase", status_code=200)
    async def move_to_phase(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        body = await json_body(request)
        check_body("POST ats/applications/move_to_phase", body)
        require(body, "id", "ats_application_phase_id")
        app = state.applications.get(body["id"])
        if app is None:
            raise _not_found("Application")
        phase = state.phases.get(body["ats_application_phase_id"])
        if phase is None or phase["ats_job_posting_id"] != app["ats_job_posting_id"]:
            raise _validation("ats_application_phase_id does not belong to the job posting")
        app["ats_application_phase_id"] = phase["id"]
        return _clean(app)

    @post(f"{prefix}/ats/answers", status_code=201)
    async def create_answer(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        body = await json_body(request)
        check_body("POST ats/answers", body)
        require(
            body, "ats_question_id", "ats_application_id", "value", "original_question_label", "original_question_type"
        )
        app = state.applications.get(body["ats_application_id"])
        question = state.questions.get(body["ats_question_id"])
        if app is None:
            raise _validation("ats_application_id is invalid")
        if question is None or question["ats_job_posting_id"] != app["ats_job_posting_id"]:
            raise _validation("ats_question_id does not belong to the application's job posting")
        qtype = body["original_question_type"]
        if qtype not in ANSWER_TYPES:
            raise _validation("original_question_type is not included in the list")
        if qtype != question["question_type"]:
            raise _validation("original_question_type does not match the question")
        value = body["value"]
        if not isinstance(value, str):
            raise _validation("value must be a string")
        labels = [o["text"] for o in question["options"]]
        if qtype == "single_choice" and value not in labels:
            raise _validation("value is not one of the question's options")
        if qtype == "multiple_choice" and not all(v.strip() in labels for v in value.split(",")):
            raise _validation("value is not a comma-separated list of the question's options")
        answer_id = state.new_id()
        now = _now()
        state.answers[answer_id] = {
            "id": answer_id,
            "ats_question_id": question["id"],
            "ats_application_id": app["id"],
            "original_question_label": body["original_question_label"],
            "value": value,
            "original_question_type": qtype,
            "created_at": now,
            "updated_at": now,
        }
        return state.answers[answer_id]

    def _store_file(upload_name: str | None, content_type: str | None, data: bytes, **extra: Any) -> dict[str, Any]:
        if len(data) > MAX_FILE_BYTES:
            raise FactorialError(413, {"message": "File is too large"})
        if not data:
            raise _validation("attachment is empty")
        file_id = state.new_id()
        record = {
            "id": file_id,
            "filename": upload_name,
            "content_type": content_type,
            "byte_size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "created_at": _now(),
            **extra,
        }
        state.files[file_id] = record
        return record

    @post(f"{prefix}/ats/messages", status_code=201)
    async def create_message(request: Request[Any, Any, Any]) -> dict[str, Any]:
        authorize(request)
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise FactorialError(415, {"message": "messages must be multipart/form-data"})
        form = await request.form()
        body: dict[str, Any] = {
            k: form.get(k)
            for k in ("content", "sent_by_id", "sent_by_type", "ats_application_id", "topic", "send_as_corporate_email")
        }
        require(body, *body.keys())
        app = state.applications.get(body["ats_application_id"])
        if app is None:
            raise _validation("ats_application_id is invalid")
        if body["sent_by_type"] not in SENT_BY_TYPES:
            raise _validation("sent_by_type is not included in the list")
        if body["send_as_corporate_email"] not in ("true", "false"):  # the document's boolean, as a form field
            raise _validation("send_as_corporate_email must be a boolean")
        if body["sent_by_type"] == "candidate" and body["sent_by_id"] != app["ats_candidate_id"]:
            raise _validation("sent_by_id is not the application's candidate")
        uploads = [u for u in form.getall("attachments[]", []) if isinstance(u, UploadFile)]
        if not uploads:
            raise _validation("attachments[] is missing")
        message_id = state.new_id()
        attachments = []
        for upload in uploads:
            data = await upload.read()
            record = _store_file(
                upload.filename,
                upload.content_type,
                data,
                via="message",
                ats_message_id=message_id,
                ats_application_id=app["id"],
            )
            attachments.append(
                {
                    "id": record["id"],
                    "filename": record["filename"],
                    "content_type": record["content_type"],
                    "byte_size": record["byte_size"],
                    "url": f"https://example.factorialhr.com/files/{record['id']}",
                }
            )
        state.messages[message_id] = {
            "id": message_id,
            "content": body["content"],
            "ats_conversation_id": app["ats_conversation_id"],
            "sent_by_id": body["sent_by_id"],
            "sent_by_type": body["sent_by_type"],
            "created_at": _now(),
            "attachments": attachments,
            "topic": body["topic"],
        }
        return state.messages[message_id]

    @put("/api/v1/ats/applications/{application_id:str}")
    async def legacy_cv(request: Request[Any, Any, Any], application_id: str) -> dict[str, Any]:
        """Legacy v1: multipart update carrying the application's `cv` file."""
        authorize(request)
        app = state.applications.get(application_id)
        if app is None:
            raise _not_found("Application")
        form = await request.form()
        upload = form.get("cv")
        if not isinstance(upload, UploadFile):
            raise _validation("cv is missing")
        record = _store_file(
            upload.filename,
            upload.content_type,
            await upload.read(),
            via="legacy_cv",
            ats_application_id=application_id,
        )
        app["cv"] = {
            "filename": record["filename"],
            "content_type": record["content_type"],
            "byte_size": record["byte_size"],
            "created_at": record["created_at"],
            "url": f"https://example.factorialhr.com/files/{record['id']}",
        }
        return _clean(app)

    @post("/_sandbox/factorial/questions", status_code=201)
    async def add_question(request: Request[Any, Any, Any]) -> dict[str, Any]:
        """Sandbox only: add a question to a posting now (as a recruiter would in the UI), so a
        test can watch a cached question list expire. Body: ``ats_job_posting_id``, ``label``,
        ``question_type``, optional ``mandatory``, ``options``, ``position``."""
        body = await json_body(request)
        posting_id = str(body.get("ats_job_posting_id"))
        if posting_id not in state.job_postings:
            raise _validation("ats_job_posting_id is invalid")
        if body.get("question_type") not in QUESTION_TYPES or not body.get("label"):
            raise _validation("label and a question_type of the list are required")
        options = [
            {"text": str(o["text"]), "disqualifies": bool(o.get("disqualifies"))} for o in body.get("options") or []
        ]
        qid, now = state.new_id(), _now()
        state.questions[qid] = {
            "id": qid,
            "ats_job_posting_id": posting_id,
            "label": str(body["label"]),
            "position": int(body.get("position", len(state.questions))),
            "mandatory": bool(body.get("mandatory", False)),
            "auto_disqualify": any(o["disqualifies"] for o in options),
            "question_type": body["question_type"],
            "created_at": now,
            "updated_at": now,
            "options": options,
        }
        return state.questions[qid]

    @post("/_sandbox/factorial/revoke-tokens", status_code=200, sync_to_thread=False)
    def revoke_tokens() -> dict[str, int]:
        """Expire every OAuth access token now (to exercise the connector's refresh)."""
        count = len(state.oauth.access_tokens)
        state.oauth.access_tokens.clear()
        return {"revoked": count}

    def handle_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if isinstance(exc, FactorialError):
            return Response(exc.body, status_code=exc.status_code)
        status = getattr(exc, "status_code", 500)
        return Response({"message": str(getattr(exc, "detail", "error"))}, status_code=status)

    return sandbox_app(
        name="factorial",
        routes=[
            credentials,
            list_postings,
            get_posting,
            list_questions,
            get_question,
            list_phases,
            get_phase,
            list_hiring_stages,
            get_hiring_stage,
            list_sources,
            get_source,
            list_candidates,
            list_applications,
            get_application,
            list_answers,
            list_messages,
            create_candidate,
            create_application,
            update_application,
            move_to_phase,
            create_answer,
            create_message,
            legacy_cv,
            add_question,
            revoke_tokens,
            *oauth_routes(state.oauth),
        ],
        records=state.records,
        reset=reset,
        exception_handlers={HTTPException: handle_error},
    )
