"""The Delivery record: the relay's state of one application (or action) on its way to an ATS.

It holds no PII: ids, statuses, step checkpoints (remote ids), an attempt log with truncated,
PII-free error summaries, and warnings. The candidate's payload and files live apart
(see store.py), so listing deliveries never loads candidate data.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

import msgspec
from msgspec import Struct


class Status(StrEnum):
    """A delivery's status. Only `app/delivery/transitions.py` changes it (docs/architecture.md
    has the state diagram); being a `str`, it compares equal to its value everywhere."""

    QUEUED = "queued"
    DELIVERING = "delivering"
    RETRY_SCHEDULED = "retry_scheduled"
    DELIVERED = "delivered"
    FAILED = "failed"  # a dead letter
    PAUSED = "paused"  # the connection's credentials were refused


STATUSES: tuple[Status, ...] = tuple(Status)
TERMINAL: frozenset[Status] = frozenset({Status.DELIVERED, Status.FAILED})
Outcome = Literal["ok", "transient", "permanent", "auth", "crash", "attachment_failed"]


class Attempt(Struct, omit_defaults=True):
    number: int
    started_at: float
    finished_at: float
    outcome: Outcome
    step: str | None = None
    http_status: int | None = None
    latency_ms: int = 0
    error: str | None = None
    next_attempt_at: float | None = None
    retry_reason: str | None = None


class ErrorInfo(Struct, omit_defaults=True):
    kind: str  # transient | permanent | auth | crash | exhausted | attachment
    message: str
    step: str | None = None
    http_status: int | None = None
    at: float = 0.0


class WarningInfo(Struct):
    code: str
    message: str


class AttachmentState(Struct, omit_defaults=True):
    """Per-file outcome; `confirmed` once the ATS holds it (its step is checkpointed)."""

    step: str
    name_hint: str  # the file's extension and type only (a file name may carry a person's name)
    type: str
    size: int | None = None
    confirmed: bool = False
    failures: int = 0
    last_error: str | None = None


class Delivery(Struct, omit_defaults=True):
    id: str
    connection_id: str
    connector: str
    status: Status
    created_at: float
    updated_at: float
    idempotency_key_hash: str
    channel: str
    kind: Literal["application", "action"] = "application"
    board: str | None = None
    board_application_id: str | None = None
    job_id: str | None = None
    action: str | None = None
    action_params: dict[str, Any] = {}
    parent_id: str | None = None
    job: str | None = None  # the pending arq job; any other job for this delivery is stale
    runs: int = 0  # engine runs started (incl. crash re-runs)
    failed_attempts: int = 0  # transient failures of core steps: the schedule index
    attachment_failures: int = 0  # transient failures of attachment steps: their own schedule
    next_attempt_at: float | None = None
    delivered_at: float | None = None
    checkpoints: dict[str, str] = {}
    attachments: list[AttachmentState] = []
    warnings: list[WarningInfo] = []
    last_error: ErrorInfo | None = None
    attempts: list[Attempt] = []
    files_purged: bool = False
    keep_files_until: float | None = None  # signed links were handed out: keep the bytes until then
    payload_purged: bool = False
    remote_status: dict[str, Any] | None = None  # the application's stage/outcome in the ATS (status sync)
    erased_at: float | None = None  # erased at the candidate's request (app/privacy/erasure.py)
    version: int = 0
    warnings_dropped: int = 0  # warnings past MAX_WARNINGS: counted, not stored
    # A keyed hash of the canonical request the idempotency key was claimed with: the same key
    # with another body is refused (app/intake/accept.py, docs/architecture.md "Idempotency").
    request_fingerprint: str | None = None

    def add_warning(self, code: str, message: str) -> None:
        """Keep at most MAX_WARNINGS (the rest are counted in `warnings_dropped`): one warning per
        unknown answer of a 20 000-answer application once made intake and every run quadratic
        (docs/operations.md, "Bounded work")."""
        if len(self.warnings) >= MAX_WARNINGS:
            self.warnings_dropped += 1
            return
        if not any(w.code == code and w.message == message for w in self.warnings):
            self.warnings.append(WarningInfo(code, message))

    @property
    def warnings_full(self) -> bool:
        return len(self.warnings) >= MAX_WARNINGS


MAX_ATTEMPT_LOG = 50
MAX_WARNINGS = 50

delivery_encoder = msgspec.msgpack.Encoder()
delivery_decoder = msgspec.msgpack.Decoder(Delivery)
