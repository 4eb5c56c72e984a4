"""Status callbacks: tell the origin, with a Standard Webhooks signature, that an application it sent
changed stage or outcome in the ATS. Retried like deliveries (the connection's schedule and jitter,
Retry-After honoured), behind the SSRF guard.

A callback is a small record ``ar:cb:<id>`` (msgpack) plus its place in ``ar:cb:due`` (a sorted set
scored by the next attempt time). A cron job on the workers sends what is due; a per-callback lock
keeps two workers from sending the same one at once. Each attempt is signed afresh (receivers refuse
timestamps older than 5 minutes) with the same ``webhook-id``, so receivers can de-duplicate.
The body carries ids, stage and outcome only — no candidate data.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

import httpx
import msgspec
import structlog
from arq import cron
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from app.config import Config, Connection
from app.delivery.record import Delivery
from app.delivery.retry_policy import next_retry
from app.net import ssrf
from app.redis.keys import CALLBACKS_DUE as DUE
from app.redis.keys import callback_key, callback_lease_key
from app.tracking import health
from connectors.base import TransientError, parse_retry_after

if TYPE_CHECKING:
    from arq.cron import CronJob

    from app.settings import Settings

log = structlog.get_logger("applyrelay.callbacks")

KEEP_DONE_S = 7 * 24 * 3600
PERMANENT = frozenset({400, 404, 410, 413, 422})
EVENT_TYPE = "application.status_changed"


class Callback(msgspec.Struct, omit_defaults=True):
    id: str  # also the webhook-id
    delivery_id: str
    connection_id: str
    body: bytes
    created_at: float
    status: Literal["pending", "sent", "failed"] = "pending"
    attempts: int = 0
    next_attempt_at: float | None = None
    last_error: str | None = None
    sent_at: float | None = None


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Callback)


def key(callback_id: str) -> str:
    return callback_key(callback_id)


def body_for(delivery: Delivery, status: dict[str, Any], previous: dict[str, Any] | None, now: float) -> bytes:
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).isoformat().replace("+00:00", "Z")
    return msgspec.json.encode(
        {
            "type": EVENT_TYPE,
            "timestamp": stamp,
            "data": {
                "delivery_id": delivery.id,
                "connection_id": delivery.connection_id,
                "board": delivery.board,
                "board_application_id": delivery.board_application_id,
                "job_id": delivery.job_id,
                "candidate_id": delivery.checkpoints.get("candidate"),
                "application_id": delivery.checkpoints.get("application"),
                "status": status,
                "previous_status": previous,
            },
        }
    )


async def enqueue(
    redis: Redis,
    delivery: Delivery,
    status: dict[str, Any],
    previous: dict[str, Any] | None,
    *,
    now: float | None = None,
) -> str:
    now = time.time() if now is None else now
    callback = Callback(
        id="msg_" + uuid.uuid4().hex,
        delivery_id=delivery.id,
        connection_id=delivery.connection_id,
        body=body_for(delivery, status, previous, now),
        created_at=now,
        next_attempt_at=now,
    )
    pipe = redis.pipeline(transaction=True)
    pipe.set(key(callback.id), _encoder.encode(callback))
    pipe.zadd(DUE, {callback.id: now})
    await pipe.execute()
    return callback.id


async def get(redis: Redis, callback_id: str) -> Callback | None:
    raw = await redis.get(key(callback_id))
    return _decoder.decode(raw) if raw else None


def sign(secret: str, msg_id: str, body: bytes, at: float) -> dict[str, str]:
    """The Standard Webhooks headers for one attempt."""
    when = dt.datetime.fromtimestamp(int(at), dt.UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at)),
        "webhook-signature": Webhook(secret).sign(msg_id, when, body.decode()),
        "content-type": "application/json",
        "user-agent": "applyrelay-status-callback",
    }


async def _attempt(
    callback: Callback, connection: Connection, http: httpx.AsyncClient
) -> tuple[str, int | None, float | None]:
    """One POST, signed now (the wall clock, whatever the scheduling clock says):
    ("ok" | "transient" | "permanent", http status, Retry-After)."""
    assert connection.status_callback_url and connection.status_callback_secret
    headers = sign(connection.status_callback_secret, callback.id, callback.body, time.time())
    try:
        response = await ssrf.post(
            connection.status_callback_url,
            http,
            content=callback.body,
            headers=headers,
            allow_hosts=connection.fetch_allow_hosts,
            allow_http=connection.fetch_allow_http,
            timeout_s=connection.timeout_s,
        )
    except ssrf.UnsafeURL as exc:
        callback.last_error = f"unsafe callback URL: {exc}"
        return "permanent", None, None
    except (httpx.HTTPError, OSError) as exc:
        callback.last_error = f"network error: {type(exc).__name__}"
        return "transient", None, None
    status = response.status_code
    if 200 <= status < 300:
        return "ok", status, None
    callback.last_error = f"HTTP {status}"
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    return ("permanent" if status in PERMANENT else "transient"), status, retry_after


async def send(redis: Redis, callback: Callback, config: Config, http: httpx.AsyncClient, now: float) -> str:
    """Attempt one callback and record the outcome: sent, scheduled again, or failed for good."""
    connection = config.connections.get(callback.connection_id)
    dest = health.destination("callback", callback.connection_id)
    if await health.is_disabled(redis, dest):  # Svix's model: no attempts while disabled; recover later
        callback.status, callback.next_attempt_at, callback.last_error = "failed", None, "destination disabled"
        pipe = redis.pipeline(transaction=True)
        pipe.set(key(callback.id), _encoder.encode(callback), ex=KEEP_DONE_S)
        pipe.zrem(DUE, callback.id)
        await pipe.execute()
        await health.failed_without_attempt(redis, dest, callback.id, callback.created_at)
        return "failed"
    if connection is None or not connection.status_callback_url:
        callback.status, callback.last_error = "failed", "the connection no longer has a status callback"
        outcome, status, retry_after = "permanent", None, None
    else:
        outcome, status, retry_after = await _attempt(callback, connection, http)
        await health.record_attempt(
            redis,
            dest,
            ok=outcome == "ok",
            now=now,
            message_id=callback.id,
            http_status=status,
            error=callback.last_error if outcome != "ok" else None,
            disable_after_s=connection.inbound.outbound_disable_after_s,
        )
    callback.attempts += 1
    pipe = redis.pipeline(transaction=True)
    if outcome == "ok":
        callback.status, callback.sent_at, callback.next_attempt_at, callback.last_error = "sent", now, None, None
    elif outcome == "transient" and connection is not None:
        decision = next_retry(
            connection.retry,
            callback.attempts,
            TransientError(callback.last_error or "", status=status, retry_after=retry_after),
        )
        if decision.delay_s is None:
            outcome = "permanent"
            callback.last_error = f"{decision.reason}; last error: {callback.last_error}"
        else:
            callback.next_attempt_at = now + decision.delay_s
            pipe.set(key(callback.id), _encoder.encode(callback))
            pipe.zadd(DUE, {callback.id: callback.next_attempt_at})
            await pipe.execute()
            log.info(
                "callback.retry_scheduled",
                callback_id=callback.id,
                delivery_id=callback.delivery_id,
                connection=callback.connection_id,
                attempt=callback.attempts,
                http_status=status,
                delay_s=round(decision.delay_s, 1),
            )
            return "retry_scheduled"
    if outcome != "ok":
        callback.status, callback.next_attempt_at = "failed", None
        log.warning(
            "callback.failed",
            callback_id=callback.id,
            delivery_id=callback.delivery_id,
            connection=callback.connection_id,
            attempt=callback.attempts,
            http_status=status,
            error=callback.last_error,
        )
    else:
        log.info(
            "callback.sent",
            callback_id=callback.id,
            delivery_id=callback.delivery_id,
            connection=callback.connection_id,
            attempt=callback.attempts,
            http_status=status,
        )
    pipe.set(key(callback.id), _encoder.encode(callback), ex=KEEP_DONE_S)
    pipe.zrem(DUE, callback.id)
    await pipe.execute()
    if callback.status == "failed":
        await health.exhausted(
            redis, dest, callback.id, callback.delivery_id, callback.attempts, callback.created_at, now
        )
    return callback.status


async def requeue(redis: Redis, callback_id: str, now: float) -> bool:
    """Recover: a failed callback is sent again (same webhook-id), with a fresh retry schedule."""
    callback = await get(redis, callback_id)
    if callback is None or callback.status != "failed":
        return False
    callback.status, callback.attempts, callback.next_attempt_at, callback.last_error = "pending", 0, now, None
    pipe = redis.pipeline(transaction=True)
    pipe.set(key(callback.id), _encoder.encode(callback))
    pipe.zadd(DUE, {callback.id: now})
    await pipe.execute()
    return True


async def dispatch_due(
    redis: Redis,
    config: Config,
    http: httpx.AsyncClient,
    *,
    now: float | None = None,
    limit: int = 100,
    budget_s: float = 30.0,
) -> dict[str, int]:
    """Send the callbacks due by `now` (the clock is a parameter so tests can jump ahead); no new
    send starts after `budget_s`, so the cron job ends within its timeout."""
    now = time.time() if now is None else now
    deadline = time.monotonic() + budget_s
    outcomes: dict[str, int] = {}
    for raw_id in await redis.zrangebyscore(DUE, "-inf", now, start=0, num=limit):
        if time.monotonic() > deadline:
            break
        callback_id = raw_id.decode()
        lock = callback_lease_key(callback_id)
        if not await redis.set(lock, b"1", nx=True, px=60_000):
            continue
        try:
            callback = await get(redis, callback_id)
            if callback is None or callback.status != "pending":
                await redis.zrem(DUE, callback_id)
                continue
            result = await send(redis, callback, config, http, now)
            outcomes[result] = outcomes.get(result, 0) + 1
        finally:
            await redis.delete(lock)
    return outcomes


async def dispatch_callbacks(ctx: dict[str, Any]) -> dict[str, int]:
    runtime = ctx["runtime"]
    return await dispatch_due(runtime.redis, runtime.config, runtime.http, budget_s=runtime.settings.run_budget_s / 2)


def cron_job(settings: Settings) -> CronJob:
    """Every 10 s: the first attempt goes out within seconds, retries on the connection's schedule."""
    return cron(
        dispatch_callbacks,
        name="dispatch_status_callbacks",
        second=set(range(0, 60, 10)),
        timeout=settings.job_timeout_s,
    )
