"""The Delivery record's warnings: capped, the rest counted, and each add bounded by the cap."""

from __future__ import annotations

import time

from app.delivery.record import MAX_WARNINGS, Delivery, Status


def delivery() -> Delivery:
    return Delivery(
        id="dlv_1",
        connection_id="acme",
        connector="factorial",
        status=Status.QUEUED,
        created_at=0.0,
        updated_at=0.0,
        idempotency_key_hash="h",
        channel="api",
    )


def test_warnings_past_the_cap_are_counted_not_stored() -> None:
    d = delivery()
    for i in range(MAX_WARNINGS + 7):
        d.add_warning("unknown_question", f"question q{i} is not on job 1")
    d.add_warning("unknown_question", "question q0 is not on job 1")  # a repeat, past the cap: counted
    assert len(d.warnings) == MAX_WARNINGS and d.warnings_dropped == 8


def test_a_repeat_under_the_cap_is_kept_once() -> None:
    d = delivery()
    d.add_warning("phone_dropped", "x")
    d.add_warning("phone_dropped", "x")
    assert len(d.warnings) == 1 and d.warnings_dropped == 0


def test_adding_is_linear_in_the_number_of_warnings() -> None:
    """One warning per unknown answer of a 20 000-answer application took about a minute."""
    d = delivery()
    started = time.perf_counter()
    for i in range(200_000):
        d.add_warning("unknown_question", f"question q{i}")
    assert time.perf_counter() - started < 1.0
    assert d.warnings_dropped == 200_000 - MAX_WARNINGS
