"""The orphan sweep: blobs written to the blob store whose Redis transaction never happened.

Intake notes each blob in `ar:blobs:pending` before writing it, writes it (temp name, fsync,
rename), then runs the transaction that makes the delivery visible with its references
(app/delivery/store.py). A web process killed in between leaves a blob nothing references: this
worker cron deletes every pending blob older than the blob TTL whose delivery was never stored
(or whose files were purged since; an older release's random blob: whose file key does not name
it), and the fs store's stale temp files (a write cut short). Never a delivery without its file; at
worst an orphan for an hour.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import structlog
from arq import cron

from app.redis.batch import BLOB_TTL_MS

if TYPE_CHECKING:
    from arq.cron import CronJob

    from app.settings import Settings

log = structlog.get_logger("applyrelay.blobs")
# Past the TTL of a reference an unfinished transaction may have SET (then it has expired), with
# a margin: no intake takes that long.
ORPHAN_AFTER_S = BLOB_TTL_MS / 1000 + 600


async def sweep(ctx: dict[str, Any]) -> int:
    runtime = ctx["runtime"]
    started = time.monotonic()
    swept = await runtime.store.sweep_orphans(ORPHAN_AFTER_S)
    if swept:
        log.info("blobs.orphans_swept", blobs=swept, seconds=round(time.monotonic() - started, 3))
    return int(swept)


def cron_job(settings: Settings) -> CronJob:
    """Every 10 minutes (offset from retention), once at start-up; the delivery jobs' timeout."""
    return cron(
        sweep,
        name="blob_sweep",
        minute=set(range(5, 60, 10)),
        run_at_startup=True,
        unique=True,
        timeout=settings.job_timeout_s,
    )
