"""The arq side of the queue: job ids, job bodies and the wake-up signal.

The relay writes arq's job records itself (`arq:job:<id>` + a score in `arq:queue`) inside its
own transactions, so a state change and the run it needs are stored together; arq's workers then
pick them up as usual. Job bodies use msgspec's msgpack (the worker is configured to match).
Each run of a delivery is its own short-lived job (`<delivery id>:<n>`): retries are scheduled by
the engine, never by arq's `Retry`, which would tie the schedule to arq's `max_tries` and to the
job body's expiry (docs/architecture.md, "One run of the engine").
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
from arq.constants import default_queue_name, health_check_key_suffix, job_key_prefix
from arq.jobs import serialize_job

from app.redis.keys import WAKE_KEY

QUEUE_NAME = default_queue_name
DELIVER_FUNCTION = "deliver"
# arq's workers write this key every HEALTH_CHECK_INTERVAL_S, expiring one second later: /ready's heartbeat.
HEALTH_CHECK_KEY = default_queue_name + health_check_key_suffix
HEALTH_CHECK_INTERVAL_S = 10
# A job body outlives its run time by a day: generous against clock skew and paused workers.
JOB_EXPIRES_MS = 24 * 3600 * 1000


def _encode_other(obj: Any) -> Any:
    """arq also serializes the *result* of a job it gives up on, and that result is an exception
    (`JobExecutionFailed("job expired")`, `... max retries exceeded`, a timeout): msgpack has no
    type for it, so arq logged `TypeError: Encoding objects of type JobExecutionFailed is
    unsupported` and stored no result. An exception is kept as its type and message (never a
    traceback: it could quote candidate data), which is all arq's `JobResult` needs."""
    if isinstance(obj, BaseException):
        return f"{type(obj).__name__}: {obj}"[:500]
    raise NotImplementedError(f"cannot encode {type(obj).__name__} in an arq job record")


_job_encoder = msgspec.msgpack.Encoder(enc_hook=_encode_other)


def job_serializer(data: dict[str, Any]) -> bytes:
    return _job_encoder.encode(data)


_job_decoder = msgspec.msgpack.Decoder(dict[str, Any])


def job_deserializer(data: bytes) -> dict[str, Any]:
    return _job_decoder.decode(data)


def job_id(delivery_id: str, seq: int | str | None = None) -> str:
    return f"{delivery_id}:{seq if seq is not None else uuid.uuid4().hex[:12]}"


def job_key(jid: str) -> str:
    return job_key_prefix + jid


def serialize(delivery_id: str, enqueue_ms: int) -> bytes:
    return serialize_job(DELIVER_FUNCTION, (delivery_id,), {}, None, enqueue_ms, serializer=job_serializer)


def add_to_pipeline(pipe: Any, delivery_id: str, jid: str, run_at: float) -> str:
    """Queue job `jid` running `delivery_id` at `run_at` (epoch seconds) on a Redis pipeline."""
    now_ms = int(time.time() * 1000)
    score = int(run_at * 1000)
    pipe.psetex(job_key(jid), max(score - now_ms, 0) + JOB_EXPIRES_MS, serialize(delivery_id, now_ms))
    pipe.zadd(QUEUE_NAME, {jid: score})
    if score <= now_ms + 50:
        pipe.lpush(WAKE_KEY, b"1")
        pipe.ltrim(WAKE_KEY, 0, 63)
    return jid
