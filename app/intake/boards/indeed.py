"""Indeed Apply: the JSON Indeed posts to a job's `postUrl`, verified and mapped to the canonical
application (docs/inbound.md).

Connection settings:
    indeed_secret_env = "ACME_INDEED_SECRET"   # the API secret's variable; unset → route answers 404
    indeed_jobs = { "REQ-1234" = "2001" }      # Indeed job id → ATS job id (optional; unlisted → 404)
    indeed_job_field = "jobId"                 # or "jobMeta": which job field selects the ATS job
    indeed_questions = { "q_years" = "3002" }  # Indeed question id → ATS question id (optional)
    indeed_source_name = "Indeed"              # the source written into the ATS
    indeed_max_body_bytes = 25_000_000         # the body limit on this route (CVs come inline)

Status codes follow Indeed's contract: 400 missing key, 401 signature, 404 unknown job, 409
duplicate, 410 closed job, 413 too large, 422 unprocessable; 2xx only once stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Any

import msgspec
from msgspec import Struct

from app.catalog import Catalog
from app.config import Connection
from app.core.catalog import ScreeningQuestion
from app.core.model import Origin
from app.core.problems import FieldError, Problem
from app.core.text import html_to_text
from app.intake import decode
from app.intake.boards.draft import (
    Draft,
    FileValue,
    check_answer_count,
    check_file_size,
    clean_phone,
    empty_file,
    file_name,
    split_name,
)
from app.intake.boards.questions import BoardAnswer, QuestionMapper
from app.intake.decode import decode_base64
from app.intake.screening import read_job
from connectors.base import Connector, StepWarning

SIGNATURE_HEADER = "x-indeed-signature"
DEFAULT_MAX_BODY = 25_000_000
MAX_ANSWER_CHARS = 20_000


def sign(body: bytes, secret: str) -> str:
    """base64(HMAC-SHA1(key = the API secret as UTF-8, message = the raw body))."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()


def verify(body: bytes, presented: str | None, secret: str | Sequence[str]) -> None:
    """Constant-time; a missing or wrong signature is a 401 (Indeed's contract). Several secrets:
    a rotation's grace (docs/connections.md, "Inbound secrets"), each one compared, no early exit."""
    if not presented:
        raise Problem(
            401, "Unauthorized", f"{SIGNATURE_HEADER} header is missing", [FieldError(SIGNATURE_HEADER, "missing")]
        )
    signature = presented.strip().encode()
    candidates = [secret] if isinstance(secret, str) else secret
    if not any([hmac.compare_digest(signature, sign(body, s).encode()) for s in candidates]):
        raise Problem(
            401,
            "Unauthorized",
            f"{SIGNATURE_HEADER} does not match the body",
            [FieldError(SIGNATURE_HEADER, "does not match")],
        )


# -- the body (lenient: unknown fields ignored, every field optional, required keys checked after) -


class IndeedFile(Struct):
    fileName: str | None = None
    contentType: str | None = None
    data: str | None = None


class IndeedResume(Struct):
    file: IndeedFile | None = None
    text: str | None = None
    html: str | None = None


class IndeedApplicant(Struct):
    fullName: str | None = None
    firstName: str | None = None
    lastName: str | None = None
    email: str | None = None
    phoneNumber: str | None = None
    coverletter: str | None = None
    resume: IndeedResume | None = None


class IndeedJob(Struct):
    jobId: str | int | None = None
    jobKey: str | None = None
    jobTitle: str | None = None
    jobMeta: str | None = None


class IndeedApply(Struct):
    id: str | None = None
    appliedOnMillis: int | None = None
    locale: str | None = None
    job: IndeedJob | None = None
    applicant: IndeedApplicant | None = None
    screenerQuestionsAndAnswers: Any = None
    questionsAndAnswers: Any = None
    questions: Any = None
    demographicQuestionsAndAnswers: Any = None


_decoder = msgspec.json.Decoder(IndeedApply)


def parse(body: bytes) -> IndeedApply:
    try:
        apply = _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise decode.invalid(exc) from None  # the board's own field named, as msgspec found it
    except msgspec.DecodeError as exc:
        raise Problem.malformed_json(str(exc)) from None
    if not apply.id or not apply.id.strip():
        raise _missing("id")
    if len(apply.id) > 200 or not apply.id.isprintable():
        raise Problem.invalid("id", "must be at most 200 printable characters")
    if apply.applicant is None:
        raise _missing("applicant")
    if not (apply.applicant.email or "").strip():
        raise _missing("applicant.email")
    if not (apply.applicant.fullName or "").strip() and not (apply.applicant.firstName or "").strip():
        raise _missing("applicant.fullName")
    return apply


def _missing(path: str) -> Problem:
    return Problem(400, "Missing required key", f"{path}: required", [FieldError(path, "required")])


# -- job ----------------------------------------------------------------------------------------


def ats_job_id(apply: IndeedApply, connection: Connection) -> tuple[str, str]:
    """(ATS job id, the Indeed field it came from)."""
    preferred = connection.inbound.indeed_job_field
    order = ["jobMeta"] if preferred == "jobMeta" else ["jobId", "jobMeta"]
    job = apply.job or IndeedJob()
    value, source = None, f"job.{order[0]}"
    for name in order:
        raw = getattr(job, name)
        if raw is not None and str(raw).strip():
            value, source = str(raw).strip(), f"job.{name}"
            break
    if value is None:
        raise _missing(source)
    mapping = connection.inbound.indeed_jobs
    if mapping:
        if value not in mapping:
            raise Problem(
                404,
                "Unknown job",
                f"{source}: not a job this connection takes applications for",
                [FieldError(source, "unknown job")],
            )
        return str(mapping[value]), source
    if len(value) > 200:
        raise Problem.invalid(source, "longer than 200 characters")
    return value, source


# -- answers ------------------------------------------------------------------------------------


def board_answers(apply: IndeedApply, connection: Connection) -> list[BoardAnswer]:
    """Answers from all three containers Indeed has used, current first; demographic answers
    (EEO data) only where the connection maps their ids explicitly."""
    answers: list[BoardAnswer] = []
    for path, container in (
        ("screenerQuestionsAndAnswers", apply.screenerQuestionsAndAnswers),
        ("questionsAndAnswers", apply.questionsAndAnswers),
        ("questions", apply.questions),
    ):
        answers.extend(_container(path, container, connection))
    explicit = connection.inbound.indeed_questions
    for answer in _container("demographicQuestionsAndAnswers", apply.demographicQuestionsAndAnswers, connection):
        if answer.board_id in explicit:
            answers.append(answer)
    check_answer_count(len(answers), "screenerQuestionsAndAnswers")
    return answers


def _container(path: str, container: Any, connection: Connection) -> list[BoardAnswer]:
    if container is None:
        return []
    items = container
    if isinstance(container, dict):
        items = container.get("questionsAndAnswers")
        path += ".questionsAndAnswers"
        if items is None:
            return []
    if not isinstance(items, list):
        raise Problem.invalid(path, "must be a list of question and answer pairs")
    check_answer_count(len(items), path)
    out = []
    for i, item in enumerate(items):
        answer = _item(f"{path}[{i}]", item, connection)
        if answer is not None:
            out.append(answer)
    return out


def _item(path: str, item: Any, connection: Connection) -> BoardAnswer | None:
    if not isinstance(item, dict):
        raise Problem.invalid(path, "must be an object with question and answer")
    question = item.get("question")
    if isinstance(question, dict):
        qid, text = question.get("id"), question.get("question") or question.get("label") or question.get("text")
    else:
        qid, text = item.get("id"), question
    qid = str(qid) if isinstance(qid, str | int) and not isinstance(qid, bool) and str(qid) else None
    text = text if isinstance(text, str) else None
    value = _value(f"{path}.answer", item.get("answer"), connection)
    if value is None:
        return None
    return BoardAnswer(path=path, board_id=qid, text=text, value=value)


def _value(path: str, value: Any, connection: Connection) -> Any:
    """Every answer shape Indeed sends: text, {value,label}, a list of those, a file."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if not value.strip():
            return None  # an unanswered optional question
        if len(value) > MAX_ANSWER_CHARS:
            raise Problem.invalid(path, f"longer than {MAX_ANSWER_CHARS} characters")
        return value
    if isinstance(value, dict):
        if "data" in value:
            return _file(path, value.get("fileName"), value.get("contentType"), value.get("data"), connection)
        if "value" in value or "label" in value:
            return _option(path, value)
        raise Problem.invalid(path, "an object answer needs value/label, or fileName/data for a file")
    if isinstance(value, list):
        chosen = []
        for i, entry in enumerate(value):
            if isinstance(entry, dict):
                chosen.append(_option(f"{path}[{i}]", entry))
            elif isinstance(entry, str | int) and not isinstance(entry, bool):
                chosen.append((str(entry), str(entry)))
            else:
                raise Problem.invalid(f"{path}[{i}]", "must be an option {value, label} or text")
        return chosen or None
    raise Problem.invalid(path, "unsupported answer type")


def _option(path: str, value: dict[str, Any]) -> tuple[str, str]:
    raw_value, label = value.get("value"), value.get("label")
    if not all(v is None or (isinstance(v, str | int | float) and not isinstance(v, bool)) for v in (raw_value, label)):
        raise Problem.invalid(path, "value and label must be text")
    text_value = "" if raw_value is None else str(raw_value)
    text_label = text_value if label is None else str(label)
    if not text_value and not text_label:
        raise Problem.invalid(path, "an option needs a value or a label")
    return text_value, text_label


def _file(path: str, name: Any, content_type: Any, data: Any, connection: Connection) -> FileValue:
    if not isinstance(data, str) or not data.strip():
        raise Problem.invalid(f"{path}.data", "must be base64 text")
    if (name is not None and not isinstance(name, str)) or (
        content_type is not None and not isinstance(content_type, str)
    ):
        raise Problem.invalid(path, "fileName and contentType must be text")
    check_file_size(len(data) * 3 // 4 - 3, connection, f"{path}.data")
    raw = decode_base64(data, f"{path}.data")  # lenient: whitespace, missing padding, url-safe alphabet
    check_file_size(len(raw), connection, f"{path}.data")
    if not raw:
        raise Problem.invalid(f"{path}.data", "the file is empty")
    return FileValue(name=name, content_type=content_type, data=raw)


# -- the canonical application --------------------------------------------------------------------


FIELD_NAMES = {
    "origin.board_application_id": "id",  # the idempotency key it makes (accept.key_field)
    "candidate.first_name": "applicant.firstName",
    "candidate.last_name": "applicant.lastName",
    "candidate.email_address": "applicant.email",
    "candidate.phone_number": "applicant.phoneNumber",
    "application.job_id": "job.jobId",
    "source.name": "indeed_source_name",
}


async def to_application(
    apply: IndeedApply, connection: Connection, connector: Connector, job_id: str, catalog: Catalog
) -> tuple[Draft, Origin, list[StepWarning]]:
    """The draft application (`.build()` validates it; `.rename()` names intake's refusals
    in Indeed's terms), where it came from, and what could not be mapped."""
    notes: list[StepWarning] = []
    applicant = apply.applicant
    assert applicant is not None
    first, last = (applicant.firstName or "").strip(), (applicant.lastName or "").strip()
    if not first or not last:
        full = next((n for n in (applicant.fullName, f"{first} {last}") if n and n.strip()), "")
        full_first, full_last = split_name(full)
        first, last = first or full_first, last or full_last
    candidate = {
        "first_name": first,
        "last_name": last,
        "email_address": (applicant.email or "").strip(),
        "phone_number": clean_phone(applicant.phoneNumber, notes, "applicant.phoneNumber"),
    }
    draft = Draft(
        connection_id=connection.id,
        job_id=job_id,
        candidate=candidate,
        field_names=FIELD_NAMES,
        source={"name": connection.inbound.indeed_source_name},
    )
    resume = applicant.resume
    if resume is not None and resume.file is not None and resume.file.data:
        value = _file(
            "applicant.resume.file", resume.file.fileName, resume.file.contentType, resume.file.data, connection
        )
        draft.add_attachment(
            file_name(value, "resume", "applicant.resume.file"),
            "CV",
            value.content_type,
            value.data,
            "applicant.resume.file",
        )
    elif resume is not None:
        # the text resume, else the HTML one (a whitespace-only text no longer hides the HTML)
        if resume.text and resume.text.strip():
            draft.add_attachment("resume.txt", "CV", "text/plain", resume.text.encode(), "applicant.resume")
        elif resume.html and resume.html.strip():
            # as text: HTML is refused as a file (app/core/files.py), and an ATS may render it
            plain = html_to_text(resume.html).encode()
            draft.add_attachment("resume.txt", "CV", "text/plain", plain, "applicant.resume")
        elif resume.file is not None:  # a file without its bytes, and no text in its place
            raise empty_file("applicant.resume.file.data")
    if (applicant.coverletter or "").strip():
        draft.add_attachment(
            "cover_letter.txt",
            "COVER_LETTER",
            "text/plain",
            (applicant.coverletter or "").encode(),
            "applicant.coverletter",
        )
    explicit = connection.inbound.indeed_questions
    mapper = QuestionMapper(explicit, lambda: job_questions(catalog, connector, connection.id, job_id), "Indeed")
    mapped = await mapper.map(board_answers(apply, connection), notes)
    for qid, value, path in mapped:
        draft.add_answer(qid, _canonical_answer(value), path)
    origin = Origin(channel="indeed", received_at=time.time(), board="indeed", board_application_id=apply.id)
    return draft, origin, notes


async def job_questions(
    catalog: Catalog, connector: Connector, connection_id: str, job_id: str
) -> list[ScreeningQuestion]:
    """The job's questions from the catalog's cache ([] when they cannot be read now)."""
    read = await read_job(catalog, connector, connection_id, job_id, "job.jobId")
    return read.questions or []


def _canonical_answer(value: Any) -> Any:
    if isinstance(value, FileValue):
        return value
    if isinstance(value, tuple):
        return value[1] or value[0]
    return value
