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

from app.config import Connection
from app.core import files
from app.core.model import ApplicationIn
from app.core.problems import FieldError, Problem
from app.intake import decode
from connectors.base import ConnectorError, StepWarning
from connectors.http import TtlCache

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
    """A file already decoded to bytes (name kept exactly as the sender wrote it)."""

    name: str | None
    content_type: str | None
    data: bytes


def file_name(value: FileValue, default_stem: str, field_path: str) -> str:
    """The sender's name, or `<stem><extension of the real type>` when it gave none."""
    if value.name and value.name.strip():
        return value.name
    try:
        actual = files.sniff(value.data)
    except files.FileRejected as exc:
        raise Problem(
            422, "Invalid application", f"{field_path}: {exc}", [FieldError(field_path, str(exc))], exc.code
        ) from None
    return default_stem + EXTENSIONS.get(actual, "")


def check_file_size(length: int, connection: Connection, field_path: str) -> None:
    if length > connection.limits.max_file_bytes:
        raise Problem.invalid(field_path, f"file larger than {connection.limits.max_file_bytes} bytes", 413)


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
    attachments: list[tuple[str, str, str | None, bytes]] = field(default_factory=list)  # name, type, ctype, data
    source: dict[str, Any] | None = None
    gdpr_consent: dict[str, Any] | None = None
    board_fields: dict[str, str] = field(default_factory=dict)  # canonical path → the board's field

    def add_attachment(self, name: str, kind: str, content_type: str | None, data: bytes, board_field: str) -> None:
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
        answers = []
        for question_id, value in self.answers:
            if isinstance(value, FileValue):
                blobs.append(value.data)
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
        for attachment, (_, _, _, data) in zip(app.attachments, self.attachments, strict=True):
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


JOB_OPEN_CACHE_S = 60.0
_open_jobs: TtlCache[tuple[str, str, str], bool] = TtlCache(JOB_OPEN_CACHE_S, max_entries=10_000)


async def check_job(connector: Any, connection: Connection, job_id: str, field_path: str) -> None:
    """404 for a job the ATS does not have, 410 for a closed one — when the ATS answers within
    2 s; otherwise the application is accepted and the delivery finds out (never lose one to a
    slow ATS). An open job is remembered for a minute (one ATS read per job, not per
    application); missing and closed ones are asked again. Off with `inbound_job_check = false`."""
    if not connection.inbound.inbound_job_check:
        return
    key = (connection.base_url, connection.id, job_id)
    if _open_jobs.get(key):
        return
    try:
        async with asyncio.timeout(ATS_READ_TIMEOUT_S):
            status = await connector.job_status(job_id)
    except (TimeoutError, ConnectorError):
        return
    if status == "open":
        _open_jobs.put(key, True)
    if status == "missing":
        raise Problem(
            404,
            "Unknown job",
            f"{field_path}: the job does not exist in the ATS",
            [FieldError(field_path, "unknown job")],
        )
    if status == "closed":
        raise Problem(
            410,
            "Job closed",
            f"{field_path}: the job no longer takes applications",
            [FieldError(field_path, "job closed")],
        )
