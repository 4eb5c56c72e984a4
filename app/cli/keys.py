"""`applyrelay keys new | rotate`: the data keys that encrypt candidate data at rest.

Rotation, step by step (docs/data-protection.md):
  1. `applyrelay keys new` → put it first: APPLYRELAY_DATA_KEY=<new>,<old>; restart web and workers
     (new writes now use <new>, reads still open <old> records);
  2. `applyrelay keys rotate` → re-encrypts every stored payload, file and the index key under <new>;
  3. drop <old> from APPLYRELAY_DATA_KEY; restart.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from app.blobs.store import BlobStore, file_blob_name, open_store
from app.delivery.engine import FILE_SLACK, file_count
from app.delivery.store import BLOB_REF, DeliveryStore
from app.privacy import audit
from app.privacy.crypto import AesGcmSealer, SealError, new_key
from app.redis.keys import INDEX_KEY, SEALED_PATTERNS, STATE_PATTERN

# Replace a record only if nobody changed or deleted it since we read it (a worker may be storing
# a fetched file, or a purge dropping it): compare-and-set, keeping any TTL.
_SWAP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
"""


@dataclass
class RotationReport:
    resealed: int = 0
    current: int = 0
    changed_meanwhile: int = 0
    unreadable: int = 0


async def rotate(
    redis: Redis, sealer: AesGcmSealer, *, batch: int = 500, blobs: BlobStore | None = None
) -> RotationReport:
    """Re-encrypt every sealed record not yet under the first key (and, with `blobs`, every file
    in the blob store: those a file key names, and each delivery's derived ones)."""
    report = RotationReport()
    swap = redis.register_script(_SWAP)

    async def reseal_blob(name: str, still_wanted: Callable[[], Awaitable[bool]]) -> None:
        sealed = await blobs.get(name) if blobs is not None else None
        if sealed is None:
            return
        try:
            if sealer.is_current(sealed):
                report.current += 1
                return
            fresh = sealer.seal(sealer.open(sealed))
        except SealError:
            report.unreadable += 1
            return
        await blobs.put(name, fresh)  # type: ignore[union-attr]  # same name: atomic replace
        if not await still_wanted():  # dropped meanwhile: do not leave it re-created
            await blobs.delete(name)  # type: ignore[union-attr]
            report.changed_meanwhile += 1
            return
        report.resealed += 1

    async def one_blob(key: bytes, ref: bytes) -> None:
        async def named() -> bool:
            return bool(await redis.get(key) == ref)

        await reseal_blob(ref[len(BLOB_REF) :].decode(), named)

    store = DeliveryStore(redis, sealer=sealer, blobs=blobs)

    async def derived_blobs(key: bytes) -> None:
        """A delivery's files under their derived names (no file key names them): wanted while the
        delivery is there with its files; a purge deletes them again after saying so in the state
        (app/delivery/store.py), so one written back here in between does not survive it."""
        delivery = await store.get(key.decode().split(":", 2)[2])
        if delivery is None or delivery.files_purged:
            return

        async def kept() -> bool:
            fresh = await store.get(delivery.id)
            return fresh is not None and not fresh.files_purged

        try:
            count = await file_count(store, delivery)
        except SealError:  # its payload is unreadable (counted there): its files are tried all the same
            count = FILE_SLACK
        for index in range(count):
            await reseal_blob(file_blob_name(delivery.id, index), kept)

    async def one(key: bytes) -> None:
        blob = await redis.get(key)
        if blob is None:
            return
        if blob.startswith(BLOB_REF):  # a reference: the file is sealed in the blob store
            await one_blob(key, blob)
            return
        try:
            if sealer.is_current(blob):
                report.current += 1
                return
            fresh = sealer.seal(sealer.open(blob))
        except SealError:
            report.unreadable += 1
            return
        if await swap(keys=[key], args=[blob, fresh]):
            report.resealed += 1
        else:
            report.changed_meanwhile += 1  # rewritten (under the new key) or deleted meanwhile

    await one(INDEX_KEY.encode())
    for pattern in SEALED_PATTERNS:
        async for key in redis.scan_iter(match=pattern, count=batch):
            await one(key)
    if blobs is not None:
        async for key in redis.scan_iter(match=STATE_PATTERN, count=batch):
            await derived_blobs(key)
    return report


def operator() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def cmd_new(_: argparse.Namespace) -> None:
    print(f"APPLYRELAY_DATA_KEY={new_key()}")
    print(
        "# keep it secret (a secret manager, not the repository). To rotate: put the new key first,\n"
        "# APPLYRELAY_DATA_KEY=<new>,<old>, restart, run `applyrelay keys rotate`, then drop <old>.",
        file=sys.stderr,
    )


def cmd_rotate(_: argparse.Namespace) -> None:
    from app.cli import _settings
    from app.log import configure
    from app.runtime import redis_client

    configure(stream=sys.stderr)

    settings = _settings()
    sealer = AesGcmSealer(settings.data_keys)

    async def main() -> RotationReport:
        redis = redis_client(settings.redis_url)
        try:
            report = await rotate(redis, sealer, blobs=open_store(settings.blobs))
            await audit.record(redis, operator(), "rotate_keys", f"key:{sealer.current.hex()}", vars(report))
            return report
        finally:
            await redis.aclose()

    report = asyncio.run(main())
    print(
        f"applyrelay: re-encrypted {report.resealed} records under key {sealer.current.hex()} "
        f"({report.current} already were, {report.changed_meanwhile} changed meanwhile, "
        f"{report.unreadable} unreadable)"
    )
    if report.unreadable:
        sys.exit(
            "applyrelay: some records are sealed with a key that is not in APPLYRELAY_DATA_KEY; "
            "add it back (after the new one) and run `applyrelay keys rotate` again"
        )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="data keys: encryption of candidate data at rest")
    actions = keys.add_subparsers(dest="keys_command", required=True)
    actions.add_parser("new", help="print a new APPLYRELAY_DATA_KEY").set_defaults(fn=cmd_new)
    actions.add_parser("rotate", help="re-encrypt every stored record under the first key").set_defaults(fn=cmd_rotate)
