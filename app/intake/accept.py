"""Intake: turn a posted application into a stored, enqueued Delivery — or a clear refusal.

Every inbound route (canonical API, Indeed, Standard Webhooks, career forms) ends here with an
`ApplicationIn` and an `Origin`; this module validates what the schema cannot (base64, file
types, sizes, URLs, what the target connection can take), applies the idempotency rule
(docs/architecture.md, "Idempotency") and stores everything in one atomic Redis step before anyone answers 202.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from app.catalog import INTEGRATION_NOT_FOUND, Catalog, parse_job_id
from app.config import Config, Connection, unavailable, unloadable
from app.core import answers, files, text
from app.core.model import (
    INT64_MIN,
    LIMIT_EXCEEDED,
    MAX_ANSWER_CHARS,
    MAX_ANSWERS,
    MAX_REMOTE_FIELDS_BYTES,
    MAX_REMOTE_FIELDS_DEPTH,
    UINT64_MAX,
    ApplicationIn,
    AttachmentIn,
    AttachmentRef,
    FileAnswer,
    Origin,
    ScreeningAnswer,
    StoredAnswer,
    StoredApplication,
    normalise_email,
    stored_encoder,
)
from app.core.problems import FieldError, Problem
from app.delivery.record import Delivery, Status
from app.delivery.staging import StagedFile
from app.delivery.store import DeliveryStore, new_delivery_id
from app.intake import screening
from app.intake.decode import OFF_LOOP_BYTES
from app.intake.screening import INPUT_INVALID, JobRead
from app.net import ssrf
from app.privacy.crypto import Pseudonyms
from app.redis.keys import email_index_key, tombstone_key
from connectors.base import Connector, ConnectorError, StepWarning

UNCHECKED = (
    "answers_unchecked",
    "the ATS could not be asked for the job's questions at intake; the answers are checked "
    "before anything is written to it",
)
PREVIOUSLY_ERASED = (
    "previously_erased",
    "an earlier application from this address was erased at the candidate's "
    "request; this is a new one (check its consent)",
)


@dataclass
class Accepted:
    delivery_id: str
    created: bool
    status: str
    warnings: list[dict[str, str]] = field(default_factory=list)


def idempotency_hash(connection_id: str, key: str) -> str:
    return hashlib.sha256(f"{connection_id}\0{key}".encode()).hexdigest()


KEY_REUSED = "PLATFORM.IDEMPOTENCY_KEY_REUSED"
_canonical = msgspec.json.Encoder(order="sorted")


def request_fingerprint(secret: bytes, stored: StoredApplication) -> str:
    """A keyed hash (HMAC-SHA256) of the request as intake understood it: the canonical
    application with its files as their sha256 refs, and where it came from, but not when it
    arrived. Kept on the delivery the key points to, so that the key's reuse with another body is
    refused (the IETF Idempotency-Key draft, Stripe) and the hash says nothing of the candidate
    to whoever reads Redis without the index key."""
    canonical = msgspec.structs.replace(stored, origin=msgspec.structs.replace(stored.origin, received_at=0.0))
    return hmac.new(secret, b"request\0" + _canonical.encode(canonical), hashlib.sha256).hexdigest()


# Where a key came from, named as the sender knows it: a board's own id is renamed by the board's
# field names (`origin.board_application_id` -> HelloWork's `applicationId`, Indeed's `id`).
KEY_FIELD_HEADER, KEY_FIELD_WEBHOOK, KEY_FIELD_BOARD = "Idempotency-Key", "webhook-id", "origin.board_application_id"


def key_reused(field: str = KEY_FIELD_HEADER) -> Problem:
    return Problem(
        422,
        "Idempotency key reused",
        "this idempotency key was first used with a different request; nothing was stored "
        "(a new application needs a new key; the same request again answers the first delivery)",
        [FieldError(field, "already used with a different request")],
        code=KEY_REUSED,
    )


def key_field(idempotency_key: str | None) -> str:
    """The field an application's key came from (`key_reused` names it)."""
    if idempotency_key is None:
        return KEY_FIELD_BOARD
    return KEY_FIELD_WEBHOOK if idempotency_key.startswith("webhook:") else KEY_FIELD_HEADER


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
        self.blobs: list[bytes | StagedFile] = []
        self.refs: list[AttachmentRef] = []
        self.total = 0

    def add(
        self,
        field_path: str,
        name: str,
        kind: str,
        content_type: str | None,
        data: bytes | None,
        data_url: str | None,
        staged: StagedFile | None = None,
    ) -> AttachmentRef:
        """`data`: the file's bytes, decoded from base64 while parsing (or a multipart part):
        they are stored as they are, no second copy of a 20 MB CV. `staged`: the file is in the
        blob store already (a form's part, app/delivery/staging.py; `data` is then empty), its
        size, sha256 and what the type check reads of it known."""
        limits = self.connection.limits
        if (data is None) == (data_url is None):
            raise Problem.invalid(field_path, "give exactly one of data (base64) or data_url")
        index = len(self.refs)
        if data_url is not None:
            try:
                ssrf.check_url(
                    data_url, allow_hosts=self.connection.fetch_allow_hosts, allow_http=self.connection.fetch_allow_http
                )
            except ssrf.UnsafeURL as exc:
                raise Problem.invalid(f"{field_path}.data_url", str(exc)) from None
            ref = AttachmentRef(
                index=index, name=files.safe_name(name, None), type=kind, content_type=content_type, data_url=data_url
            )
            self.blobs.append(b"")
        else:
            assert data is not None
            raw = data
            size = staged.size if staged is not None else len(raw)
            if size > limits.max_file_bytes:
                raise Problem.invalid(f"{field_path}.data", f"file larger than {limits.max_file_bytes} bytes", 413)
            self.total += size
            if self.total > limits.max_application_bytes:
                raise Problem.invalid(field_path, f"attachments exceed {limits.max_application_bytes} bytes", 413)
            try:
                actual = staged.sniff() if staged is not None else files.sniff(raw)
                files.check_declared(content_type, actual)
                files.check_allowed(actual, self.connection.allowed_attachment_types)
            except files.FileRejected as exc:
                raise Problem(
                    422, "Invalid application", f"{field_path}: {exc}", [FieldError(field_path, str(exc))], exc.code
                ) from None
            ref = AttachmentRef(
                index=index,
                name=files.safe_name(name, actual),
                type=kind,
                content_type=actual,
                sha256=staged.sha256 if staged is not None else hashlib.sha256(raw).hexdigest(),
                size=size,
            )
            self.blobs.append(staged if staged is not None else raw)
        self.refs.append(ref)
        return ref


def build_stored(
    app: ApplicationIn,
    connection: Connection,
    origin: Origin,
    keep: list[int] | None = None,
    staged: Mapping[tuple[str, int], StagedFile] | None = None,
) -> tuple[StoredApplication, list[bytes | StagedFile]]:
    """Move file bytes out of the payload; validate what the schema cannot. `keep`: the indexes of
    the answers to store (the answer check's `kept`), all when None; errors name the index as
    posted. `staged`: files already in the blob store, by ("attachment" | "answer", index as
    posted) (Draft.staged)."""
    staged = staged or {}
    collected = _Files(connection)
    attachments: list[AttachmentRef] = []
    for i, att in enumerate(app.attachments):
        attachments.append(_add_attachment(collected, f"attachments[{i}]", att, staged.get(("attachment", i))))
    answers: list[StoredAnswer] = []
    posted = app.screening_question_answers
    for i in range(len(posted)) if keep is None else keep:
        answer = posted[i]
        value: Any = answer.answer
        if isinstance(value, FileAnswer):
            value = collected.add(
                f"screening_question_answers[{i}].answer",
                value.name,
                "ANSWER",
                value.content_type,
                value.data,
                value.data_url,
                staged.get(("answer", i)),
            )
        elif isinstance(value, str) and len(value) > MAX_ANSWER_CHARS:  # an adapter's answer, not parsed by msgspec
            raise _over_limit(f"screening_question_answers[{i}].answer", f"longer than {MAX_ANSWER_CHARS} characters")
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


def _file_bytes(app: ApplicationIn) -> int:
    total = sum(len(a.data or b"") for a in app.attachments)
    for answer in app.screening_question_answers:
        if isinstance(answer.answer, FileAnswer):
            total += len(answer.answer.data or b"")
    return total


def _text_chars(app: ApplicationIn) -> int:
    """About how much text cleaning will walk: the answers' (the rest is a few short fields)."""
    total = 0
    for answer in app.screening_question_answers:
        value = answer.answer
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, list):
            total += sum(len(item) for item in value)
    return total


def _clean(app: ApplicationIn) -> ApplicationIn:
    """Every channel's text cleaned once (app/core/text.py), bounded by the caps first."""
    check_caps(app)
    return text.clean_application(app)


def _over_limit(field_path: str, message: str) -> Problem:
    problem = Problem.invalid(field_path, message)
    problem.code = LIMIT_EXCEEDED
    return problem


def check_caps(app: ApplicationIn) -> None:
    """The caps of app/core/model.py that msgspec's constraints cannot express (an application
    built by a board adapter with msgspec.convert is checked by them too): the number of
    answers, and remote_fields' size with every nested value. Linear in the body."""
    if len(app.screening_question_answers) > MAX_ANSWERS:
        raise _over_limit("screening_question_answers", f"more than {MAX_ANSWERS} answers")
    if app.remote_fields:
        fault = free_json_fault(app.remote_fields, MAX_REMOTE_FIELDS_DEPTH)
        if fault is not None:
            raise _over_limit("remote_fields", fault)
        try:
            size = len(msgspec.json.encode(app.remote_fields))
        except (TypeError, OverflowError):
            raise Problem.invalid("remote_fields", "must be JSON values") from None
        if size > MAX_REMOTE_FIELDS_BYTES:
            raise _over_limit("remote_fields", f"larger than {MAX_REMOTE_FIELDS_BYTES} bytes as JSON")


def free_json_fault(value: Any, max_depth: int) -> str | None:
    """What makes a free-form JSON value unstorable, if anything: arrays or objects nested past
    `max_depth` (cleaning and every later pass walk it), or an integer past 64 bits (the stored
    record is msgpack). Walked with a stack, not recursion, so no depth crashes the check."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                return f"nested deeper than {max_depth} levels"
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
        elif isinstance(item, int) and not isinstance(item, bool) and not INT64_MIN <= item <= UINT64_MAX:
            return "holds an integer past 64 bits"
    return None


def _field_errors(errors: list[str], app: ApplicationIn) -> list[FieldError]:
    """A connector's "<field>: <reason>" refusals as field errors; "question <id>: ..." names the
    answer to that question (`screening_question_answers[i].answer`)."""
    if not errors:
        return []
    index = {a.question_id: i for i, a in reversed(list(enumerate(app.screening_question_answers)))}
    out = []
    for e in errors:
        head = e.split(":")[0]
        qid = head.removeprefix("question ") if head.startswith("question ") else None
        path = f"{answers.FIELD}[{index[qid]}].answer" if qid is not None and qid in index else head
        out.append(FieldError(path, e))
    return out


def _add_attachment(collected: _Files, path: str, att: AttachmentIn, staged: StagedFile | None = None) -> AttachmentRef:
    return collected.add(path, att.name, att.type, att.content_type, att.data, att.data_url, staged)


def build_attachments(
    items: list[tuple[str, AttachmentIn]], connection: Connection
) -> list[tuple[AttachmentRef, bytes]]:
    """Validate attachments posted on their own (the add-attachment actions)."""
    collected = _Files(connection)
    refs = [_add_attachment(collected, path, att) for path, att in items]
    return [(ref, blob) for ref, blob in zip(refs, collected.blobs, strict=True) if isinstance(blob, bytes)]


class Intake:
    def __init__(
        self,
        store: DeliveryStore,
        config: Config,
        checker_for: Callable[[str], Connector],
        *,
        pseudonyms: Pseudonyms | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.checker_for = checker_for
        self.pseudonyms = pseudonyms  # keyed-hash email index for erasure (app/privacy/erasure.py)
        # The ATS's jobs and questions, cached for every process (runtime.catalog; docs/catalog.md).
        self.catalog = catalog if catalog is not None else Catalog(store.redis, config, checker_for)

    def connection(self, connection_id: str) -> Connection:
        connection = self.config.connections.get(connection_id)
        if connection is None and unloadable(self.config.connections, connection_id) is not None:
            raise unavailable(connection_id)  # stored, but this process cannot build it
        if connection is None:
            raise Problem(
                404,
                "Unknown connection",
                f"connection {connection_id!r} is not configured",
                [FieldError("connection_id", "unknown connection")],
                code=INTEGRATION_NOT_FOUND,
            )
        return connection

    async def screen(
        self, app: ApplicationIn, connection: Connection, checker: Connector, origin: Origin
    ) -> tuple[ApplicationIn, answers.AnswerCheck, bool]:
        """The job and the answers against the catalog's questions (docs/answers.md): (the
        application, its job id as the ATS's and its answers normalised; the check; whether the
        worker must check the answers because the ATS could not be asked). Raises 404 for an
        unknown job and 422 ATS.JOB_CLOSED for a closed one."""
        job_id = parse_job_id(app.application.job_id, field="application.job_id")
        if job_id != app.application.job_id:
            app = msgspec.structs.replace(app, application=msgspec.structs.replace(app.application, job_id=job_id))
        read: JobRead = await screening.read_job(self.catalog, checker, connection.id, job_id, "application.job_id")
        if read.job is not None and read.job.status != "OPEN":
            raise screening.closed("application.job_id", read.job)
        posted = app.screening_question_answers
        if read.questions is None:
            return app, answers.repeated_answers(posted), read.deferred
        if posted:
            by_id = {q.id: q for q in read.questions}
            typed = [
                ScreeningAnswer(a.question_id, answers.normalise(by_id.get(a.question_id), a.answer)) for a in posted
            ]
            app = msgspec.structs.replace(app, screening_question_answers=typed)
        return app, answers.check_answers(read.questions, app.screening_question_answers), False

    @staticmethod
    async def _connector_answers(checker: Connector, stored: StoredApplication) -> list[str]:
        """What the connector itself refuses in answers the shared check let through (how its ATS
        stores them, e.g. OTYS's match criteria), when it answers within the budget; otherwise
        its steps check again before writing."""
        if not stored.screening_question_answers:
            return []
        try:
            async with asyncio.timeout(screening.BUDGET_S):
                return await checker.check_answers(stored)
        except (TimeoutError, ConnectorError):
            return []

    async def accept(
        self,
        app: ApplicationIn,
        origin: Origin,
        idempotency_key: str | None = None,
        notes: list[StepWarning] | None = None,
        staged: Mapping[tuple[str, int], StagedFile] | None = None,
    ) -> Accepted:
        """`notes`: warnings an inbound adapter found while mapping (an unmapped board question),
        recorded on the delivery like the connector's own. `staged`: files the route streamed to
        the blob store (the form route, `Draft.staged`), kept in place of bytes."""
        connection = self.connection(app.connection_id)
        held = _file_bytes(app) + sum(s.sample_bytes for s in (staged or {}).values())
        large = held + _text_chars(app) >= OFF_LOOP_BYTES  # megabytes: off the event loop
        app = await asyncio.to_thread(_clean, app) if large else _clean(app)
        checker = self.checker_for(connection.id)
        app, checked, unchecked = await self.screen(app, connection, checker, origin)
        if large:  # hashing and sniffing the files, as their decoding was (app/intake/decode.py)
            stored, blobs = await asyncio.to_thread(build_stored, app, connection, origin, checked.kept, staged)
        else:
            stored, blobs = build_stored(app, connection, origin, checked.kept, staged)
        errors, warnings = checker.check(stored)
        if not errors and checked.ok and not unchecked:
            errors = await self._connector_answers(checker, stored)
        faults = [*checked.errors, *_field_errors(errors, app)]
        if faults:
            raise Problem(
                422,
                "Not accepted by the target ATS",
                "; ".join(f.message for f in faults[:20]),
                faults,
                code=INPUT_INVALID,
            )
        key = idempotency_key or (
            f"board:{origin.board}:{origin.board_application_id}"
            if origin.board_application_id
            else default_idempotency_key(app)
        )
        # A key someone chose (a header, a webhook id, a board's application id) names one request;
        # the derived one (job and email) names the candidate's application to the job, whatever its
        # answers: a second post of it stays a duplicate.
        fingerprint = None
        if idempotency_key or origin.board_application_id:
            secret = await self.pseudonyms.index_key() if self.pseudonyms is not None else b"applyrelay"
            fingerprint = request_fingerprint(secret, stored)
        now = time.time()
        delivery = Delivery(
            id=new_delivery_id(),
            connection_id=connection.id,
            connector=connection.connector,
            status=Status.QUEUED,
            created_at=now,
            updated_at=now,
            idempotency_key_hash=idempotency_hash(connection.id, key),
            channel=origin.channel,
            board=origin.board,
            board_application_id=origin.board_application_id,
            job_id=app.application.job_id,
            next_attempt_at=now,
            request_fingerprint=fingerprint,
            check_answers_before_write=unchecked,
        )
        for warning in [
            *(notes or []),
            *(StepWarning(w.code, w.message) for w in checked.warnings),
            *([StepWarning(*UNCHECKED)] if unchecked else []),
            *warnings,
        ]:
            delivery.add_warning(warning.code, warning.message)
        index_sets: list[str] = []
        marked_by: tuple[str, Delivery] | None = None
        if self.pseudonyms is not None:
            email_hash = await self.pseudonyms.email(app.candidate.email_address)
            index_sets.append(email_index_key(email_hash))
            # Stored instead if the address has an erasure tombstone (checked inside the write).
            warned = msgspec.structs.replace(delivery, warnings=list(delivery.warnings))
            if warned.warnings_full:  # this one matters more than any of the capped rest
                warned.warnings.pop()
                warned.warnings_dropped += 1
            warned.add_warning(*PREVIOUSLY_ERASED)
            marked_by = (tombstone_key(email_hash), warned)
        result = await self.store.create(
            delivery, stored_encoder.encode(stored), blobs, delivery.idempotency_key_hash, index_sets, marked_by
        )
        if not result.created:
            existing = await self.store.get(result.delivery_id)
            if existing is not None and existing.erased_at is not None:
                raise Problem(
                    409,
                    "Erased",
                    "this application was erased at the candidate's request; "
                    "it is not stored again (a new application needs a new idempotency key)",
                )
            if (
                existing is not None
                and fingerprint is not None
                and existing.request_fingerprint is not None
                and not hmac.compare_digest(existing.request_fingerprint, fingerprint)
            ):
                raise key_reused(key_field(idempotency_key))
            return Accepted(result.delivery_id, False, existing.status if existing else "queued")
        if result.marked and marked_by is not None:
            delivery = marked_by[1]
        warnings_out = [{"code": w.code, "message": w.message} for w in delivery.warnings]
        return Accepted(delivery.id, True, "queued", warnings_out)
