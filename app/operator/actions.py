"""Extra actions queued as deliveries of their own (add an attachment, a result link, move a
stage...), on a delivered application or on remote ids: retried like any delivery. Shared by the
JSON API and the CLI."""

from __future__ import annotations

import hashlib
import time

from app.core.model import AttachmentRef
from app.delivery.engine import ActionPayload, action_encoder
from app.delivery.record import Delivery, Status
from app.delivery.store import DeliveryStore, new_delivery_id
from app.intake.accept import idempotency_hash, key_reused


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
    # What the action is: its derived key, and with a caller's key the request it is bound to (a
    # reuse with another action is refused, as intake does: app/intake/accept.py). No candidate
    # data in it: remote ids, the action's parameters, the files' hashes.
    fingerprint = hashlib.sha256(
        f"{scope}\0{action}\0{sorted(params.items())}\0{[r.sha256 for r, _ in files]}".encode()
    ).hexdigest()
    key = idempotency_key or fingerprint
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
        request_fingerprint=fingerprint if idempotency_key else None,
    )
    payload = ActionPayload(action=action, params=dict(params), attachments=[r for r, _ in files])
    result = await store.create(
        delivery, action_encoder.encode(payload), [b for _, b in files], delivery.idempotency_key_hash
    )
    if not result.created and idempotency_key:
        existing = await store.get(result.delivery_id)
        if existing is not None and existing.request_fingerprint not in (None, fingerprint):
            raise key_reused()
    return result.delivery_id, result.created
