"""Deliveries as older releases stored their files (app/delivery/store.py, BLOB_REF): rewritten
from today's derived blobs, for the tests that older data still delivers, retries, erases and
migrates."""

from __future__ import annotations

from app.blobs.store import file_blob_name, new_name
from app.delivery.store import BLOB_REF
from app.redis.keys import file_key
from tests.support.harness import Relay


async def to_old_format(relay: Relay, delivery_id: str, *, as_ref: bool = False, files: int = 4) -> int:
    """Each of the delivery's files moved from its derived blob to a file key: the sealed bytes in
    Redis (before the blob store), or (`as_ref`) a reference to a random blob (the first blob-store
    release). How many were moved."""
    moved = 0
    for index in range(files):
        derived = file_blob_name(delivery_id, index)
        sealed = await relay.blobs.get(derived)
        if sealed is None:
            continue
        if as_ref:
            name = new_name()
            await relay.blobs.put(name, sealed)
            await relay.redis.set(file_key(delivery_id, index), BLOB_REF + name.encode())
        else:
            await relay.redis.set(file_key(delivery_id, index), sealed)
        await relay.blobs.delete(derived)
        moved += 1
    return moved
