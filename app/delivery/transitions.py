"""The only code that changes a delivery's status: one function per move, and the table of moves.

Like svix's `handle_successful_dispatch` / `handle_failed_dispatch`, each outcome is written in
one place, with the fields that go with it (a finished delivery has no pending job, a dead letter
keeps its error, ...). Each function returns the `Move` it made, which `DeliveryStore.save` takes
to move the delivery between status indexes and count metrics: no caller threads the previous
status by hand. The state diagram in docs/architecture.md is this table drawn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.delivery.record import Delivery, ErrorInfo, Status

QUEUED, DELIVERING, RETRY_SCHEDULED = Status.QUEUED, Status.DELIVERING, Status.RETRY_SCHEDULED
DELIVERED, FAILED, PAUSED = Status.DELIVERED, Status.FAILED, Status.PAUSED

#: What a delivery's status may become, from each status. A status may also stay as it is
#: (a re-run after a crash stays `delivering`, a deferred retry stays `retry_scheduled`).
ALLOWED: Mapping[Status, frozenset[Status]] = {
    # waiting for a worker: it starts, is deferred by the connection's limits, finds the
    # connection paused, or is dead-lettered before it starts (connection gone, erased)
    QUEUED: frozenset({DELIVERING, PAUSED, FAILED}),
    RETRY_SCHEDULED: frozenset({DELIVERING, QUEUED, PAUSED, FAILED}),
    # a run's outcome; `queued` when its budget ran out mid-way or the limits deferred a re-run
    DELIVERING: frozenset({DELIVERED, RETRY_SCHEDULED, QUEUED, PAUSED, FAILED}),
    # an operator's retry or the connection's resume; erasure stops it for good
    PAUSED: frozenset({QUEUED, DELIVERING, FAILED}),
    FAILED: frozenset({QUEUED}),  # an operator's retry
    DELIVERED: frozenset({QUEUED}),  # an operator's retry of unconfirmed attachments
}
RETRYABLE: frozenset[Status] = frozenset({FAILED, PAUSED, RETRY_SCHEDULED})  # by an operator


class IllegalMove(RuntimeError):
    """A move the table does not allow: a bug in the caller, never an input error."""


@dataclass(frozen=True)
class Move:
    previous: Status | None  # None: a record new to the indexes
    to: Status

    @property
    def changed(self) -> bool:
        return self.previous != self.to


def _move(delivery: Delivery, to: Status) -> Move:
    previous = Status(delivery.status)
    if to != previous and to not in ALLOWED[previous]:
        raise IllegalMove(f"delivery {delivery.id}: {previous} → {to} is not an allowed move")
    delivery.status = to
    if to in (DELIVERED, FAILED, PAUSED):
        delivery.job = None  # nothing runs a finished or paused delivery; a pending job is stale
    if to in (DELIVERED, FAILED):
        delivery.next_attempt_at = None
    return Move(previous, to)


def start_run(delivery: Delivery) -> Move:
    """A worker starts a run (also the re-run of a run that died)."""
    delivery.runs += 1
    return _move(delivery, DELIVERING)


def deliver(delivery: Delivery, at: float) -> Move:
    delivery.delivered_at, delivery.last_error = at, None
    return _move(delivery, DELIVERED)


def schedule_retry(delivery: Delivery, error: ErrorInfo, run_at: float) -> Move:
    delivery.last_error, delivery.next_attempt_at = error, run_at
    return _move(delivery, RETRY_SCHEDULED)


def continue_later(delivery: Delivery, run_at: float) -> Move:
    """Run again at `run_at` with no attempt spent (the run budget ran out while progressing, or
    the connection's limits deferred it); a scheduled retry keeps its status."""
    delivery.next_attempt_at = run_at
    return _move(delivery, RETRY_SCHEDULED if delivery.status == RETRY_SCHEDULED else QUEUED)


def pause(delivery: Delivery, error: ErrorInfo) -> Move:
    delivery.last_error = error
    return _move(delivery, PAUSED)


def dead_letter(delivery: Delivery, error: ErrorInfo) -> Move:
    delivery.last_error = error
    return _move(delivery, FAILED)


def requeue(delivery: Delivery, at: float, *, fresh_schedule: bool) -> Move:
    """An operator's retry (`fresh_schedule`: the retry schedule starts again) or a resumed
    connection: run again now."""
    if fresh_schedule:
        delivery.failed_attempts = 0
        delivery.attachment_failures = 0
        for state in delivery.attachments:
            state.failures = 0
    delivery.next_attempt_at = at
    return _move(delivery, QUEUED)


def unchanged(delivery: Delivery) -> Move:
    """A save that changes no status (a checkpoint, the ATS's remote status, an erasure mark)."""
    return Move(Status(delivery.status), Status(delivery.status))
