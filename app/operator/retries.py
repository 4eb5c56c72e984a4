"""What an operator does to deliveries: retry one (from its last checkpoint, or only its unconfirmed
files), purge a dead letter, and bulk retries running in the background with progress kept in
Redis. Shared by the JSON API, the dashboard and the CLI; every action is audited."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog

from app.core.problems import Problem
from app.delivery import transitions
from app.delivery.engine import file_count
from app.delivery.record import Delivery
from app.delivery.store import DeliveryStore
from app.operator.query import DeliveryFilter, find_all_ids
from app.privacy import audit
from app.redis.client import awaited
from app.redis.keys import bulk_key

log = structlog.get_logger("applyrelay.operations")

BULK_KEEP_S = 7 * 24 * 3600
BULK_STALE_S = 60
BULK_PROGRESS_EVERY = 10


# -- views --------------------------------------------------------------------------------------


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
    await awaited(
        store.redis.hset(
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
    )
    await store.redis.expire(bulk_key(bulk_id), BULK_KEEP_S)
    await audit.record(store.redis, actor, "bulk_retry", bulk_id, {"filter": f.as_params()})
    return bulk_id


async def run_bulk_retry(store: DeliveryStore, bulk_id: str, f: DeliveryFilter) -> None:
    key = bulk_key(bulk_id)
    counts = {"done": 0, "retried": 0, "unchanged": 0, "errors": 0}
    try:
        ids = await find_all_ids(store, f)
        await awaited(store.redis.hset(key, mapping={"total": len(ids), "updated_at": time.time()}))
        for n, delivery_id in enumerate(ids, 1):
            try:
                result = await retry(store, delivery_id)
                counts["retried" if result.changed else "unchanged"] += 1
            except Problem:
                counts["errors"] += 1
            counts["done"] += 1
            if n % BULK_PROGRESS_EVERY == 0:
                await awaited(store.redis.hset(key, mapping={**counts, "updated_at": time.time()}))
        await awaited(store.redis.hset(key, mapping={**counts, "status": "done", "updated_at": time.time()}))
        log.info("bulk_retry.done", bulk_id=bulk_id, **counts)
    except Exception as exc:  # a Redis failure mid-way: say so, never leave it "running"
        log.warning("bulk_retry.failed", bulk_id=bulk_id, error_type=type(exc).__name__)
        try:
            await awaited(store.redis.hset(key, mapping={**counts, "status": "failed", "updated_at": time.time()}))
        except Exception:  # noqa: S110 - Redis is gone; the progress reads as stale
            pass


async def bulk_progress(store: DeliveryStore, bulk_id: str) -> BulkProgress | None:
    raw = await awaited(store.redis.hgetall(bulk_key(bulk_id)))
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


@dataclass
class RetryResult:
    delivery_id: str
    changed: bool
    status: str


async def retry(store: DeliveryStore, delivery_id: str, *, attachments_only: bool = False) -> RetryResult:
    """Run the delivery again now, from its last checkpoint. Idempotent: a delivery already queued
    or running is left as it is; a delivered one is only re-run for its unconfirmed files."""
    delivery = await store.get(delivery_id)
    if delivery is None:
        raise Problem(404, "Not found", f"no delivery {delivery_id}")
    if delivery.payload_purged:
        raise Problem(409, "Purged", "the delivery's payload was purged; it cannot be retried")
    if attachments_only:
        pending = [a for a in delivery.attachments if not a.confirmed]
        if not pending:
            return RetryResult(delivery_id, False, delivery.status)
        if delivery.status in ("queued", "delivering"):
            return RetryResult(delivery_id, False, delivery.status)
        if delivery.files_purged:
            raise Problem(409, "Files purged", "the attachment bytes were already dropped")
    elif delivery.status not in transitions.RETRYABLE:
        return RetryResult(delivery_id, False, delivery.status)
    move = transitions.requeue(delivery, time.time(), fresh_schedule=True)  # an operator's retry starts afresh
    await store.save(delivery, move, run_at=time.time())
    return RetryResult(delivery_id, True, "queued")


async def retry_one(store: DeliveryStore, delivery_id: str, who: str, *, attachments_only: bool) -> RetryResult:
    """An operator's retry of one delivery, audited under `who`."""
    result = await retry(store, delivery_id, attachments_only=attachments_only)
    await audit.record(
        store.redis,
        who,
        "retry_attachments" if attachments_only else "retry",
        delivery_id,
        {"changed": result.changed},
    )
    return result
