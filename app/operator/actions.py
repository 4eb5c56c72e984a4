"""Operator actions on deliveries, shared by the JSON API, the dashboard and the CLI."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from app.core.model import AttachmentRef
from app.core.problems import Problem
from app.delivery import transitions
from app.delivery.engine import ActionPayload, action_encoder
from app.delivery.record import Delivery, Status
from app.delivery.store import DeliveryStore, new_delivery_id
from app.intake.accept import idempotency_hash


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


async def enqueue_action(
    store: DeliveryStore,
    parent: Delivery | None,
    action: str,
    params: dict[str, object],
    files: list[tuple[AttachmentRef, bytes]],
    idempotency_key: str | None,
    *,
    connection_id: str | None = None,
    connector: str | None = None,
) -> tuple[str, bool]:
    """Queue an extra action (on a delivered application, or on remote ids given directly);
    retried like any delivery. Returns (delivery id, created)."""
    now = time.time()
    connection_id = parent.connection_id if parent else connection_id
    connector = parent.connector if parent else connector
    if not connection_id or not connector:
        raise ValueError("an action needs a parent delivery or a connection")
    scope = parent.id if parent else connection_id
    key = (
        idempotency_key
        or hashlib.sha256(
            f"{scope}\0{action}\0{sorted(params.items())}\0{[r.sha256 for r, _ in files]}".encode()
        ).hexdigest()
    )
    delivery = Delivery(
        id=new_delivery_id(),
        connection_id=connection_id,
        connector=connector,
        status=Status.QUEUED,
        created_at=now,
        updated_at=now,
        idempotency_key_hash=idempotency_hash(connection_id, "action:" + key),
        channel="action",
        kind="action",
        action=action,
        action_params=dict(params),
        parent_id=parent.id if parent else None,
        job_id=parent.job_id if parent else None,
        next_attempt_at=now,
    )
    payload = ActionPayload(action=action, params=dict(params), attachments=[r for r, _ in files])
    result = await store.create(
        delivery, action_encoder.encode(payload), [b for _, b in files], delivery.idempotency_key_hash
    )
    return result.delivery_id, result.created
