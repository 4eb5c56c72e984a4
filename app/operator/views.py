"""What an operator sees of a delivery: the API's and the CLI's JSON shapes, the list row, the step
timeline, and the candidate's name for a `pii` token (audited). Shared by the JSON API, the
dashboard and the CLI, which call this module rather than each other."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from app.core.model import stored_as_data
from app.delivery.record import Delivery
from app.delivery.store import DeliveryStore
from app.privacy import audit


def public_view(delivery: Delivery) -> dict[str, Any]:
    """The JSON shape of GET /v1/deliveries/{id}: everything but internal counters."""
    data = msgspec.to_builtins(delivery)
    for f in msgspec.structs.fields(Delivery):  # the stored form omits defaults; the API shows them
        if f.encode_name not in data:
            default = f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
            data[f.encode_name] = msgspec.to_builtins(default)
    data.pop("idempotency_key_hash", None)
    data.pop("version", None)
    data.pop("request_fingerprint", None)  # a keyed hash of the request: of use to intake only
    data["steps"] = [{"name": k, "remote_id": v} for k, v in delivery.checkpoints.items()]
    return data


def summary(delivery: Delivery) -> dict[str, Any]:
    """A list row: ids, where it stands, where it came from; never candidate data."""
    return {
        "id": delivery.id,
        "status": delivery.status,
        "kind": delivery.kind,
        "connection_id": delivery.connection_id,
        "connector": delivery.connector,
        "channel": delivery.channel,
        "board": delivery.board,
        "board_application_id": delivery.board_application_id,
        "job_id": delivery.job_id,
        "action": delivery.action,
        "created_at": delivery.created_at,
        "updated_at": delivery.updated_at,
        "delivered_at": delivery.delivered_at,
        "next_attempt_at": delivery.next_attempt_at,
        "runs": delivery.runs,
        "attempts": len(delivery.attempts),
        "last_error": msgspec.to_builtins(delivery.last_error) if delivery.last_error else None,
        "payload_purged": delivery.payload_purged,
    }


def connection_names(configured: Iterable[str], seen: list[str]) -> list[str]:
    """The connections to offer in filter menus: configured ones and any seen in deliveries."""
    return sorted(set(configured) | set(seen))


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
    candidate = stored_as_data(raw).get("candidate") or {}
    return {key: str(candidate.get(key, "")) for key in ("first_name", "last_name", "email_address")}


async def show_candidate(store: DeliveryStore, delivery: Delivery, actor: str, via: str) -> dict[str, str] | None:
    """Load the name to show it, and record that `actor` saw it."""
    name = await candidate_name(store, delivery)
    if name is not None:
        await audit.record(store.redis, actor, "view_detail", delivery.id, {"via": via, "fields": "name,email"})
    return name
