"""Retry policy arithmetic (app/delivery/retry_policy.py): the schedule with its jitter, the floor
for 429 and timeouts, Retry-After honoured up to its cap, and Retry-After parsed both ways."""

from __future__ import annotations

import random

import pytest

from app.config import RetryPolicyConfig
from app.delivery.retry_policy import next_retry
from connectors.base import TransientError, parse_retry_after


def test_retry_policy_schedule_jitter_floor_and_cap() -> None:
    policy = RetryPolicyConfig()
    rng = random.Random(7)
    plain = TransientError("x", status=503)
    delays = [next_retry(policy, n, plain, rng).delay_s for n in range(1, 8)]
    for delay, base in zip(delays, policy.schedule, strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    assert next_retry(policy, 8, plain, rng).delay_s is None  # 8 attempts in all
    assert next_retry(policy, 1, TransientError("x", status=429), rng).delay_s == 60
    assert next_retry(policy, 1, TransientError("x", timeout=True), rng).delay_s == 60
    assert next_retry(policy, 1, TransientError("x", status=503, retry_after=10 * 3600), rng).delay_s == 6 * 3600
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412420.0) == pytest.approx(60)
    assert parse_retry_after("soon") is None
    assert parse_retry_after("²") is None and parse_retry_after("١٢") is None  # digits to str.isdigit, not to float
