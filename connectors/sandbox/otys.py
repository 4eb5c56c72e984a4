"""OTYS OWS emulator: the JSON-RPC 2.0 endpoint ``POST /jservice.php`` and ``POST /fileService.php``.

What it reproduces from the public sources (summarised in docs/connectors/otys.md; the official WordPress
plugin): ``loginByUid`` sessions passed as the first JSON-RPC param; errors as a JSON-RPC ``error``
object inside an HTTP 200; ``Access denied; please login again`` when a session has expired; the
``getListEx`` grammar (what / limit / condition tree / ACTONOMY e-mail search); candidates,
procedures (applications) with three status lists, referrer portals (sources), GDPR due dates,
questionsets, and the two-step document upload (fileService.php, then AttachedDocumentsService.add).

Sandbox-only controls, besides the common ``/_sandbox`` endpoints:

* ``POST /_sandbox/otys/expire-sessions``   every live session expires now
* ``POST /_sandbox/otys/upload-faults``     refuse uploads by content type / extension / size / name
  (``{"content_types": [...], "extensions": [".docx"], "min_size": 1000, "names": [...],
  "count": null}``); ``DELETE`` clears
* ``POST /_sandbox/otys/rpc-faults``        the common `Faults` body, but ``path_regex`` is matched
  against the JSON-RPC *method* (all calls share one URL), e.g. ``AttachedDocumentsService\\.add``
* ``POST /_sandbox/otys/vacancies/{uid}/questions`` adds a question to the vacancy's questionset
  at runtime (``{"question", "type", "fieldName", "mandatory"?, "answers"?}``), to see a cache expire
* option ``session_max_calls=N``: a session expires after N authenticated calls
* option ``unique_email=False``: allow two candidates with one e-mail (refused by default;
  assumption: whether OTYS refuses is not public)
* option ``search_index_lag_s=S``: the ACTONOMY search sees a new candidate only S seconds after
  it was created (a search index lags; plain ``condition`` queries see it at once)

Assumptions where the sources are silent are marked "assumption:".
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from litestar import Request, Response, delete, post
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Receive, Scope, Send

from connectors.sandbox.common import Faults, FaultState, sandbox_app

SESSION_EXPIRED = "Access denied; please login again"
SESSION_UNKNOWN = "Access denied; please login first"

# assumption: OTYS's own error codes are not public; these are the emulator's.
E_ACCESS = 1001
E_INVALID_KEY = 1002
E_VALIDATION = 2001
E_NOT_FOUND = 2004
E_FILE_REJECTED = 2010
E_FILE_TOO_LARGE = 2011

DOCUMENT_TYPES = {1: "CV", 2: "Motivation letter", 201: "Other"}  # assumption: 2 = cover letter
GENDERS = {"m": "Male", "f": "Female", "o": "Other"}  # assumption: OTYS gender option codes
PERSON_TEXT_FIELDS = ("firstName", "infix", "lastName", "emailPrimary", "gender", "languageCode")


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UploadFaults(msgspec.Struct, forbid_unknown_fields=True):
    content_types: list[str] = []
    extensions: list[str] = []
    names: list[str] = []
    min_size: int | None = None
    count: int | None = None  # how many uploads to refuse; None = until cleared

    def matches(self, name: str, content_type: str, size: int) -> bool:
        if self.count is not None and self.count <= 0:
            return False
        lower = name.lower()
        hit = (
            content_type in self.content_types
            or any(lower.endswith(ext.lower()) for ext in self.extensions)
            or name in self.names
            or (self.min_size is not None and size >= self.min_size)
        )
        if hit and self.count is not None:
            self.count -= 1
        return hit


def _uid() -> str:
    return uuid.uuid4().hex


VACANCY_STATUSES = ("open", "closed", "draft", "archived")  # assumption: OTYS's status values


def _seed_vacancies() -> dict[str, dict[str, Any]]:
    """Three hand-made vacancies (one with the questionset of every type) and 22 generated ones
    to page through (statuses mixed, ``lastModified`` a day apart)."""
    base = {
        "a1b2c3d4e5f60718293a4b5c6d7e8f90": {
            "uid": "a1b2c3d4e5f60718293a4b5c6d7e8f90",
            "internalId": 1001,
            "title": "Backend developer",
            "status": "open",
            "locationCity": "Utrecht",
            "locationPostcode": "3511 AA",
            "locationCountryCode": "NL",
            "referenceNr": "V-1001",
            "textField_description": "<p>Python and PostgreSQL.</p>",
            "customApplyUrl": "https://jobs.example.nl/vacatures/backend-developer",
            "entryDateTime": "2026-09-01 09:00:00",
            "lastModified": "2026-10-01 09:00:00",
            "qsId": "qs-1",
        },
        "b2c3d4e5f60718293a4b5c6d7e8f90a1": {
            "uid": "b2c3d4e5f60718293a4b5c6d7e8f90a1",
            "internalId": 1002,
            "title": "Recruiter",
            "status": "open",
            "locationCity": "Amsterdam",
            "locationCountryCode": "NL",
            "referenceNr": "V-1002",
            "entryDateTime": "2026-09-02 09:00:00",
            "lastModified": "2026-10-02 09:00:00",
            "qsId": None,
        },
        "c3d4e5f60718293a4b5c6d7e8f90a1b2": {
            "uid": "c3d4e5f60718293a4b5c6d7e8f90a1b2",
            "internalId": 1003,
            "title": "Closed role",
            "status": "closed",
            "locationCity": "Rotterdam",
            "locationCountryCode": "NL",
            "referenceNr": "V-1003",
            "entryDateTime": "2026-03-01 09:00:00",
            "lastModified": "2026-05-31 17:00:00",
            "qsId": None,
        },
    }
    titles = ["Verpleegkundige / Nurse", "Developer", "Magazijnmedewerker / Warehouse"]
    start = dt.datetime(2026, 9, 10, 8, 0)
    for n in range(22):
        uid = hashlib.md5(f"otys-vacancy-{n}".encode()).hexdigest()  # noqa: S324 - a stable seed id
        when = start + dt.timedelta(days=n)
        base[uid] = {
            "uid": uid,
            "internalId": 2001 + n,
            "title": f"{titles[n % 3]} {n + 1}",
            "status": VACANCY_STATUSES[n % 4],
            "locationCity": ["Utrecht", "Amsterdam", "Eindhoven"][n % 3],
            "locationCountryCode": "NL",
            "referenceNr": f"V-{2001 + n}",
            "entryDateTime": (when - dt.timedelta(days=30)).strftime("%Y-%m-%d %H:%M:%S"),
            "lastModified": when.strftime("%Y-%m-%d %H:%M:%S"),
            "qsId": "qs-2" if n == 0 else None,
        }
    return base


def _seed_statuses() -> dict[int, list[dict[str, Any]]]:
    return {
        1: [
            {"uid": "1", "code": "Applied", "automaticallySelectEvent": 1},
            {"uid": "2", "code": "Screening", "automaticallySelectEvent": 0},
            {"uid": "3", "code": "Interview", "automaticallySelectEvent": 0},
            {"uid": "4", "code": "Offer", "automaticallySelectEvent": 0},
            {"uid": "5", "code": "Hired", "automaticallySelectEvent": 0},
        ],
        2: [
            {"uid": "1", "code": "New", "automaticallySelectEvent": 1},
            {"uid": "2", "code": "Contacted", "automaticallySelectEvent": 0},
        ],
        3: [{"uid": "1", "code": "Open", "automaticallySelectEvent": 1}],
    }


def _seed_portals() -> dict[str, dict[str, Any]]:
    portals = [
        ("p-website", "Website", "website"),
        ("p-indeed", "Indeed", "indeed"),
        ("p-linkedin", "LinkedIn", "linkedin"),
    ]
    return {
        uid: {
            "uid": uid,
            "portal": name,
            "domain": "",
            "alias1": alias,
            "alias2": "",
            "alias3": "",
            "originalId": None,
        }
        for uid, name, alias in portals
    }


# The tenant's match criteria (matchCriteria_N): option uid -> label. Candidates store a criterion
# as an object keyed by option uid (the plugin's ``{"<optionId>": 1}``).
MATCH_CRITERIA: dict[int, dict[str, str]] = {
    1: {"11": "North", "12": "South"},
    2: {"21": "Dutch", "22": "English"},
    3: {"41": "Junior", "42": "Medior", "43": "Senior"},
}
BOOLEAN_FIELDS = frozenset({"driversLicence", "willRelocate", "ownsCar", "handicapped"})


def _question(
    qid: str,
    question: str,
    ftype: str,
    field_name: str,
    mandatory: bool = False,
    answers: list[tuple[str, str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    validation = {"mandatory": mandatory, **extra.pop("validation", {})}
    return {
        "id": qid,
        "question": question,
        "type": ftype,
        "subtype": ftype,
        "fieldName": field_name,
        "Validation": validation,
        "PossibleAnswersExt": [{"uid": a, "answer": label} for a, label in (answers or [])],
        **extra,
    }


def _seed_questionsets() -> dict[str, dict[str, Any]]:
    """qs-1: a question of every type the plugin renders (and a candidate-data question, which
    the relay fills from the candidate itself); qs-2: a short one."""
    q = _question
    questions = [
        q("100", "First name", "textField", "Person.firstName", True),
        q("101", "Your motivation", "motivation", "motivation", True),
        q("102", "Years of experience", "textField", "extraInfo1"),
        q("103", "Describe a project", "textarea", "extraInfo2"),
        q("104", "Start date", "dateSelect", "availableAt", validation={"date": True}),
        q("105", "CV", "file", "cv", True, documentTypeId=1),
        q("106", "Preferred region", "select", "matchCriteria_1", answers=[("11", "North"), ("12", "South")]),
        q("107", "Languages", "multiSelect", "matchCriteria_2", answers=[("21", "Dutch"), ("22", "English")]),
        q("108", "Driving licence", "checkbox", "driversLicence"),
        q("109", "Work permit", "radio", "extraInfo3", True, answers=[("31", "Yes"), ("32", "No")]),
        q(
            "110",
            "Seniority",
            "criteria",
            "matchCriteria_3",
            answers=[("41", "Junior"), ("42", "Medior"), ("43", "Senior")],
        ),
        q("111", "Shifts", "multiCheckbox", "extraInfo4", answers=[("51", "Day"), ("52", "Night"), ("53", "Weekend")]),
        q("112", "Reference e-mail", "textField", "extraInfo5", validation={"email": True}),
        q("113", "Certificates", "multiFile", "documents", documentTypeId=201),
        q("114", "Willing to relocate", "other", "willRelocate"),
    ]
    short = [
        q("201", "Your motivation", "motivation", "motivation"),
        q("202", "Driving licence", "checkbox", "driversLicence", True),
    ]
    return {
        "qs-1": {"uid": "qs-1", "name": "Default", "Pages": [{"Questions": {item["id"]: item for item in questions}}]},
        "qs-2": {"uid": "qs-2", "name": "Short", "Pages": [{"Questions": {item["id"]: item for item in short}}]},
    }


@dataclass
class OtysState:
    """Everything the emulated tenant holds; `reset()` restores the seed."""

    api_key: str
    session_max_calls: int | None = None
    search_index_lag_s: float = 0.0
    unique_email: bool = True
    indexed_at: dict[str, float] = field(default_factory=dict)
    max_file_bytes: int = 10_000_000
    lock: threading.Lock = field(default_factory=threading.Lock)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    logins: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    vacancies: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    portals: dict[str, dict[str, Any]] = field(default_factory=dict)
    questionsets: dict[str, dict[str, Any]] = field(default_factory=dict)
    candidates: dict[str, dict[str, Any]] = field(default_factory=dict)
    procedures: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    gdpr: dict[str, dict[str, Any]] = field(default_factory=dict)
    upload_faults: UploadFaults = field(default_factory=UploadFaults)
    rpc_faults: FaultState = field(default_factory=FaultState)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.sessions.clear()
            self.logins = 0
            self.calls.clear()
            self.vacancies = _seed_vacancies()
            self.statuses = _seed_statuses()
            self.portals = _seed_portals()
            self.questionsets = _seed_questionsets()
            self.candidates.clear()
            self.indexed_at.clear()
            self.procedures.clear()
            self.files.clear()
            self.documents.clear()
            self.gdpr.clear()
            self.upload_faults = UploadFaults()
            self.rpc_faults.set(Faults())

    # -- sessions ---------------------------------------------------------------------------

    def login(self, key: Any) -> str:
        if not isinstance(key, str) or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise RpcError(E_INVALID_KEY, "Access denied; invalid API key")
        session = _uid()
        self.sessions[session] = {"calls": 0, "expired": False}
        self.logins += 1
        return session

    def use_session(self, session: Any) -> None:
        info = self.sessions.get(session) if isinstance(session, str) else None
        if info is None:
            raise RpcError(E_ACCESS, SESSION_UNKNOWN)
        if info["expired"]:
            raise RpcError(E_ACCESS, SESSION_EXPIRED)
        info["calls"] += 1
        if self.session_max_calls is not None and info["calls"] >= self.session_max_calls:
            info["expired"] = True  # this call still succeeds; the next one is refused

    def expire_sessions(self) -> int:
        for info in self.sessions.values():
            info["expired"] = True
        return len(self.sessions)

    # -- records ----------------------------------------------------------------------------

    def records(self) -> dict[str, Any]:
        with self.lock:
            return json.loads(
                json.dumps(
                    {
                        "vacancies": list(self.vacancies.values()),
                        "stages": {str(k): v for k, v in self.statuses.items()},
                        "portals": list(self.portals.values()),
                        "document_types": {str(k): v for k, v in DOCUMENT_TYPES.items()},
                        "questionsets": list(self.questionsets.values()),
                        "candidates": list(self.candidates.values()),
                        "procedures": list(self.procedures.values()),
                        "files": list(self.files.values()),
                        "documents": list(self.documents.values()),
                        "gdpr": list(self.gdpr.values()),
                        "logins": self.logins,
                        "live_sessions": sum(1 for s in self.sessions.values() if not s["expired"]),
                        "calls": dict(self.calls),
                        "upload_faults": msgspec.to_builtins(self.upload_faults),
                    }
                )
            )


# ---------------------------------------------------------------------------------------------
# getListEx grammar


def _get_path(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _match_condition(record: dict[str, Any], cond: Any) -> bool:
    if not cond:
        return True
    if not isinstance(cond, dict):
        raise RpcError(E_VALIDATION, "Invalid condition")
    kind = cond.get("type")
    if kind in ("AND", "OR"):
        results = [_match_condition(record, item) for item in cond.get("items", [])]
        return all(results) if kind == "AND" else any(results)
    if kind != "COND":
        raise RpcError(E_VALIDATION, "Invalid condition type")
    value, op, param = _get_path(record, str(cond.get("field", ""))), cond.get("op"), cond.get("param")
    if isinstance(param, list) and op == "EQ":
        return value in param
    if op == "EQ":
        # MySQL-style case-insensitive comparison of strings
        return value == param or (value is not None and str(value).lower() == str(param).lower())
    if op == "LIKE":
        pattern = re.escape(str(param)).replace("%", ".*")
        return value is not None and re.fullmatch(pattern, str(value), re.IGNORECASE) is not None
    if op in ("GE", "LE"):
        if value is None:
            return False
        return value >= param if op == "GE" else value <= param
    raise RpcError(E_VALIDATION, "Invalid condition operator")


def _project(record: dict[str, Any], what: Any) -> dict[str, Any]:
    if not isinstance(what, dict) or not what:
        return record
    out: dict[str, Any] = {}
    for key, sub in what.items():
        if key not in record:
            continue
        out[key] = (
            _project(record[key], sub) if isinstance(sub, dict) and isinstance(record[key], dict) else record[key]
        )
    return out


def _list_ex(records: list[dict[str, Any]], query: Any) -> dict[str, Any]:
    if not isinstance(query, dict):
        raise RpcError(E_VALIDATION, "Invalid getListEx arguments")
    limit = int(query.get("limit") or 200)
    if limit > 200 and not query.get("excludeLimitCheck"):
        raise RpcError(E_VALIDATION, "Limit exceeds 200")
    offset = int(query.get("offset") or 0)
    matched = [r for r in records if _match_condition(r, query.get("condition"))]
    page = matched[offset : offset + limit]
    result: dict[str, Any] = {"listOutput": [_project(r, query.get("what")) for r in page]}
    if query.get("getTotalCount"):
        result["totalCount"] = len(matched)
    return result


def _actonomy_email(query: dict[str, Any]) -> str | None:
    """The plugin's e-mail lookup: search.ACTONOMY.DATA.keywords.value = '"<email>"'."""
    data = (((query.get("search") or {}).get("ACTONOMY") or {}).get("DATA")) or {}
    keywords = data.get("keywords") or {}
    if "emailAddress" not in (keywords.get("options") or {}).get("searchList", []):
        return None
    return str(keywords.get("value", "")).strip().strip('"')


# ---------------------------------------------------------------------------------------------
# Validation of written objects


def _check_date(value: Any, name: str) -> None:
    try:
        dt.datetime.strptime(str(value), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise RpcError(E_VALIDATION, f"Invalid date for field {name}; expected Y-m-d H:i:s") from None


def _validate_candidate(state: OtysState, data: Any, *, creating: bool) -> None:
    if not isinstance(data, dict):
        raise RpcError(E_VALIDATION, "Invalid candidate data")
    person = data.get("Person") or {}
    if not isinstance(person, dict):
        raise RpcError(E_VALIDATION, "Invalid value for field Person")
    if creating:
        for key in ("firstName", "lastName", "emailPrimary"):
            if not person.get(key):
                raise RpcError(E_VALIDATION, f"Field Person.{key} is required")
    # the documented fields' types: text fields are strings, groups are objects (a wrong type is
    # OWS's validation error, never an internal one)
    for key in PERSON_TEXT_FIELDS:
        if key in person and not isinstance(person[key], str):
            raise RpcError(E_VALIDATION, f"Invalid value for field Person.{key}")
    email = person.get("emailPrimary")
    if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", str(email)):
        raise RpcError(E_VALIDATION, "Invalid value for field Person.emailPrimary")
    if "gender" in person and person["gender"] not in GENDERS:
        raise RpcError(E_VALIDATION, "Invalid value for field Person.gender")
    address = person.get("AddressPrimary") or {}
    if not isinstance(address, dict) or any(not isinstance(v, str) for v in address.values()):
        raise RpcError(E_VALIDATION, "Invalid value for field Person.AddressPrimary")
    code = address.get("countryCode")
    if code is not None and not re.fullmatch(r"[A-Z]{2}", str(code)):
        raise RpcError(E_VALIDATION, "Invalid value for field Person.AddressPrimary.countryCode")
    phones = person.get("PhoneNumbers") or {}
    if not isinstance(phones, dict):
        raise RpcError(E_VALIDATION, "Invalid value for field Person.PhoneNumbers")
    for slot, phone in phones.items():
        if slot == "DELETE":
            continue
        if (
            slot not in {"1", "2", "3", "4", "5"}
            or not isinstance(phone, dict)
            or not isinstance(phone.get("phoneNumber"), str)
            or not phone["phoneNumber"]
        ):
            raise RpcError(E_VALIDATION, "Invalid value for field Person.PhoneNumbers")
    if "availableAt" in data:
        _check_date(data["availableAt"], "availableAt")
    for key, value in data.items():
        if key.startswith("extraInfo") and not isinstance(value, str):
            raise RpcError(E_VALIDATION, f"Invalid value for field {key}; expected a string")
        if key in BOOLEAN_FIELDS and not isinstance(value, bool):
            raise RpcError(E_VALIDATION, f"Invalid value for field {key}; expected a boolean")
        if key.startswith("matchCriteria_"):
            _check_criterion(key, value)
    portal = data.get("portalId")
    if portal is not None and (not isinstance(portal, str) or portal not in state.portals):
        raise RpcError(E_VALIDATION, "Invalid value for field portalId")


def _check_criterion(key: str, value: Any) -> None:
    """``matchCriteria_N``: an object keyed by the criterion's option uids (plugin: ``{id: 1}``)."""
    try:
        options = MATCH_CRITERIA[int(key.removeprefix("matchCriteria_"))]
    except (ValueError, KeyError):
        raise RpcError(E_VALIDATION, f"Unknown field {key}") from None
    if not isinstance(value, dict) or not value:
        raise RpcError(E_VALIDATION, f"Invalid value for field {key}; expected an object of option ids")
    if any(k not in options or isinstance(v, bool) or not isinstance(v, int) for k, v in value.items()):
        raise RpcError(E_VALIDATION, f"Invalid option for field {key}")


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _apply_phone_update(person: dict[str, Any], patch: dict[str, Any]) -> None:
    """updateEx needs ``PhoneNumbers.DELETE`` (the plugin always sends it): the slots to drop."""
    phones = patch.get("PhoneNumbers")
    if phones is None:
        return
    if "DELETE" not in phones:
        raise RpcError(E_VALIDATION, "PhoneNumbers update requires DELETE")
    current = person.setdefault("PhoneNumbers", {})
    for slot in phones["DELETE"] or list(current):
        current.pop(str(slot), None)
    for slot, value in phones.items():
        if slot != "DELETE":
            current[slot] = value


# ---------------------------------------------------------------------------------------------
# The services


Handler = Callable[[OtysState, list[Any]], Any]


def _arg(args: list[Any], index: int, name: str) -> Any:
    if len(args) <= index:
        raise RpcError(-32602, f"Invalid params: missing {name}")
    return args[index]


def candidate_list(state: OtysState, args: list[Any]) -> Any:
    query = _arg(args, 0, "query")
    records = list(state.candidates.values())
    email = _actonomy_email(query) if isinstance(query, dict) else None
    if email is not None:
        now = time.time()
        records = [
            c
            for c in records
            if str(c["Person"].get("emailPrimary", "")).lower() == email.lower()
            and state.indexed_at.get(c["uid"], 0.0) <= now
        ]
    return _list_ex(records, query)


def candidate_add(state: OtysState, args: list[Any]) -> Any:
    data = _arg(args, 0, "candidate")
    _validate_candidate(state, data, creating=True)
    email = str(data["Person"]["emailPrimary"]).lower()
    if state.unique_email and any(
        str(c["Person"].get("emailPrimary", "")).lower() == email for c in state.candidates.values()
    ):
        # assumption: OTYS refuses a second candidate with the same primary e-mail
        raise RpcError(E_VALIDATION, "Duplicate candidate: e-mail address already exists")
    uid = _uid()
    record = json.loads(json.dumps(data))
    record.update(uid=uid, entryDateTime=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"))
    state.candidates[uid] = record
    state.indexed_at[uid] = time.time() + state.search_index_lag_s
    return uid


def _candidate(state: OtysState, uid: Any) -> dict[str, Any]:
    record = state.candidates.get(uid) if isinstance(uid, str) else None
    if record is None:
        raise RpcError(E_NOT_FOUND, "Candidate not found")
    return record


def candidate_update(state: OtysState, args: list[Any]) -> Any:
    record = _candidate(state, _arg(args, 0, "uid"))
    patch = _arg(args, 1, "data")
    _validate_candidate(state, patch, creating=False)
    patch = json.loads(json.dumps(patch))
    person_patch = patch.get("Person") or {}
    _apply_phone_update(record.setdefault("Person", {}), person_patch)
    person_patch.pop("PhoneNumbers", None)
    _merge(record, patch)
    return record["uid"]


def candidate_detail(state: OtysState, args: list[Any]) -> Any:
    record = _candidate(state, _arg(args, 0, "uid"))
    return _project(record, args[1] if len(args) > 1 else None)


def candidate_gdpr(state: OtysState, args: list[Any]) -> Any:
    uid = _arg(args, 0, "candidateUid")
    _candidate(state, uid)
    due = str(_arg(args, 1, "dueDate"))
    reason = _arg(args, 2, "reason")
    try:
        dt.date.fromisoformat(due)
    except ValueError:
        raise RpcError(E_VALIDATION, "Invalid due date") from None
    if reason not in ("otherYes", "cron"):
        raise RpcError(E_VALIDATION, "Invalid GDPR reason")
    state.gdpr[uid] = {"candidateUid": uid, "dueDate": due, "reason": reason, "flags": list(args[3:5])}
    return True


def candidate_option_lists(state: OtysState, args: list[Any]) -> Any:
    wanted = _arg(args, 0, "fields")
    out: dict[str, Any] = {}
    if "Person.gender" in wanted:
        out["Person.gender"] = [{"value": k, "label": v} for k, v in GENDERS.items()]
    if "Person.languageCode" in wanted:
        out["cmsLanguages"] = {"nl": "Nederlands", "en": "English"}
    return out


def _procedure_status(n: int, value: Any, state: OtysState) -> str:
    uid = value.get("uid") if isinstance(value, dict) else None
    prefix = f"{n}_"
    if not isinstance(uid, str) or not uid.startswith(prefix):
        raise RpcError(E_VALIDATION, f"Invalid value for field ProcedureStatus{n}")
    if uid[len(prefix) :] not in {s["uid"] for s in state.statuses[n]}:
        raise RpcError(E_VALIDATION, f"Unknown status for field ProcedureStatus{n}")
    return uid


def procedure_add(state: OtysState, args: list[Any]) -> Any:
    data = _arg(args, 0, "procedure")
    if not isinstance(data, dict):
        raise RpcError(E_VALIDATION, "Invalid procedure data")
    candidate = _candidate(state, data.get("candidateUid"))
    vacancy = state.vacancies.get(data.get("vacancyUid"))  # type: ignore[arg-type]
    if vacancy is None:
        raise RpcError(E_NOT_FOUND, "Vacancy not found")
    if vacancy["status"] != "open":
        raise RpcError(E_VALIDATION, "Vacancy is closed")
    for p in state.procedures.values():
        if p["candidateUid"] == candidate["uid"] and p["vacancyUid"] == vacancy["uid"]:
            raise RpcError(E_VALIDATION, "Duplicate procedure: candidate already applied on this vacancy")
    record: dict[str, Any] = {
        "uid": _uid(),
        "candidateUid": candidate["uid"],
        "vacancyUid": vacancy["uid"],
        "entryDateTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    for n in (1, 2, 3):
        key = f"ProcedureStatus{n}"
        if key in data:
            record[key] = {"uid": _procedure_status(n, data[key], state)}
        else:  # assumption: OTYS applies the option flagged "joined via website" when none is given
            auto = next((s for s in state.statuses[n] if s["automaticallySelectEvent"] == 1), None)
            if auto:
                record[key] = {"uid": f"{n}_{auto['uid']}"}
    killer = data.get("KillerQuestions")
    if killer is not None and (not isinstance(killer, list) or not all(isinstance(k, str) for k in killer)):
        raise RpcError(E_VALIDATION, "Invalid value for field KillerQuestions; expected a list of strings")
    for key in ("UtmTags", "KillerQuestions", "portalId"):
        if key in data:
            record[key] = data[key]
    state.procedures[record["uid"]] = record
    return record["uid"]


# AttachedDocumentsService.add's fields as documented (docs/connectors/otys.md)
DOCUMENT_FIELDS = frozenset(
    {
        "candidateUid",
        "fileUid",
        "subject",
        "typeId",
        "private",
        "customerRightsLevel",
        "alwaysOnTop",
        "description",
        "applicationUid",
    }
)


def _procedure(state: OtysState, uid: Any) -> dict[str, Any]:
    record = state.procedures.get(uid) if isinstance(uid, str) else None
    if record is None:
        raise RpcError(E_NOT_FOUND, "Procedure not found")
    return record


def procedure_update(state: OtysState, args: list[Any]) -> Any:
    record = _procedure(state, _arg(args, 0, "uid"))
    patch = _arg(args, 1, "data")
    for n in (1, 2, 3):
        key = f"ProcedureStatus{n}"
        if key in patch:
            record[key] = {"uid": _procedure_status(n, patch[key], state)}
    return record["uid"]


def status_list(n: int) -> Handler:
    def handler(state: OtysState, args: list[Any]) -> Any:
        return [dict(s) for s in state.statuses[n]]

    return handler


def vacancy_detail(state: OtysState, args: list[Any]) -> Any:
    uid = _arg(args, 0, "uid")
    record = state.vacancies.get(uid) if isinstance(uid, str) else None
    if record is None:
        raise RpcError(E_NOT_FOUND, "Vacancy not found")
    return _project(record, args[1] if len(args) > 1 else None)


def portal_add(state: OtysState, args: list[Any]) -> Any:
    data = _arg(args, 0, "portal")
    if not isinstance(data, dict) or not str(data.get("portal", "")).strip():
        raise RpcError(E_VALIDATION, "Field portal is required")
    name = str(data["portal"]).strip()
    if any(p["portal"].lower() == name.lower() for p in state.portals.values()):
        raise RpcError(E_VALIDATION, "Duplicate referrer portal")
    uid = _uid()
    state.portals[uid] = {
        "uid": uid,
        "portal": name,
        "domain": data.get("domain", ""),
        "alias1": data.get("alias1", ""),
        "alias2": "",
        "alias3": "",
        "originalId": None,
    }
    return uid


def document_add(state: OtysState, args: list[Any]) -> Any:
    data = _arg(args, 0, "document")
    if not isinstance(data, dict):
        raise RpcError(E_VALIDATION, "Invalid document data")
    unknown = set(data) - DOCUMENT_FIELDS
    if unknown:  # the documented fields only: a connector sending others must be caught here
        raise RpcError(E_VALIDATION, f"Unknown field {sorted(unknown)[0]}")
    candidate = _candidate(state, data.get("candidateUid"))
    file = state.files.get(data.get("fileUid"))  # type: ignore[arg-type]
    if file is None:
        raise RpcError(E_NOT_FOUND, "File not found")
    try:
        type_id = int(data.get("typeId", 201))
    except (TypeError, ValueError):
        type_id = -1
    if type_id not in DOCUMENT_TYPES:
        raise RpcError(E_VALIDATION, "Invalid value for field typeId")
    procedure_uid = data.get("applicationUid")
    if procedure_uid is not None:
        _procedure(state, procedure_uid)
    uid = _uid()
    state.documents[uid] = {
        "uid": uid,
        "candidateUid": candidate["uid"],
        "applicationUid": procedure_uid,
        "fileUid": file["ouid"],
        "subject": str(data.get("subject") or file["name"]),
        "description": str(data.get("description") or ""),
        "typeId": type_id,
        "fileName": file["name"],
        "fileSize": file["size"],
        "mimeType": file["type"],
        "sha256": file["sha256"],
        "private": data.get("private"),
        "entryDateTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    return uid


def document_list(state: OtysState, args: list[Any]) -> Any:
    public = [{k: v for k, v in d.items() if k != "sha256"} for d in state.documents.values()]
    return _list_ex(public, _arg(args, 0, "query"))


def qs_by_vacancy(state: OtysState, args: list[Any]) -> Any:
    vacancy = vacancy_detail(state, [_arg(args, 0, "vacancyUid")])
    return vacancy.get("qsId") or False


def qs_detail(state: OtysState, args: list[Any]) -> Any:
    uid = _arg(args, 0, "qsUid")
    record = state.questionsets.get(uid) if isinstance(uid, str) else None
    if record is None:
        raise RpcError(E_NOT_FOUND, "Questionset not found")
    return record


def check_session(state: OtysState, args: list[Any]) -> Any:
    return {"clientId": 4242, "clientCode": "SANDBOX", "defaultContentLanguage": "en", "username": "api"}


SERVICES: dict[str, Handler] = {
    "check": check_session,
    "Otys.Services.CandidateService.getListEx": candidate_list,
    "Otys.Services.CandidateService.add": candidate_add,
    "Otys.Services.CandidateService.update": candidate_update,
    "Otys.Services.CandidateService.updateEx": candidate_update,
    "Otys.Services.CandidateService.getDetail": candidate_detail,
    "Otys.Services.CandidateService.setGdprDueDatePartner": candidate_gdpr,
    "Otys.Services.CandidateService.getOptionLists": candidate_option_lists,
    "Otys.Services.ProcedureService.add": procedure_add,
    "Otys.Services.ProcedureService.update": procedure_update,
    "Otys.Services.ProcedureService.getListEx": lambda s, a: _list_ex(list(s.procedures.values()), _arg(a, 0, "q")),
    "Otys.Services.ProcedureService.getDetail": lambda s, a: _project(
        _procedure(s, _arg(a, 0, "uid")), a[1] if len(a) > 1 else None
    ),
    "Otys.Services.ProcedureStatus1Service.getList": status_list(1),
    "Otys.Services.ProcedureStatus2Service.getList": status_list(2),
    "Otys.Services.ProcedureStatus3Service.getList": status_list(3),
    "Otys.Services.VacancyService.getListEx": lambda s, a: _list_ex(list(s.vacancies.values()), _arg(a, 0, "q")),
    "Otys.Services.VacancyService.getDetail": vacancy_detail,
    "Otys.Services.ReferrerPortalService.getListEx": lambda s, a: _list_ex(list(s.portals.values()), _arg(a, 0, "q")),
    "Otys.Services.ReferrerPortalService.add": portal_add,
    "Otys.Services.AttachedDocumentsService.add": document_add,
    "Otys.Services.AttachedDocumentsService.getListEx": document_list,
    "Otys.Services.QuestionSetService.getVacancyQsIdByVacancyOuid": qs_by_vacancy,
    "Otys.Services.QuestionSetService.getDetail": qs_detail,
}


def execute(state: OtysState, request: Any) -> dict[str, Any]:
    """One JSON-RPC request object → one JSON-RPC response object (never raises)."""
    req_id = request.get("id") if isinstance(request, dict) else None
    try:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            raise RpcError(-32600, "Invalid Request")
        params = request.get("params", [])
        if not isinstance(params, list):
            raise RpcError(-32602, "Invalid params")
        result = _dispatch(state, request["method"], params)
    except RpcError as exc:
        return {"jsonrpc": "2.0", "id": req_id, "error": {"code": exc.code, "message": exc.message}}
    return {"jsonrpc": "2.0", "id": req_id, "result": result}


def _dispatch(state: OtysState, method: str, params: list[Any]) -> Any:
    with state.lock:
        state.calls[method] = state.calls.get(method, 0) + 1
        if method == "loginByUid":
            return state.login(_arg(params, 0, "apiKey"))
        if method == "Otys.Services.LanguageService.wrapRequest":
            inner = _arg(params, 1, "request")
            if not isinstance(inner, dict) or not isinstance(inner.get("method"), str):
                raise RpcError(-32600, "Invalid Request")
        else:
            inner = None
    if inner is not None:
        return _dispatch(state, inner["method"], inner.get("params") or [])
    with state.lock:
        if method == "logout":
            state.use_session(_arg(params, 0, "session"))
            state.sessions.pop(params[0], None)
            return True
        handler = SERVICES.get(method)
        if handler is None:
            raise RpcError(-32601, "Method not found")
        state.use_session(_arg(params, 0, "session"))
        return handler(state, params[1:])


# ---------------------------------------------------------------------------------------------
# RPC-level fault injection (all methods share one URL, so path faults cannot single one out)


class RpcFaultMiddleware:
    """Reads the JSON-RPC body, picks a fault by method name, replays the body to the route."""

    def __init__(self, app: ASGIApp, state: OtysState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # http.disconnect: no more body
            body += message.get("body", b"")
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        try:
            payload = json.loads(body or b"null")
            method = payload.get("method", "") if isinstance(payload, dict) else ""
            if method == "Otys.Services.LanguageService.wrapRequest":
                method = payload["params"][1]["method"]
        except (ValueError, KeyError, IndexError, TypeError):
            method = ""
        faults = self.state.rpc_faults
        action = faults.choose("POST", str(method))
        if action != "ok":
            faults.injected[action] = faults.injected.get(action, 0) + 1
        if action == "error":
            await _raw(send, faults.faults.error_status, b'{"error":"injected fault"}')
            return
        if action == "rate_limit":
            await _raw(
                send,
                429,
                b'{"error":"rate limited"}',
                [(b"retry-after", str(faults.faults.retry_after).encode())],
            )
            return
        if action == "session_expired":
            self.state.expire_sessions()
        if action == "drop":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
            raise ConnectionAbortedError("sandbox drop")
        if action in ("drop_after", "timeout_after"):
            held: list[Any] = []

            async def hold(message: Any) -> None:
                held.append(message)

            await self.app(scope, replay, hold)
            if action == "timeout_after":
                await asyncio.sleep(faults.faults.stall_s)
                for message in held:
                    await send(message)
                return
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
            raise ConnectionAbortedError("sandbox drop after processing")
        await self.app(scope, replay, send)


async def _raw(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers + (extra or []),
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)


# ---------------------------------------------------------------------------------------------
# The app


def create_app(api_key: str = "sandbox", **options: Any) -> Any:
    """Options: session_max_calls (int), search_index_lag_s (float), unique_email (bool),
    max_file_bytes (int), upload_faults (dict)."""
    state = OtysState(
        api_key=api_key,
        session_max_calls=options.get("session_max_calls"),
        search_index_lag_s=float(options.get("search_index_lag_s", 0.0)),
        unique_email=bool(options.get("unique_email", True)),
        max_file_bytes=int(options.get("max_file_bytes", 10_000_000)),
    )
    initial_upload_faults = options.get("upload_faults")

    def reset() -> None:
        state.reset()
        if initial_upload_faults:
            state.upload_faults = msgspec.convert(initial_upload_faults, UploadFaults)

    reset()

    def rpc_middleware(app: ASGIApp) -> ASGIApp:
        return RpcFaultMiddleware(app, state)

    @post("/jservice.php", status_code=200, middleware=[rpc_middleware], sync_to_thread=False)
    def jservice(body: bytes) -> Response[Any]:
        try:
            payload = json.loads(body)
        except ValueError:
            return Response({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}})
        if isinstance(payload, list):  # JSON-RPC batch
            return Response([execute(state, item) for item in payload])
        return Response(execute(state, payload))

    @post("/fileService.php", status_code=200)
    async def file_service(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        upload = form.get("file")
        session = form.get("sessionId")
        try:
            with state.lock:
                state.calls["fileService"] = state.calls.get("fileService", 0) + 1
                state.use_session(str(session).strip() if session is not None else None)
            if upload is None or not hasattr(upload, "read"):
                raise RpcError(E_VALIDATION, "No file uploaded")
            data = await upload.read()
            name = upload.filename or "file"
            content_type = upload.content_type or "application/octet-stream"
            if len(data) > state.max_file_bytes:
                raise RpcError(E_FILE_TOO_LARGE, "File exceeds the maximum file size")
            with state.lock:
                if state.upload_faults.matches(name, content_type, len(data)):
                    raise RpcError(E_FILE_REJECTED, "File type not allowed")
                ouid = _uid()
                state.files[ouid] = {
                    "ouid": ouid,
                    "name": name,
                    "type": content_type,
                    "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
        except RpcError as exc:
            # assumption: fileService.php answers errors like jservice.php (HTTP 200, error object)
            return Response({"error": {"code": exc.code, "message": exc.message}})
        return Response({"file": {"ouid": ouid, "name": name, "size": len(data), "type": content_type}})

    @post("/_sandbox/otys/expire-sessions", status_code=200, sync_to_thread=False)
    def expire_sessions() -> dict[str, int]:
        with state.lock:
            return {"expired": state.expire_sessions()}

    @post("/_sandbox/otys/vacancies/{vacancy_uid:str}/questions", status_code=201, sync_to_thread=False)
    def add_question(vacancy_uid: str, data: dict[str, Any]) -> Response[Any]:
        """Sandbox only: a recruiter adds a question to the vacancy's questionset (one is created
        for a vacancy without). Body: ``{"question", "type", "fieldName", "subtype"?, "id"?,
        "mandatory"?, "answers"?: [[uid, label]...]}``."""
        with state.lock:
            vacancy = state.vacancies.get(vacancy_uid)
            if vacancy is None:
                return Response({"error": "vacancy not found"}, status_code=404)
            if not all(isinstance(data.get(k), str) for k in ("question", "type", "fieldName")):
                return Response({"error": "question, type and fieldName are required"}, status_code=422)
            qs_uid = vacancy.get("qsId")
            if not qs_uid:
                qs_uid = vacancy["qsId"] = f"qs-{vacancy['internalId']}"
                state.questionsets[qs_uid] = {"uid": qs_uid, "name": "Added", "Pages": [{"Questions": {}}]}
            pages = state.questionsets[qs_uid]["Pages"]
            qid = str(data.get("id") or 900 + sum(len(p["Questions"]) for p in pages))
            item = _question(
                qid,
                data["question"],
                data["type"],
                data["fieldName"],
                bool(data.get("mandatory", False)),
                [tuple(a) for a in data.get("answers", [])],
            )
            if data.get("subtype"):
                item["subtype"] = data["subtype"]
            pages[-1]["Questions"][qid] = item
            vacancy["lastModified"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        return Response(item, status_code=201)

    @post("/_sandbox/otys/upload-faults", status_code=200, sync_to_thread=False)
    def set_upload_faults(data: UploadFaults) -> dict[str, Any]:
        state.upload_faults = data
        return msgspec.to_builtins(data)

    @delete("/_sandbox/otys/upload-faults", status_code=204, sync_to_thread=False)
    def clear_upload_faults() -> None:
        state.upload_faults = UploadFaults()

    @post("/_sandbox/otys/rpc-faults", status_code=200, sync_to_thread=False)
    def set_rpc_faults(data: Faults) -> dict[str, Any]:
        state.rpc_faults.set(data)
        return msgspec.to_builtins(data)

    @delete("/_sandbox/otys/rpc-faults", status_code=204, sync_to_thread=False)
    def clear_rpc_faults() -> None:
        state.rpc_faults.set(Faults())

    def records() -> dict[str, Any]:
        data = state.records()
        data["rpc_faults_injected"] = dict(state.rpc_faults.injected)
        return data

    def full_reset() -> None:
        reset()
        state.rpc_faults.injected.clear()

    app = sandbox_app(
        name="otys",
        routes=[
            jservice,
            file_service,
            expire_sessions,
            add_question,
            set_upload_faults,
            clear_upload_faults,
            set_rpc_faults,
            clear_rpc_faults,
        ],
        records=records,
        reset=full_reset,
    )
    app.state.otys = state  # tests and the demo may reach the state directly
    return app
