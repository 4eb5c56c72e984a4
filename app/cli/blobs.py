"""`applyrelay blobs migrate | sweep`: the blob store from a terminal (docs/operations.md,
"Attachments: local files or S3").

`migrate` moves the files older releases stored under a file key ar:f:* (sealed bytes in Redis,
or a reference to a random blob) to their derived blob, each key deleted only if it is unchanged,
so a queued application keeps no per-file key (bench P5); it can be stopped and run again at any
time (files already moved have no key left). `sweep` deletes orphan blobs now (what the worker cron does).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.settings import Settings

FILE_PATTERN = "ar:f:*"


async def migrate(settings: Settings, *, batch: int = 200) -> Counter[str]:
    from app.runtime import Runtime

    runtime = Runtime(settings)
    counts: Counter[str] = Counter()
    try:
        async for key in runtime.redis.scan_iter(match=FILE_PATTERN, count=batch):
            counts[await runtime.store.migrate_file(key.decode())] += 1
    finally:
        await runtime.close()
    return counts


async def sweep(settings: Settings, older_than_s: float) -> int:
    from app.runtime import Runtime

    runtime = Runtime(settings)
    try:
        return await runtime.store.sweep_orphans(older_than_s)
    finally:
        await runtime.close()


def cmd_migrate(args: argparse.Namespace) -> None:
    from app.cli import _settings
    from app.log import configure

    configure(stream=sys.stderr)
    settings = _settings()
    counts = asyncio.run(migrate(settings, batch=args.batch))
    print(
        f"applyrelay: moved {counts['moved']} files to {settings.blobs.describe()} "
        f"({counts['skipped']} already there, {counts['changed']} changed meanwhile)"
    )


def cmd_sweep(args: argparse.Namespace) -> None:
    from app.cli import _settings
    from app.log import configure
    from app.privacy.blob_sweep import ORPHAN_AFTER_S

    configure(stream=sys.stderr)
    settings = _settings()
    older = ORPHAN_AFTER_S if args.older_than_s is None else args.older_than_s
    print(f"applyrelay: swept {asyncio.run(sweep(settings, older))} orphan blobs")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    blobs = sub.add_parser("blobs", help="the blob store of attachment bytes (APPLYRELAY_BLOBS)")
    actions = blobs.add_subparsers(dest="blobs_command", required=True)
    p = actions.add_parser("migrate", help="move files kept in Redis (before the blob store) into it")
    p.add_argument("--batch", type=int, default=200)
    p.set_defaults(fn=cmd_migrate)
    p = actions.add_parser("sweep", help="delete orphan blobs (written, never referenced) now")
    p.add_argument("--older-than-s", type=float, default=None, help="default: the blob TTL + 10 minutes")
    p.set_defaults(fn=cmd_sweep)
