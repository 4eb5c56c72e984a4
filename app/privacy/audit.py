"""The audit log of operator actions on candidate data: who (token name), what, when, on which
record. It never holds the PII itself: targets are delivery ids or keyed hashes."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from redis.asyncio import Redis

from app.redis.keys import AUDIT_STREAM

MAX_ENTRIES = 1_000_000


class AuditEntry(msgspec.Struct, omit_defaults=True):
    at: float
    actor: str
    action: str  # view_detail | retry | retry_attachments | bulk_retry | purge | erase | export | ...
    target: str | None = None
    detail: dict[str, Any] = {}
    id: str | None = None


async def record(
    redis: Redis, actor: str, action: str, target: str | None = None, detail: dict[str, Any] | None = None
) -> None:
    entry = AuditEntry(at=time.time(), actor=actor, action=action, target=target, detail=detail or {})
    await redis.xadd(AUDIT_STREAM, {"e": msgspec.json.encode(entry)}, maxlen=MAX_ENTRIES, approximate=True)


async def read(redis: Redis, *, count: int = 100, before: str | None = None) -> list[AuditEntry]:
    """Newest first; `before` is an entry id for paging."""
    rows = await redis.xrevrange(AUDIT_STREAM, max=f"({before}" if before else "+", min="-", count=count)
    entries = []
    for entry_id, fields in rows:
        entry = msgspec.json.decode(fields[b"e"], type=AuditEntry)
        entry.id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        entries.append(entry)
    return entries
