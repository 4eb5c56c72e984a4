"""30 % of the ATS's answers go wrong (5xx, 429, timeouts, connections dropped before and after
the ATS stored the request): every application arrives exactly once, and every retry was
scheduled as the policy says (the schedule compressed with fast_forward, not slept)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.config import DEFAULT_SCHEDULE
from tests.chaos.common import Tally, application, count_arrivals, post_all, status_counts, stuck_report, wait_delivered
from tests.support.builders import connection_table
from tests.support.emulators import Emulator

pytestmark = pytest.mark.slow

APPLICATIONS = 150
# A longer schedule than the default 8 attempts: with 30 % of ~8 calls per delivery failing, the
# default would (correctly) dead-letter the odd unlucky delivery; this test is about once-only.
SCHEDULE = [*DEFAULT_SCHEDULE, *[43200] * 8]
JITTER = 0.2
SLOW_FLOOR_S = 60.0


def check_retries_follow_policy(delivery: dict[str, Any]) -> list[str]:
    """Every transient attempt's scheduled delay: the schedule ±jitter, at least 60 s after a 429
    or a timeout, never more attempts than the schedule allows."""
    problems = []
    failures = {"core": 0, "attachments": 0}  # files retry on their own schedule (docs/architecture.md, "Retry policy")
    for attempt in delivery["attempts"]:
        if attempt["outcome"] != "transient" or attempt.get("next_attempt_at") is None:
            continue
        failures["attachments" if str(attempt.get("step") or "").startswith("attachment:") else "core"] += 1
        delay = attempt["next_attempt_at"] - attempt["finished_at"]
        reason = attempt.get("retry_reason", "")
        if reason.startswith("schedule"):
            base = float(reason.split()[1].rstrip("s"))
            if base not in SCHEDULE or not base * (1 - JITTER) - 0.01 <= delay <= base * (1 + JITTER) + 0.01:
                problems.append(f"delay {delay:.1f}s for {reason}")
            if attempt.get("http_status") == 429 and delay < SLOW_FLOOR_S:
                problems.append(f"429 retried after {delay:.1f}s")
        elif reason.startswith("floor"):
            if abs(delay - SLOW_FLOOR_S) > 0.01:
                problems.append(f"floor delay {delay:.1f}s")
        elif reason.startswith("Retry-After"):
            if delay > 6 * 3600 + 0.01:
                problems.append(f"Retry-After delay {delay:.1f}s above the cap")
        else:
            problems.append(f"unknown retry reason {reason!r}")
    for kind, count in failures.items():
        if count > len(SCHEDULE):
            problems.append(f"{count} {kind} retries, the policy allows {len(SCHEDULE)}")
    return problems


async def test_thirty_percent_faults_deliver_exactly_once(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay(
        {
            "acme": connection_table(
                "factorial", factorial.url, timeout_s=1, retry_schedule=SCHEDULE, retry_jitter=JITTER
            )
        },
        job_timeout_s=4.0,
    )
    # The job and its questions read once before the faults start, as a running relay would have
    # them cached: this test is about writes arriving once. (An ATS failing at intake is the
    # catalog's and the worker's pre-write check's business: tests/integration/intake/.)
    warm = await relay.client.get("/v1/connections/acme/jobs/2001", headers=relay.admin)
    assert warm.status_code == 200, warm.text
    factorial.faults(
        error_rate=0.06,
        error_status=500,
        rate_limit_rate=0.06,
        retry_after=1,
        timeout_after_rate=0.06,
        stall_s=1.5,
        drop_rate=0.06,
        drop_after_rate=0.06,
        seed=30,
    )
    relay.spawn_worker()
    relay.spawn_worker()
    tally = Tally()
    started = time.monotonic()
    accepted = await post_all(
        relay, [(f"faults-{i}", application(i, run="faults")) for i in range(APPLICATIONS)], tally
    )
    delivered = await wait_delivered(relay, len(accepted), timeout_s=150, nudge=True)
    records = factorial.records()
    injected = records["faults_injected"]
    factorial.faults()
    count_arrivals(records, [f"faults-{i}@example.org" for i in range(APPLICATIONS)], tally)
    policy_problems: list[str] = []
    retried = 0
    for delivery_id in accepted.values():
        delivery = await relay.delivery(delivery_id)
        retried += any(a["outcome"] == "transient" for a in delivery["attempts"])
        policy_problems += [f"{delivery_id}: {p}" for p in check_retries_follow_policy(delivery)]
    tally.details += policy_problems
    tally.report(
        f"30 % ATS faults ({time.monotonic() - started:.0f} s; injected={injected}; "
        f"deliveries retried={retried}; relay says delivered={delivered}; "
        f"statuses={await status_counts(relay)})"
    )
    for line in await stuck_report(relay):
        print(f"[chaos]   unfinished: {line}", flush=True)
    assert sum(injected.values()) > APPLICATIONS, injected  # the faults really were there
    assert tally.accepted == APPLICATIONS and delivered == APPLICATIONS
    assert (tally.delivered, tally.lost, tally.duplicated) == (APPLICATIONS, 0, 0)
    assert not policy_problems
