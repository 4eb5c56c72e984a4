"""The health of every outbound destination, on Svix's model (docs/boards.md, "Callback health"):
status callbacks, HelloWork status pushes and Indeed dispositions alike.

* A destination is ``<kind>:<connection>`` (``callback:acme``, ``hellowork:acme``,
  ``indeed:acme``); its hash ``ar:dest:<destination>`` counts attempts, successes and failures,
  and keeps ``failing_since`` (the first failure since the last success), ``disabled_at``; its
  last attempts are a capped list (``ar:dest:<destination>:attempts``).
* A message that exhausts its retries raises the operational event ``message.attempt.exhausted``
  and joins the destination's failed set (``ar:dest:<destination>:failed``, scored by the
  message's creation time), which "recover failed messages since T" reads.
* A destination failing every attempt for `disable_after_s` (5 days by default; Svix starts
  that clock only once several failures are at least 12 h apart, which a period of days implies
  here as the retries keep coming) is disabled with an ``endpoint.disabled`` event: nothing is
  attempted until an operator enables it (``endpoint.enabled``); what comes due meanwhile is
  failed at once, to be recovered.
* Events are a capped stream ``ar:events`` and counted per type and destination kind in the
  ``ar:m:events`` hash, which /metrics reads. They carry ids, never candidate data.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog
from redis.asyncio import Redis

from app.redis.client import awaited
from app.redis.keys import DESTINATIONS, EVENTS_STREAM, destination_key, metric_key, recover_key

log = structlog.get_logger("applyrelay.destinations")

DEFAULT_DISABLE_AFTER_S = 5 * 24 * 3600.0
ATTEMPT_LOG = 100
EVENTS_MAX = 10_000
RECOVER_KEEP_S = 7 * 24 * 3600
EXHAUSTED = "message.attempt.exhausted"
DISABLED = "endpoint.disabled"
ENABLED = "endpoint.enabled"
SEP = "\x1f"


def destination(kind: str, connection_id: str) -> str:
    return f"{kind}:{connection_id}"


def attempts_key(dest: str) -> str:
    return destination_key(dest) + ":attempts"


def failed_key(dest: str) -> str:
    return destination_key(dest) + ":failed"


async def event(redis: Redis, kind: str, dest: str, data: dict[str, Any], now: float) -> None:
    """Record an operational event (listed by the API, counted in /metrics)."""
    body = msgspec.json.encode({"type": kind, "destination": dest, "at": now, **data})
    pipe = redis.pipeline(transaction=True)
    pipe.xadd(EVENTS_STREAM, {"event": body}, maxlen=EVENTS_MAX, approximate=True)
    pipe.hincrby(metric_key("events"), f"{kind}{SEP}{dest.split(':', 1)[0]}", 1)
    await pipe.execute()
    log.warning("destination.event", event_type=kind, destination=dest, **{k: v for k, v in data.items() if k != "at"})


async def events(redis: Redis, count: int = 100) -> list[dict[str, Any]]:
    rows = await redis.xrevrange(EVENTS_STREAM, count=count)
    return [{"id": rid.decode(), **msgspec.json.decode(fields[b"event"])} for rid, fields in rows]


async def is_disabled(redis: Redis, dest: str) -> bool:
    return bool(await awaited(redis.hexists(destination_key(dest), "disabled_at")))


async def record_attempt(
    redis: Redis,
    dest: str,
    *,
    ok: bool,
    now: float,
    message_id: str,
    http_status: int | None = None,
    error: str | None = None,
    disable_after_s: float = DEFAULT_DISABLE_AFTER_S,
) -> bool:
    """Count one attempt; True when this failure disabled the destination."""
    key = destination_key(dest)
    entry = msgspec.json.encode(
        {"at": now, "message_id": message_id, "ok": ok, "http_status": http_status, "error": error}
    )
    pipe = redis.pipeline(transaction=True)
    pipe.sadd(DESTINATIONS, dest)
    pipe.hincrby(key, "attempts", 1)
    pipe.hset(key, "last_attempt_at", repr(now))
    pipe.lpush(attempts_key(dest), entry)
    pipe.ltrim(attempts_key(dest), 0, ATTEMPT_LOG - 1)
    if ok:
        pipe.hincrby(key, "successes", 1)
        pipe.hset(key, "last_success_at", repr(now))
        pipe.hdel(key, "failing_since")
    else:
        pipe.hincrby(key, "failures", 1)
        pipe.hset(key, "last_failure_at", repr(now))
        pipe.hsetnx(key, "failing_since", repr(now))
    pipe.hget(key, "failing_since")
    pipe.hget(key, "disabled_at")
    *_, failing_since, disabled_at = await pipe.execute()
    if ok or disabled_at is not None or failing_since is None:
        return False
    if now - float(failing_since) < disable_after_s:
        return False
    if not await awaited(redis.hsetnx(key, "disabled_at", repr(now))):
        return False  # another worker disabled it first
    await event(redis, DISABLED, dest, {"fail_since": float(failing_since), "trigger": "automatic"}, now)
    return True


async def exhausted(
    redis: Redis, dest: str, message_id: str, delivery_id: str, attempts: int, created_at: float, now: float
) -> None:
    """A message gave up: the event, and a place in the destination's failed set."""
    await awaited(redis.zadd(failed_key(dest), {message_id: created_at}))
    await event(
        redis, EXHAUSTED, dest, {"message_id": message_id, "delivery_id": delivery_id, "attempts": attempts}, now
    )


async def failed_without_attempt(redis: Redis, dest: str, message_id: str, created_at: float) -> None:
    """A message that came due while its destination was disabled: failed, to be recovered."""
    await awaited(redis.zadd(failed_key(dest), {message_id: created_at}))


async def enable(redis: Redis, dest: str, now: float, actor: str) -> bool:
    key = destination_key(dest)
    if not await is_disabled(redis, dest):
        return False
    await awaited(redis.hdel(key, "disabled_at", "failing_since"))
    await event(redis, ENABLED, dest, {"trigger": "manual", "actor": actor}, now)
    return True


def _number(raw: bytes | None) -> float | None:
    return float(raw) if raw is not None else None


async def describe(redis: Redis, dest: str, attempts: int = 20) -> dict[str, Any]:
    raw = await awaited(redis.hgetall(destination_key(dest)))
    data = {k.decode(): v for k, v in raw.items()}
    log_rows = await awaited(redis.lrange(attempts_key(dest), 0, attempts - 1))
    kind, _, connection = dest.partition(":")
    return {
        "destination": dest,
        "kind": kind,
        "connection_id": connection,
        "attempts": int(data.get("attempts", 0)),
        "successes": int(data.get("successes", 0)),
        "failures": int(data.get("failures", 0)),
        "last_attempt_at": _number(data.get("last_attempt_at")),
        "last_success_at": _number(data.get("last_success_at")),
        "failing_since": _number(data.get("failing_since")),
        "disabled_at": _number(data.get("disabled_at")),
        "disabled": "disabled_at" in data,
        "failed_messages": int(await awaited(redis.zcard(failed_key(dest)))),
        "recent_attempts": [msgspec.json.decode(r) for r in log_rows],
    }


async def disabled_destinations(redis: Redis) -> list[dict[str, Any]]:
    """The disabled destinations and since when (the dashboard's banner)."""
    out = []
    for name in sorted(m.decode() for m in await awaited(redis.smembers(DESTINATIONS))):
        at = await awaited(redis.hget(destination_key(name), "disabled_at"))
        if at is not None:
            out.append({"destination": name, "disabled_at": float(at)})
    return out


async def all_destinations(redis: Redis) -> list[dict[str, Any]]:
    names = sorted(m.decode() for m in await awaited(redis.smembers(DESTINATIONS)))
    return [await describe(redis, name, attempts=5) for name in names]


# -- recover failed messages since T (in the background, with progress, as bulk retry does) -------

Requeue = Callable[[str, float], Awaitable[bool]]


async def start_recover(redis: Redis, dest: str, since: float, actor: str, requeue: Requeue) -> str:
    recover_id = "rcv_" + secrets.token_hex(12)
    key = recover_key(recover_id)
    now = time.time()
    await awaited(
        redis.hset(
            key,
            mapping={
                "destination": dest,
                "since": repr(since),
                "actor": actor,
                "status": "running",
                "total": 0,
                "requeued": 0,
                "skipped": 0,
                "created_at": repr(now),
            },
        )
    )
    await redis.expire(key, RECOVER_KEEP_S)
    task = asyncio.create_task(run_recover(redis, recover_id, dest, since, requeue))
    _running.add(task)
    task.add_done_callback(_running.discard)
    return recover_id


_running: set[asyncio.Task[None]] = set()


async def run_recover(redis: Redis, recover_id: str, dest: str, since: float, requeue: Requeue) -> None:
    key = recover_key(recover_id)
    try:
        ids = [m.decode() for m in await redis.zrangebyscore(failed_key(dest), since, "+inf")]
        await awaited(redis.hset(key, "total", str(len(ids))))
        for message_id in ids:
            if await requeue(message_id, time.time()):
                await awaited(redis.zrem(failed_key(dest), message_id))
                await awaited(redis.hincrby(key, "requeued", 1))
            else:
                await awaited(redis.hincrby(key, "skipped", 1))
        await awaited(redis.hset(key, "status", "done"))
        log.info("destination.recovered", destination=dest, recover_id=recover_id, count=len(ids))
    except Exception as exc:  # the progress says so; the failed set keeps what was not requeued
        await awaited(redis.hset(key, mapping={"status": "failed", "error": type(exc).__name__}))
        log.warning("destination.recover_failed", recover_id=recover_id, error_type=type(exc).__name__)


async def recover_progress(redis: Redis, recover_id: str) -> dict[str, Any] | None:
    raw = await awaited(redis.hgetall(recover_key(recover_id)))
    if not raw:
        return None
    data = {k.decode(): v.decode() for k, v in raw.items()}
    return {
        "id": recover_id,
        "destination": data["destination"],
        "since": float(data["since"]),
        "status": data["status"],
        "total": int(data["total"]),
        "requeued": int(data["requeued"]),
        "skipped": int(data["skipped"]),
    }
