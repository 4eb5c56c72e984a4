"""What the inbound formats share to build a validated canonical application from board data:
names, phones and text, files, the Draft that collects them, and the job check. Secrets are in
secrets.py, screening questions in questions.py.

Connection settings used here (flat keys in the connection's TOML table):
    <route>_secret_env / form_token_env   the *name* of the variable holding the secret(s)
    inbound_job_check = true               ask the ATS whether the job exists and is open (404/410)
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from app.catalog import JOB_NOT_FOUND, Catalog
from app.config import Connection
from app.core import files
from app.core.catalog import READ_JOBS
from app.core.model import LIMIT_EXCEEDED, MAX_ANSWERS, ApplicationIn
from app.core.problems import FieldError, Problem
from app.delivery.staging import StagedFile
from app.intake import decode, screening
from connectors.base import ConnectorError, StepWarning

ATS_READ_TIMEOUT_S = 2.0
_PHONE_RE = re.compile(r"^[+0-9 ().\-/]{3,40}$")
EXTENSIONS = {
    "application/pdf": ".pdf",
    "application/msword": ".doc",
    files.DOCX: ".docx",
    files.ODT: ".odt",
    "application/rtf": ".rtf",
    "text/plain": ".txt",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/tiff": ".tif",
}


# -- people -------------------------------------------------------------------------------------


def split_name(full: str) -> tuple[str, str]:
    """First word is the first name, the rest the last name ("Ana van der Berg" → "Ana",
    "van der Berg"); a single word fills both (the canonical model needs two non-empty names)."""
    words = full.split()
    if not words:
        return "", ""
    if len(words) == 1:
        return words[0], words[0]
    return words[0], " ".join(words[1:])


def clean_phone(phone: str | None, notes: list[StepWarning], where: str) -> str | None:
    """A phone the canonical model cannot hold (letters, "ext.") is dropped with a warning rather
    than refusing the application over it."""
    if phone is None or not phone.strip():
        return None
    phone = phone.strip()
    if _PHONE_RE.match(phone):
        return phone
    notes.append(StepWarning("phone_dropped", f"{where}: not a phone number the ATS can take; not sent"))
    return None


def normalise_text(text: str) -> str:
    """Question texts compared loosely: case, accents, punctuation and spacing ignored."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^\w]+", " ", stripped).split())


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "on", "yes", "y")


# -- files --------------------------------------------------------------------------------------


@dataclass
class FileValue:
    """A file already decoded to bytes, or streamed to the blob store (name kept exactly as the
    sender wrote it)."""

    name: str | None
    content_type: str | None
    data: bytes | StagedFile


def file_name(value: FileValue, default_stem: str, field_path: str) -> str:
    """The sender's name, or `<stem><extension of the real type>` when it gave none."""
    if value.name and value.name.strip():
        return value.name
    try:
        actual = value.data.sniff() if isinstance(value.data, StagedFile) else files.sniff(value.data)
    except files.FileRejected as exc:
        raise Problem(
            422, "Invalid application", f"{field_path}: {exc}", [FieldError(field_path, str(exc))], exc.code
        ) from None
    return default_stem + EXTENSIONS.get(actual, "")


def empty_file(field_path: str) -> Problem:
    """A board's file object that carries no bytes (and nothing in its place): refused as the
    canonical API refuses an empty attachment, never dropped without a word."""
    message = str(files.FileRejected("the file is empty", "FILE.EMPTY"))
    return Problem(
        422, "Invalid application", f"{field_path}: {message}", [FieldError(field_path, message)], "FILE.EMPTY"
    )


def check_file_size(length: int, connection: Connection, field_path: str) -> None:
    if length > connection.limits.max_file_bytes:
        raise Problem.invalid(field_path, f"file larger than {connection.limits.max_file_bytes} bytes", 413)


def check_answer_count(count: int, field_path: str) -> None:
    """A board's answers are capped like the canonical API's, before any mapping (each unmapped
    one costs a warning, and a 20 MB list of them held the event loop for seconds)."""
    if count > MAX_ANSWERS:
        problem = Problem.invalid(field_path, f"more than {MAX_ANSWERS} answers")
        problem.code = LIMIT_EXCEEDED
        raise problem


# -- building the canonical application ---------------------------------------------------------


@dataclass
class Draft:
    """An application being assembled from a board's fields, validated in one go by `build`.

    `field_names` maps canonical paths to the board's own (``candidate.email_address`` →
    ``applicant.email``) so that a refusal names the field the sender wrote."""

    connection_id: str
    job_id: str
    candidate: dict[str, Any]
    field_names: Mapping[str, str]
    answers: list[tuple[str, Any]] = field(default_factory=list)
    # name, type, content type, data (or the blob it was streamed to)
    attachments: list[tuple[str, str, str | None, bytes | StagedFile]] = field(default_factory=list)
    source: dict[str, Any] | None = None
    gdpr_consent: dict[str, Any] | None = None
    board_fields: dict[str, str] = field(default_factory=dict)  # canonical path → the board's field
    # the files already in the blob store, by ("attachment" | "answer", index as posted): intake
    # checks and keeps them in place of bytes (app/delivery/staging.py)
    staged: dict[tuple[str, int], StagedFile] = field(default_factory=dict)

    def add_attachment(
        self, name: str, kind: str, content_type: str | None, data: bytes | StagedFile, board_field: str
    ) -> None:
        self.board_fields[f"attachments[{len(self.attachments)}]"] = board_field
        self.attachments.append((name, kind, content_type, data))

    def add_answer(self, question_id: str, value: Any, board_field: str) -> None:
        self.board_fields[f"screening_question_answers[{len(self.answers)}]"] = board_field
        self.answers.append((question_id, value))

    def rename(self, exc: Problem) -> Problem:
        """An intake refusal, with the fields named as the sender wrote them."""
        names = {**self.field_names, **self.board_fields}
        errors = [FieldError(_board_path(e.field, names), e.message) for e in exc.errors]
        head, sep, rest = exc.detail.partition(": ")
        detail = f"{_board_path(head, names)}{sep}{rest}" if sep else exc.detail
        return Problem(exc.status, exc.title, detail, errors, code=exc.code, headers=exc.headers)

    def build(self) -> ApplicationIn:
        blobs: list[bytes] = []
        answers: list[dict[str, Any]] = []
        self.staged = {}
        for question_id, value in self.answers:
            if isinstance(value, FileValue):
                if isinstance(value.data, StagedFile):
                    self.staged[("answer", len(answers))] = value.data
                blobs.append(b"" if isinstance(value.data, StagedFile) else value.data)
                value = {"name": value.name or "file", "content_type": value.content_type, "data": ""}
            answers.append({"question_id": question_id, "answer": value})
        attachments = []
        for name, kind, content_type, _data in self.attachments:
            attachments.append({"name": name, "type": kind, "content_type": content_type, "data": ""})
        raw: dict[str, Any] = {
            "connection_id": self.connection_id,
            "candidate": self.candidate,
            "application": {"job_id": self.job_id},
            "screening_question_answers": answers,
            "attachments": attachments,
        }
        if self.source:
            raw["source"] = self.source
        if self.gdpr_consent:
            raw["gdpr_consent"] = self.gdpr_consent
        raw = _drop_none(raw)
        app = board_application(raw, self.field_names)
        # Bytes are attached after validation: the schema describes base64 text, intake takes both.
        files_iter = iter(blobs)
        for answer in app.screening_question_answers:
            if isinstance(answer.answer, msgspec.Struct):
                answer.answer.data = next(files_iter)
        for i, (attachment, (_, _, _, data)) in enumerate(zip(app.attachments, self.attachments, strict=True)):
            if isinstance(data, StagedFile):
                self.staged[("attachment", i)] = data
                data = b""  # a placeholder: intake takes the staged file
            attachment.data = data
        return app


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def board_application(raw: Any, field_names: Mapping[str, str] | None = None) -> ApplicationIn:
    """Validate a built-in structure as the canonical application; errors name the field (as
    the board wrote it, with `field_names`)."""
    try:
        return decode.convert_application(raw)
    except Problem as exc:
        if not field_names or not exc.errors:
            raise
        first = exc.errors[0]
        raise Problem.invalid(_board_path(first.field, field_names), first.message) from None


def _board_path(path: str, names: Mapping[str, str]) -> str:
    for canonical, board in sorted(names.items(), key=lambda kv: -len(kv[0])):
        if path == canonical or path.startswith(canonical + ".") or path.startswith(canonical + "["):
            return board + path[len(canonical) :]
    return path


# -- jobs ---------------------------------------------------------------------------------------


async def check_job(catalog: Catalog, connector: Any, connection: Connection, job_id: str, field_path: str) -> None:
    """404 for a job the ATS does not have, 410 for a closed one (ATS.JOB_CLOSED), through the
    catalog's cached read (one ATS read per job and TTL for every process, docs/catalog.md) —
    when the ATS answers within 2 s; otherwise the application is accepted and the worker checks
    before writing (never lose one to a slow ATS). A connector without job reads is asked
    `job_status`. Off with `inbound_job_check = false`."""
    if not connection.inbound.inbound_job_check:
        return
    if READ_JOBS in connector.capabilities.reads:
        read = await screening.read_job(catalog, connector, connection.id, job_id, field_path)
        if read.job is not None and read.job.status != "OPEN":
            raise screening.closed(field_path, read.job, status=410)
        return
    try:
        async with asyncio.timeout(ATS_READ_TIMEOUT_S):
            status = await connector.job_status(job_id)
    except (TimeoutError, ConnectorError):
        return
    if status == "missing":
        raise Problem(
            404,
            "Unknown job",
            f"{field_path}: the job does not exist in the ATS",
            [FieldError(field_path, "unknown job")],
            code=JOB_NOT_FOUND,
        )
    if status == "closed":
        raise Problem(
            410,
            "Job closed",
            f"{field_path}: the job no longer takes applications",
            [FieldError(field_path, "job closed")],
            code=screening.JOB_CLOSED,
        )
