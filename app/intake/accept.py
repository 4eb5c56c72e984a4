"""Intake: turn a posted application into a stored, enqueued Delivery — or a clear refusal.

Every inbound route (canonical API, Indeed, Standard Webhooks, career forms) ends here with an
`ApplicationIn` and an `Origin`; this module validates what the schema cannot (base64, file
types, sizes, URLs, what the target connection can take), applies the idempotency rule
(DESIGN §4.2) and stores everything in one atomic Redis step before anyone answers 202.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec

from app.config import Config, Connection
from app.core import files
from app.core.model import (
    ApplicationIn,
    AttachmentIn,
    AttachmentRef,
    FileAnswer,
    Origin,
    StoredAnswer,
    StoredApplication,
    stored_encoder,
)
from app.delivery.record import Delivery
from app.delivery.store import DeliveryStore, new_delivery_id
from app.net import ssrf
from app.privacy import erasure
from app.privacy.crypto import Pseudonyms
from connectors.base import Connector, ConnectorError, StepWarning

ANSWER_CHECK_TIMEOUT_S = 2.0
T = TypeVar("T")
PREVIOUSLY_ERASED = (
    "previously_erased",
    "an earlier application from this address was erased at the candidate's "
    "request; this is a new one (check its consent)",
)


@dataclass
class FieldError:
    field: str
    message: str


class IntakeError(Exception):
    """A refusal, rendered as problem+json by the web layer."""

    def __init__(self, status: int, title: str, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail
        self.errors = errors or []

    @classmethod
    def invalid(cls, field_path: str, message: str, status: int = 422) -> IntakeError:
        return cls(status, "Invalid application", f"{field_path}: {message}", [FieldError(field_path, message)])


@dataclass
class Accepted:
    delivery_id: str
    created: bool
    status: str
    warnings: list[dict[str, str]] = field(default_factory=list)


_PATH_RE = re.compile(r"at `\$(.*)`")
_BASE64_ERROR = "Invalid base64 encoded string"


def invalid(exc: msgspec.ValidationError) -> IntakeError:
    """msgspec's message, with the JSON path it names as the field at fault."""
    message = str(exc)
    match = _PATH_RE.search(message)
    path = match.group(1).lstrip(".") if match else ""
    return IntakeError.invalid(path or "$", _PATH_RE.sub("", message).strip(" -"))


def _is_base64_error(exc: msgspec.ValidationError) -> bool:
    return str(exc).startswith(_BASE64_ERROR)


def decode_with_files(body: bytes, kind: type[T]) -> T:
    """Parse and validate JSON as `kind`. Clean base64 files are decoded by msgspec in the same
    pass; when it refuses one, the body is parsed again as built-ins and its files decoded
    leniently (`decode_files_leniently`) before they are refused. Raises msgspec's DecodeError
    or ValidationError, or IntakeError for a file no decoder takes: callers word the refusal."""
    try:
        return _decoder_for(kind).decode(body)
    except msgspec.ValidationError as exc:
        if not _is_base64_error(exc):
            raise
    return convert_with_files(msgspec.json.decode(body), kind)  # the typed pass stopped at the file


def convert_with_files(document: Any, kind: type[T]) -> T:
    """`msgspec.convert`, with the same lenient second pass for the files of a parsed document."""
    try:
        return msgspec.convert(document, kind)
    except msgspec.ValidationError as exc:
        if not _is_base64_error(exc) or not decode_files_leniently(document):
            raise
    return msgspec.convert(document, kind)


@functools.cache
def _decoder_for(kind: type[Any]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind)


def decode_application(body: bytes) -> ApplicationIn:
    """The canonical JSON; errors name the field at fault (JSON path)."""
    try:
        return decode_with_files(body, ApplicationIn)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None
    except msgspec.DecodeError as exc:
        raise IntakeError(400, "Malformed JSON", f"the body is not valid JSON ({exc})") from None


def convert_application(document: Any) -> ApplicationIn:
    """Validate a parsed document (built-in types) as the canonical application."""
    try:
        return convert_with_files(document, ApplicationIn)
    except msgspec.ValidationError as exc:
        raise invalid(exc) from None


def _file_objects(document: Any) -> list[tuple[str, dict[str, Any]]]:
    """The file objects of a parsed application (or add-attachment action), with their paths."""
    if not isinstance(document, dict):
        return []
    found = [("attachment", document["attachment"])] if isinstance(document.get("attachment"), dict) else []
    attachments, answers = document.get("attachments"), document.get("screening_question_answers")
    if isinstance(attachments, list):
        found += [(f"attachments[{i}]", a) for i, a in enumerate(attachments) if isinstance(a, dict)]
    if isinstance(answers, list):
        found += [
            (f"screening_question_answers[{i}].answer", a["answer"])
            for i, a in enumerate(answers)
            if isinstance(a, dict) and isinstance(a.get("answer"), dict)
        ]
    return found


def decode_files_leniently(document: Any) -> bool:
    """Replace each file's base64 text in `document` by its bytes, decoded leniently (boards send
    line-wrapped base64, data: URLs, the url-safe alphabet, no padding); False if none was text."""
    changed = False
    for path, file in _file_objects(document):
        if isinstance(file.get("data"), str):
            file["data"] = decode_base64(file["data"], f"{path}.data")
            changed = True
    return changed


def decode_base64(data: str, field_path: str) -> bytes:
    """Lenient base64: whitespace, a data: URL prefix, the url-safe alphabet and missing padding
    are tolerated (boards do all of these); anything else is refused with the field."""
    try:  # clean standard base64 at C speed
        return binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    cleaned = re.sub(r"\s+", "", data)
    if cleaned.startswith("data:") and ";base64," in cleaned[:200]:
        cleaned = cleaned.split(";base64,", 1)[1]
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return (
            base64.b64decode(cleaned, validate=True)
            if "-" not in cleaned and "_" not in cleaned
            else base64.urlsafe_b64decode(cleaned)
        )
    except (binascii.Error, ValueError):
        raise IntakeError.invalid(field_path, "is not valid base64") from None


def normalise_email(email: str) -> str:
    return email.strip().casefold()


def idempotency_hash(connection_id: str, key: str) -> str:
    return hashlib.sha256(f"{connection_id}\0{key}".encode()).hexdigest()


def default_idempotency_key(app: ApplicationIn) -> str:
    return (
        "auto:"
        + hashlib.sha256(
            f"{app.application.job_id}\0{normalise_email(app.candidate.email_address)}".encode()
        ).hexdigest()
    )


class _Files:
    """Collects decoded files in order, with their refs, enforcing the size limits."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.blobs: list[bytes] = []
        self.refs: list[AttachmentRef] = []
        self.total = 0

    def add(
        self, field_path: str, name: str, kind: str, content_type: str | None, data: bytes | None, data_url: str | None
    ) -> AttachmentRef:
        """`data`: the file's bytes, decoded from base64 while parsing (or a multipart part):
        they are stored as they are, no second copy of a 20 MB CV."""
        limits = self.connection.limits
        if (data is None) == (data_url is None):
            raise IntakeError.invalid(field_path, "give exactly one of data (base64) or data_url")
        index = len(self.refs)
        if data_url is not None:
            try:
                ssrf.check_url(
                    data_url, allow_hosts=self.connection.fetch_allow_hosts, allow_http=self.connection.fetch_allow_http
                )
            except ssrf.UnsafeURL as exc:
                raise IntakeError.invalid(f"{field_path}.data_url", str(exc)) from None
            ref = AttachmentRef(index=index, name=name, type=kind, content_type=content_type, data_url=data_url)
            self.blobs.append(b"")
        else:
            assert data is not None
            raw = data
            if len(raw) > limits.max_file_bytes:
                raise IntakeError.invalid(f"{field_path}.data", f"file larger than {limits.max_file_bytes} bytes", 413)
            self.total += len(raw)
            if self.total > limits.max_application_bytes:
                raise IntakeError.invalid(field_path, f"attachments exceed {limits.max_application_bytes} bytes", 413)
            try:
                actual = files.sniff(raw)
                files.check_declared(content_type, actual)
            except files.FileRejected as exc:
                raise IntakeError.invalid(field_path, str(exc)) from None
            ref = AttachmentRef(
                index=index,
                name=name,
                type=kind,
                content_type=actual,
                sha256=hashlib.sha256(raw).hexdigest(),
                size=len(raw),
            )
            self.blobs.append(raw)
        self.refs.append(ref)
        return ref


def build_stored(app: ApplicationIn, connection: Connection, origin: Origin) -> tuple[StoredApplication, list[bytes]]:
    """Move file bytes out of the payload; validate what the schema cannot."""
    collected = _Files(connection)
    attachments: list[AttachmentRef] = []
    for i, att in enumerate(app.attachments):
        attachments.append(_add_attachment(collected, f"attachments[{i}]", att))
    answers: list[StoredAnswer] = []
    seen: set[str] = set()
    for i, answer in enumerate(app.screening_question_answers):
        if answer.question_id in seen:
            raise IntakeError.invalid(f"screening_question_answers[{i}].question_id", "answered twice")
        seen.add(answer.question_id)
        value: Any = answer.answer
        if isinstance(value, FileAnswer):
            value = collected.add(
                f"screening_question_answers[{i}].answer",
                value.name,
                "ANSWER",
                value.content_type,
                value.data,
                value.data_url,
            )
        elif isinstance(value, str) and len(value) > 20_000:
            raise IntakeError.invalid(f"screening_question_answers[{i}].answer", "longer than 20000 characters")
        answers.append(StoredAnswer(question_id=answer.question_id, answer=value))
    stored = StoredApplication(
        connection_id=app.connection_id,
        candidate=app.candidate,
        application=app.application,
        origin=origin,
        screening_question_answers=answers,
        attachments=attachments,
        source=app.source,
        gdpr_consent=app.gdpr_consent,
        remote_fields=app.remote_fields,
    )
    return stored, collected.blobs


def _add_attachment(collected: _Files, path: str, att: AttachmentIn) -> AttachmentRef:
    return collected.add(path, att.name, att.type, att.content_type, att.data, att.data_url)


def build_attachments(
    items: list[tuple[str, AttachmentIn]], connection: Connection
) -> list[tuple[AttachmentRef, bytes]]:
    """Validate attachments posted on their own (the add-attachment actions)."""
    collected = _Files(connection)
    refs = [_add_attachment(collected, path, att) for path, att in items]
    return list(zip(refs, collected.blobs, strict=True))


class Intake:
    def __init__(
        self,
        store: DeliveryStore,
        config: Config,
        checker_for: Callable[[str], Connector],
        *,
        pseudonyms: Pseudonyms | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.checker_for = checker_for
        self.pseudonyms = pseudonyms  # keyed-hash email index for erasure (app/erasure.py)

    def connection(self, connection_id: str) -> Connection:
        connection = self.config.connections.get(connection_id)
        if connection is None:
            raise IntakeError(
                404,
                "Unknown connection",
                f"connection {connection_id!r} is not configured",
                [FieldError("connection_id", "unknown connection")],
            )
        return connection

    @staticmethod
    async def _check_answers(checker: Connector, stored: StoredApplication) -> list[str]:
        """Answers against the job's questions, when the ATS answers fast; otherwise accepted and
        checked again at delivery (intake never waits on a slow ATS)."""
        try:
            async with asyncio.timeout(ANSWER_CHECK_TIMEOUT_S):
                return await checker.check_answers(stored)
        except (TimeoutError, ConnectorError):
            return []

    async def accept(
        self,
        app: ApplicationIn,
        origin: Origin,
        idempotency_key: str | None = None,
        notes: list[StepWarning] | None = None,
    ) -> Accepted:
        """`notes`: warnings an inbound adapter found while mapping (an unmapped board question),
        recorded on the delivery like the connector's own."""
        connection = self.connection(app.connection_id)
        stored, blobs = build_stored(app, connection, origin)
        checker = self.checker_for(connection.id)
        errors, warnings = checker.check(stored)
        if not errors:
            errors = await self._check_answers(checker, stored)
        if errors:
            raise IntakeError(
                422,
                "Not accepted by the target ATS",
                "; ".join(errors),
                [FieldError(e.split(":")[0], e) for e in errors],
            )
        key = idempotency_key or (
            f"board:{origin.board}:{origin.board_application_id}"
            if origin.board_application_id
            else default_idempotency_key(app)
        )
        now = time.time()
        delivery = Delivery(
            id=new_delivery_id(),
            connection_id=connection.id,
            connector=connection.connector,
            status="queued",
            created_at=now,
            updated_at=now,
            idempotency_key_hash=idempotency_hash(connection.id, key),
            channel=origin.channel,
            board=origin.board,
            board_application_id=origin.board_application_id,
            job_id=app.application.job_id,
            next_attempt_at=now,
        )
        for warning in [*(notes or []), *warnings]:
            delivery.add_warning(warning.code, warning.message)
        index_sets: list[str] = []
        marked_by: tuple[str, Delivery] | None = None
        if self.pseudonyms is not None:
            email_hash = await self.pseudonyms.email(app.candidate.email_address)
            index_sets.append(erasure.email_index_key(email_hash))
            # Stored instead if the address has an erasure tombstone (checked inside the write).
            warned = msgspec.structs.replace(delivery, warnings=list(delivery.warnings))
            warned.add_warning(*PREVIOUSLY_ERASED)
            marked_by = (erasure.tombstone_key(email_hash), warned)
        result = await self.store.create(
            delivery, stored_encoder.encode(stored), blobs, delivery.idempotency_key_hash, index_sets, marked_by
        )
        if not result.created:
            existing = await self.store.get(result.delivery_id)
            if existing is not None and existing.erased_at is not None:
                raise IntakeError(
                    409,
                    "Erased",
                    "this application was erased at the candidate's request; "
                    "it is not stored again (a new application needs a new idempotency key)",
                )
            return Accepted(result.delivery_id, False, existing.status if existing else "queued")
        if result.marked and marked_by is not None:
            delivery = marked_by[1]
        warnings_out = [{"code": w.code, "message": w.message} for w in delivery.warnings]
        return Accepted(delivery.id, True, "queued", warnings_out)
