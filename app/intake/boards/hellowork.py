"""HelloWork ATS Partner: the JSON HelloWork posts for each application ("réception des
candidatures"), authenticated by an API key, mapped to the canonical application
(docs/boards.md).

Connection settings:
    hellowork_secret_env = "ACME_HELLOWORK_KEY"   # the API key's variable; unset → route answers 404
    hellowork_key_header = "X-Api-Key"            # HelloWork's page does not name the header
    hellowork_questions = { "q1" = "3002" }       # HelloWork question id → ATS question id (optional)
    hellowork_source_name = "HelloWork"           # the source written into the ATS
    hellowork_status_hosts = ["ats-partner.hellowork.com"]   # where statusApiUrl may point

HelloWork documents no status codes: they follow Indeed's route (400 missing key, 401 key,
404 unknown job, 410 closed job, 413 too large, 422 unprocessable; Kombo's codes, README "Error
codes"), except that a resend is answered 202 with the same delivery (`"duplicate": true`):
HelloWork gives 409 no meaning, so a 2xx is the answer that cannot make it resend forever.
"""

from __future__ import annotations

import hmac
import math
import re
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import msgspec
from msgspec import Struct

from app.catalog import Catalog
from app.config import Connection
from app.core.answers import AMBIGUOUS_NUMBER, ambiguous_number, number_from_text
from app.core.catalog import ScreeningQuestion
from app.core.model import INT64_MAX, INT64_MIN, Origin
from app.core.problems import FieldError, Problem
from app.intake import decode
from app.intake.boards.draft import (
    Draft,
    FileValue,
    check_answer_count,
    check_file_size,
    clean_phone,
    empty_file,
    file_name,
)
from app.intake.boards.questions import BoardAnswer, QuestionMapper
from app.intake.decode import decode_base64
from app.intake.screening import read_job
from app.net import ssrf
from connectors.base import Connector, StepWarning

DEFAULT_MAX_BODY = 25_000_000
MAX_ANSWER_CHARS = 20_000
QUESTION_TYPES = frozenset({"text", "textarea", "number", "select", "multiselect", "boolean", "date"})
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def verify(presented: str | None, secret: str | Sequence[str], header: str) -> None:
    """Constant-time; a missing or wrong key is a 401. Several keys: a rotation's grace
    (docs/connections.md, "Inbound secrets"), each one compared, no early exit."""
    if not presented:
        raise Problem(401, "Unauthorized", f"{header} header is missing", [FieldError(header, "missing")])
    key = presented.strip().encode()
    candidates = [secret] if isinstance(secret, str) else secret
    if not any([hmac.compare_digest(key, s.encode()) for s in candidates]):
        raise Problem(401, "Unauthorized", f"{header} is not the API key", [FieldError(header, "does not match")])


# -- the body (lenient: unknown fields ignored, required keys checked after) ----------------------


class HwFile(Struct):
    fileName: str | None = None
    contentType: str | None = None
    data: str | None = None


class HwResume(Struct):
    file: HwFile | None = None


class HwApplicant(Struct):
    firstName: str | None = None
    lastName: str | None = None
    email: str | None = None
    phoneNumber: str | None = None


class HwJob(Struct):
    jobId: str | int | None = None
    jobAtsUrl: str | None = None


class HwApplication(Struct):
    applicationId: str | int | None = None
    job: HwJob | None = None
    applicant: HwApplicant | None = None
    resume: HwResume | None = None
    source: Any = None
    statusApiUrl: str | None = None
    screenerQuestions: Any = None


_decoder = msgspec.json.Decoder(HwApplication)


def parse(body: bytes) -> HwApplication:
    try:
        application = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise decode.invalid(exc) from None  # the board's own field named, as msgspec found it
    except msgspec.DecodeError as exc:
        raise Problem.malformed_json(str(exc)) from None
    app_id = application_id(application)
    if not app_id:
        raise _missing("applicationId")
    if len(app_id) > 200 or not app_id.isprintable():
        raise Problem.invalid("applicationId", "must be at most 200 printable characters")
    applicant = application.applicant
    if applicant is None:
        raise _missing("applicant")
    for name in ("email", "firstName", "lastName"):
        if not (getattr(applicant, name) or "").strip():
            raise _missing(f"applicant.{name}")
    job = application.job
    if job is None or job.jobId is None or not str(job.jobId).strip():
        raise _missing("job.jobId")
    if len(str(job.jobId)) > 200:
        raise Problem.invalid("job.jobId", "longer than 200 characters")
    return application


def application_id(application: HwApplication) -> str:
    raw = application.applicationId
    return "" if raw is None or isinstance(raw, bool) else str(raw).strip()


def _missing(path: str) -> Problem:
    return Problem(400, "Missing required key", f"{path}: required", [FieldError(path, "required")])


# -- the status URL --------------------------------------------------------------------------------


def status_url(application: HwApplication, connection: Connection, notes: list[StepWarning]) -> str | None:
    """The `statusApiUrl` to report to, when it passes the SSRF guard's static check and its host
    is one HelloWork's of this connection (`hellowork_status_hosts`); else the URL HelloWork's
    docs say can be rebuilt from the application id, with a warning."""
    url = (application.statusApiUrl or "").strip()
    hosts = connection.inbound.hellowork_status_hosts
    if url:
        try:
            ssrf.check_url(url, allow_hosts=hosts, allow_http=connection.fetch_allow_http)
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            if host in hosts or f"{host}:{parts.port}" in hosts:
                return url
            reason = "its host is not in hellowork_status_hosts"
        except ssrf.UnsafeURL as exc:
            reason = str(exc)
        notes.append(
            StepWarning("status_url_refused", f"statusApiUrl not used ({reason}); status goes to the default URL")
        )
    template = connection.inbound.hellowork_status_url
    return template.replace("{applicationId}", application_id(application)) if template else None


# -- answers ---------------------------------------------------------------------------------------


def board_answers(application: HwApplication) -> list[BoardAnswer]:
    questions = application.screenerQuestions
    if questions is None:
        return []
    if not isinstance(questions, list):
        raise Problem.invalid("screenerQuestions", "must be a list of questions")
    check_answer_count(len(questions), "screenerQuestions")
    out = []
    for i, item in enumerate(questions):
        path = f"screenerQuestions[{i}]"
        if not isinstance(item, dict):
            raise Problem.invalid(path, "must be an object with id, type and answer")
        answer = _answer(path, item)
        if answer is not None:
            out.append(answer)
    return out


def _answer(path: str, item: dict[str, Any]) -> BoardAnswer | None:
    qid, kind, text = item.get("id"), item.get("type"), item.get("question")
    qid = str(qid) if isinstance(qid, str | int) and not isinstance(qid, bool) and str(qid) else None
    text = text if isinstance(text, str) else None
    if kind is not None and kind not in QUESTION_TYPES:
        raise Problem.invalid(f"{path}.type", f"must be one of {', '.join(sorted(QUESTION_TYPES))}")
    value = item.get("answer")
    where = f"{path}.answer"
    if value is None or (isinstance(value, str) and not value.strip()) or value == []:
        return None  # an unanswered optional question
    labels = _labels(path, item.get("options"))
    if kind == "boolean":
        value = _boolean(where, value)
    elif kind == "number":
        value = _number(where, value)
    elif kind == "date":
        if not isinstance(value, str) or not _DATE.match(value.strip()):
            raise Problem.invalid(where, "a date answer is YYYY-MM-DD")
        value = value.strip()
    elif kind == "select":
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        value = _option(where, value, labels)
    elif kind == "multiselect":
        chosen = value if isinstance(value, list) else [value]
        value = [_option(f"{where}[{n}]", v, labels) for n, v in enumerate(chosen)]
    else:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise Problem.invalid(where, "a text answer is a string")
        value = str(value)
        if len(value) > MAX_ANSWER_CHARS:
            raise Problem.invalid(where, f"longer than {MAX_ANSWER_CHARS} characters")
    return BoardAnswer(path=path, board_id=qid, text=text, value=value)


def _labels(path: str, options: Any) -> dict[str, str]:
    if options is None:
        return {}
    if not isinstance(options, list):
        raise Problem.invalid(f"{path}.options", "must be a list of {value, label}")
    labels = {}
    for option in options:
        if isinstance(option, dict) and option.get("value") is not None:
            labels[str(option["value"])] = str(option.get("label") or option["value"])
    return labels


def _option(where: str, value: Any, labels: dict[str, str]) -> tuple[str, str]:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise Problem.invalid(where, "an option answer is the option's value")
    text = str(value)
    return text, labels.get(text, text)


def _boolean(where: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "oui", "non", "yes", "no", "1", "0"):
        return value.strip().lower() in ("true", "oui", "yes", "1")
    raise Problem.invalid(where, "a boolean answer is true or false")


def _number(where: str, value: Any) -> int | float:
    """A number answer, sent as a JSON number or as text (app/core/answers.py reads the text):
    finite, and an int within 64 bits, as every ATS field and our stored answer hold it."""
    if isinstance(value, bool):
        number: int | float | None = None
    elif isinstance(value, int):
        number = value if INT64_MIN <= value <= INT64_MAX else None
    elif isinstance(value, float):
        number = value if math.isfinite(value) else None
    elif isinstance(value, str):
        number = number_from_text(value)
    else:
        number = None
    if number is None and isinstance(value, str) and ambiguous_number(value):
        raise Problem.invalid(where, f"a number answer {AMBIGUOUS_NUMBER}")
    if number is None:
        raise Problem.invalid(where, "a number answer is a finite number (an integer within 64 bits)")
    return number


# -- the canonical application ---------------------------------------------------------------------


FIELD_NAMES = {
    "origin.board_application_id": "applicationId",  # the idempotency key it makes (accept.key_field)
    "candidate.first_name": "applicant.firstName",
    "candidate.last_name": "applicant.lastName",
    "candidate.email_address": "applicant.email",
    "candidate.phone_number": "applicant.phoneNumber",
    "application.job_id": "job.jobId",
    "source.name": "hellowork_source_name",
}


async def to_application(
    application: HwApplication, connection: Connection, connector: Connector, job_id: str, catalog: Catalog
) -> tuple[Draft, Origin, list[StepWarning]]:
    """The draft application, where it came from, and what could not be mapped."""
    notes: list[StepWarning] = []
    applicant = application.applicant
    assert applicant is not None
    candidate = {
        "first_name": (applicant.firstName or "").strip(),
        "last_name": (applicant.lastName or "").strip(),
        "email_address": (applicant.email or "").strip(),
        "phone_number": clean_phone(applicant.phoneNumber, notes, "applicant.phoneNumber"),
    }
    draft = Draft(
        connection_id=connection.id,
        job_id=job_id,
        candidate=candidate,
        field_names=FIELD_NAMES,
        source={"name": connection.inbound.hellowork_source_name},
    )
    resume = application.resume.file if application.resume is not None else None
    if resume is not None and resume.data and resume.data.strip():
        check_file_size(len(resume.data) * 3 // 4 - 3, connection, "resume.file.data")
        data = decode_base64(resume.data, "resume.file.data")
        check_file_size(len(data), connection, "resume.file.data")
        value = FileValue(name=resume.fileName, content_type=resume.contentType, data=data)
        draft.add_attachment(file_name(value, "cv", "resume.file"), "CV", value.content_type, value.data, "resume.file")
    elif resume is not None:  # `resume.file` sent, without its bytes
        raise empty_file("resume.file.data")
    mapper = QuestionMapper(
        connection.inbound.hellowork_questions,
        lambda: job_questions(catalog, connector, connection.id, job_id),
        "HelloWork",
    )
    for qid, value, path in await mapper.map(board_answers(application), notes):
        draft.add_answer(qid, _canonical_answer(value), path)
    origin = Origin(
        channel="hellowork",
        received_at=time.time(),
        board="hellowork",
        board_application_id=application_id(application),
    )
    return draft, origin, notes


async def job_questions(
    catalog: Catalog, connector: Connector, connection_id: str, job_id: str
) -> list[ScreeningQuestion]:
    """The job's questions from the catalog's cache ([] when they cannot be read now)."""
    read = await read_job(catalog, connector, connection_id, job_id, "job.jobId")
    return read.questions or []


def _canonical_answer(value: Any) -> Any:
    if isinstance(value, tuple):
        return value[1] or value[0]
    return value


def report_context(application: HwApplication) -> dict[str, Any]:
    """What the status pushes echo back (`source`, as HelloWork sent it: a board name or a
    structure naming the product, no candidate data)."""
    source = application.source
    if not isinstance(source, str | dict) or len(msgspec.json.encode(source)) > 2000:
        source = None
    return {"source": source}
