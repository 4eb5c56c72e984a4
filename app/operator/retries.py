"""Operator views and actions on deliveries beyond a single retry: the step timeline, the
candidate's name (for a `pii` token, audited), purging a dead letter, and bulk retries running in
the background with progress kept in Redis. Shared by the JSON API, the dashboard and the CLI."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog

from app.core.model import stored_decoder
from app.core.problems import Problem
from app.delivery.engine import file_count
from app.delivery.record import Delivery
from app.delivery.store import DeliveryStore
from app.operator import actions
from app.operator.query import DeliveryFilter, find_all_ids
from app.privacy import audit
from app.redis.keys import bulk_key

log = structlog.get_logger("applyrelay.operations")

BULK_KEEP_S = 7 * 24 * 3600
BULK_STALE_S = 60
BULK_PROGRESS_EVERY = 10


# -- views --------------------------------------------------------------------------------------


def timeline(delivery: Delivery) -> list[dict[str, Any]]:
    """What happened, in order: accepted, every attempt (step, outcome, HTTP status, latency, a
    PII-free error), and where it stands now."""
    events: list[dict[str, Any]] = [{"at": delivery.created_at, "event": "accepted", "channel": delivery.channel}]
    for attempt in delivery.attempts:
        event: dict[str, Any] = {
            "at": attempt.finished_at,
            "event": "attempt",
            "attempt": attempt.number,
            "outcome": attempt.outcome,
            "step": attempt.step,
            "http_status": attempt.http_status,
            "latency_ms": attempt.latency_ms,
        }
        if attempt.error:
            event["error"] = attempt.error
        if attempt.next_attempt_at:
            event["next_attempt_at"] = attempt.next_attempt_at
        events.append(event)
    if delivery.status == "delivered" and delivery.delivered_at:
        events.append({"at": delivery.delivered_at, "event": "delivered"})
    elif delivery.status == "failed" and delivery.last_error:
        events.append(
            {
                "at": delivery.last_error.at or delivery.updated_at,
                "event": "dead_lettered",
                "error": delivery.last_error.message,
                "http_status": delivery.last_error.http_status,
            }
        )
    elif delivery.status in ("retry_scheduled", "queued") and delivery.next_attempt_at:
        events.append({"at": delivery.next_attempt_at, "event": "next_attempt", "scheduled": True})
    return events


async def candidate_name(store: DeliveryStore, delivery: Delivery) -> dict[str, str] | None:
    """The candidate's name and address, or None (an action, or a purged payload)."""
    if delivery.kind != "application" or delivery.payload_purged:
        return None
    raw = await store.load_payload(delivery.id)
    if raw is None:
        return None
    candidate = stored_decoder.decode(raw).candidate
    return {
        "first_name": candidate.first_name,
        "last_name": candidate.last_name,
        "email_address": candidate.email_address,
    }


async def show_candidate(store: DeliveryStore, delivery: Delivery, actor: str, via: str) -> dict[str, str] | None:
    """Load the name to show it, and record that `actor` saw it."""
    name = await candidate_name(store, delivery)
    if name is not None:
        await audit.record(store.redis, actor, "view_detail", delivery.id, {"via": via, "fields": "name,email"})
    return name


# -- purge --------------------------------------------------------------------------------------


async def purge(store: DeliveryStore, delivery_id: str) -> Delivery:
    """Drop a dead letter's payload and files; its state stays as a tombstone."""
    delivery = await store.get(delivery_id)
    if delivery is None:
        raise Problem(404, "Not found", f"no delivery {delivery_id}")
    if delivery.status != "failed":
        raise Problem(409, "Not a dead letter", f"only failed deliveries can be purged; this one is {delivery.status}")
    if delivery.payload_purged:
        return delivery
    await store.purge(delivery, await file_count(store, delivery))
    return delivery


# -- bulk retries -------------------------------------------------------------------------------


@dataclass
class BulkProgress:
    id: str
    status: str  # running | done | failed | stale
    total: int
    done: int
    retried: int
    unchanged: int
    errors: int
    actor: str
    created_at: float
    updated_at: float
    filter: dict[str, str]

    @property
    def percent(self) -> int:
        if self.status == "done" and self.total == 0:
            return 100
        return int(100 * self.done / self.total) if self.total else 0

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "percent": self.percent}


_tasks: set[asyncio.Task[Any]] = set()


async def start_bulk_retry(store: DeliveryStore, f: DeliveryFilter, actor: str) -> str:
    """Record the job and run it as a task of this process; returns its id at once."""
    bulk_id = await create_bulk_retry(store, f, actor)
    task = asyncio.create_task(run_bulk_retry(store, bulk_id, f))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return bulk_id


async def create_bulk_retry(store: DeliveryStore, f: DeliveryFilter, actor: str) -> str:
    """Record a bulk retry (progress, audit entry); `run_bulk_retry` does it."""
    bulk_id = "blk_" + secrets.token_hex(12)
    now = time.time()
    await store.redis.hset(
        bulk_key(bulk_id),
        mapping={
            "status": "running",
            "total": 0,
            "done": 0,
            "retried": 0,
            "unchanged": 0,
            "errors": 0,
            "actor": actor,
            "created_at": now,
            "updated_at": now,
            "filter": msgspec.json.encode(f.as_params()),
        },
    )
    await store.redis.expire(bulk_key(bulk_id), BULK_KEEP_S)
    await audit.record(store.redis, actor, "bulk_retry", bulk_id, {"filter": f.as_params()})
    return bulk_id


async def run_bulk_retry(store: DeliveryStore, bulk_id: str, f: DeliveryFilter) -> None:
    key = bulk_key(bulk_id)
    counts = {"done": 0, "retried": 0, "unchanged": 0, "errors": 0}
    try:
        ids = await find_all_ids(store, f)
        await store.redis.hset(key, mapping={"total": len(ids), "updated_at": time.time()})
        for n, delivery_id in enumerate(ids, 1):
            try:
                result = await actions.retry(store, delivery_id)
                counts["retried" if result.changed else "unchanged"] += 1
            except Problem:
                counts["errors"] += 1
            counts["done"] += 1
            if n % BULK_PROGRESS_EVERY == 0:
                await store.redis.hset(key, mapping={**counts, "updated_at": time.time()})
        await store.redis.hset(key, mapping={**counts, "status": "done", "updated_at": time.time()})
        log.info("bulk_retry.done", bulk_id=bulk_id, **counts)
    except Exception as exc:  # a Redis failure mid-way: say so, never leave it "running"
        log.warning("bulk_retry.failed", bulk_id=bulk_id, error_type=type(exc).__name__)
        try:
            await store.redis.hset(key, mapping={**counts, "status": "failed", "updated_at": time.time()})
        except Exception:  # noqa: S110 - Redis is gone; the progress reads as stale
            pass


async def bulk_progress(store: DeliveryStore, bulk_id: str) -> BulkProgress | None:
    raw = await store.redis.hgetall(bulk_key(bulk_id))
    if not raw:
        return None
    data = {k.decode(): v.decode() for k, v in raw.items()}
    updated = float(data["updated_at"])
    status = data["status"]
    if status == "running" and time.time() - updated > BULK_STALE_S:
        status = "stale"  # the web process running it stopped; start it again (retries are idempotent)
    return BulkProgress(
        id=bulk_id,
        status=status,
        total=int(data["total"]),
        done=int(data["done"]),
        retried=int(data["retried"]),
        unchanged=int(data["unchanged"]),
        errors=int(data["errors"]),
        actor=data["actor"],
        created_at=float(data["created_at"]),
        updated_at=updated,
        filter=msgspec.json.decode(data["filter"]),
    )
