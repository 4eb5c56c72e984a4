"""When to try again (docs/architecture.md, "Retry policy"): a fixed schedule with jitter, floors for 429 and timeouts,
and the ATS's Retry-After honoured up to a cap. Pure functions: the engine supplies the clock
and the random source, so tests can check the spacing exactly."""

from __future__ import annotations

import random
from dataclasses import dataclass

from app.config import RetryPolicyConfig
from connectors.base import TransientError


@dataclass(frozen=True)
class RetryDecision:
    delay_s: float | None  # None: give up (attempts exhausted)
    reason: str


def next_retry(
    policy: RetryPolicyConfig,
    failed_attempts: int,
    error: TransientError,
    rng: random.Random | None = None,
) -> RetryDecision:
    """Delay before the next attempt, after `failed_attempts` transient failures (1-based)."""
    if failed_attempts >= policy.max_attempts:
        return RetryDecision(None, f"gave up after {failed_attempts} attempts")
    base = policy.schedule[min(failed_attempts, len(policy.schedule)) - 1]
    rng = rng or random.Random()
    delay = base * (1 + rng.uniform(-policy.jitter, policy.jitter))
    reason = f"schedule {base:g}s"
    if error.status == 429 or error.timeout:
        if delay < policy.slow_floor_s:
            delay, reason = policy.slow_floor_s, f"floor {policy.slow_floor_s:g}s for 429/timeout"
    if error.retry_after is not None:
        honoured = min(error.retry_after, policy.retry_after_cap_s)
        if honoured > delay:
            delay, reason = honoured, f"Retry-After {honoured:g}s"
    return RetryDecision(delay, reason)
