"""P2 baseline: arq's own rate for no-op jobs, one worker process, same Redis, settings and
event loop as the relay's worker (max_jobs=50, msgpack bodies, uvloop). Prints `<jobs> <seconds>`."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

from arq import Worker, create_pool
from arq.connections import RedisSettings

from app.delivery import queue
from app.net.event_loop import use_uvloop


async def noop(ctx: dict[str, Any], delivery_id: str) -> str:
    return "ok"


async def main(count: int) -> None:
    settings = RedisSettings.from_dsn(os.environ["REDIS_URL"])
    pool = await create_pool(settings, job_serializer=queue.job_serializer, job_deserializer=queue.job_deserializer)
    for start in range(0, count, 500):
        await asyncio.gather(*(pool.enqueue_job("noop", f"dlv_{i}") for i in range(start, min(start + 500, count))))
    await pool.aclose()
    worker = Worker(
        functions=[noop],
        redis_settings=settings,
        burst=True,
        max_jobs=50,
        keep_result=0,
        poll_delay=0.05,
        handle_signals=False,
        job_serializer=queue.job_serializer,
        job_deserializer=queue.job_deserializer,
    )
    started = time.perf_counter()
    await worker.async_run()
    elapsed = time.perf_counter() - started
    await worker.close()
    print(worker.jobs_complete, elapsed)


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main(int(sys.argv[1])))
