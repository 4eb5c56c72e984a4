"""The allowed-moves table of a delivery's status, and that nothing else changes a status."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.delivery import transitions
from app.delivery.record import Delivery, ErrorInfo, Status
from app.delivery.transitions import ALLOWED, IllegalMove, Move

REPO = Path(__file__).resolve().parents[3]


def delivery(status: Status) -> Delivery:
    return Delivery(
        id="dlv_1",
        connection_id="acme",
        connector="factorial",
        status=status,
        created_at=1.0,
        updated_at=1.0,
        idempotency_key_hash="h",
        channel="api",
        job="dlv_1:1",
        next_attempt_at=5.0,
    )


ERROR = ErrorInfo(kind="permanent", message="refused", at=2.0)
MOVES = {
    Status.DELIVERING: lambda d: transitions.start_run(d),
    Status.DELIVERED: lambda d: transitions.deliver(d, 3.0),
    Status.RETRY_SCHEDULED: lambda d: transitions.schedule_retry(d, ERROR, 60.0),
    Status.PAUSED: lambda d: transitions.pause(d, ERROR),
    Status.FAILED: lambda d: transitions.dead_letter(d, ERROR),
    Status.QUEUED: lambda d: transitions.requeue(d, 4.0, fresh_schedule=True),
}


def test_every_status_has_a_row() -> None:
    assert set(ALLOWED) == set(Status)


@pytest.mark.parametrize("start", list(Status))
@pytest.mark.parametrize("to", list(Status))
def test_a_move_is_made_exactly_when_the_table_allows_it(start: Status, to: Status) -> None:
    d = delivery(start)
    if to == start or to in ALLOWED[start]:
        move = MOVES[to](d)
        assert move == Move(start, to) and d.status == to
    else:
        with pytest.raises(IllegalMove):
            MOVES[to](d)
        assert d.status == start  # an illegal move changes nothing


def test_finished_and_paused_deliveries_keep_no_job() -> None:
    for to in (Status.DELIVERED, Status.FAILED):
        d = delivery(Status.DELIVERING)
        MOVES[to](d)
        assert d.job is None and d.next_attempt_at is None
    d = delivery(Status.DELIVERING)
    transitions.pause(d, ERROR)
    assert d.job is None and d.last_error == ERROR


def test_the_fields_of_each_outcome() -> None:
    d = delivery(Status.QUEUED)
    transitions.start_run(d)
    assert d.runs == 1
    transitions.schedule_retry(d, ERROR, 60.0)
    assert d.last_error == ERROR and d.next_attempt_at == 60.0
    d.failed_attempts = d.attachment_failures = 3
    transitions.requeue(d, 70.0, fresh_schedule=True)
    assert (d.failed_attempts, d.attachment_failures, d.next_attempt_at) == (0, 0, 70.0)
    transitions.start_run(d)
    transitions.deliver(d, 80.0)
    assert d.delivered_at == 80.0 and d.last_error is None


def test_continue_later_keeps_a_scheduled_retry_scheduled() -> None:
    d = delivery(Status.RETRY_SCHEDULED)
    assert transitions.continue_later(d, 9.0) == Move(Status.RETRY_SCHEDULED, Status.RETRY_SCHEDULED)
    d = delivery(Status.DELIVERING)
    assert transitions.continue_later(d, 9.0) == Move(Status.DELIVERING, Status.QUEUED)
    assert d.next_attempt_at == 9.0


def _status_assignments(path: Path) -> list[int]:
    """Lines that assign `<something>.status` of a delivery (callbacks have their own status)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            for target in node.targets:
                targets.extend(target.elts if isinstance(target, ast.Tuple) else [target])
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets.append(node.target)
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and target.attr == "status"
                and isinstance(target.value, ast.Name)
                and target.value.id in {"delivery", "d", "state"}
            ):
                lines.append(node.lineno)
    return lines


def test_only_transitions_changes_a_delivery_status() -> None:
    offenders = {
        str(path.relative_to(REPO)): lines
        for path in sorted((REPO / "app").rglob("*.py"))
        if path.name != "transitions.py" and (lines := _status_assignments(path))
    }
    assert offenders == {}
