"""Per-connection concurrency and rate limits hold across worker processes, through the relay
(the limiter alone: tests/unit/delivery/test_limits.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.builders import connection_table
from tests.support.emulators import Emulator


def application(n: int) -> dict[str, Any]:
    return {
        "connection_id": "acme",
        "application": {"job_id": "2001"},
        "candidate": {"first_name": "Ana", "last_name": f"Test{n}", "email_address": f"ana{n}@example.org"},
    }


@pytest.mark.slow
async def test_three_workers_never_exceed_the_connection_limit(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url, concurrency=2)})
    factorial.faults(latency_ms=120)
    for _ in range(3):
        relay.spawn_worker()
    ids = [(await relay.post(application(n))).json()["id"] for n in range(9)]
    records = [await relay.wait_for(i, "delivered", timeout=60) for i in ids]
    seen = factorial.records()
    assert seen["max_in_flight"] == 2  # the limit was used, never exceeded
    assert len(seen["applications"]) == 9
    for record in records:  # waiting for a slot spends no attempt
        assert record["failed_attempts"] == 0
        assert [a["outcome"] for a in record["attempts"]].count("transient") == 0
    assert await relay.redis.zcard("ar:sem:acme") == 0  # every lease given back


async def test_rate_limit_spaces_delivery_runs(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url, rate_per_s=2)})
    await relay.start_worker()
    ids = [(await relay.post(application(n))).json()["id"] for n in range(5)]
    records = [await relay.wait_for(i, "delivered", timeout=30) for i in ids]
    starts = sorted(min(a["started_at"] for a in r["attempts"] if a.get("step")) for r in records)
    # burst of 2, then one run every 0.5 s: 5 runs take at least 1.5 s
    assert starts[-1] - starts[0] >= 1.4
