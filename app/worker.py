"""The arq worker: picks delivery jobs and hands them to the engine.

Pickup is immediate: intake pushes a token on `ar:wake` in the same transaction that enqueues,
and the worker waits on it (BLPOP) between polls instead of sleeping arq's 0.5 s poll delay.
Jobs are short (`job_timeout`), so a killed worker's job is re-run soon after arq's in-progress
lease (job_timeout + 10 s) lapses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from arq import Retry, Worker
from arq.constants import in_progress_key_prefix
from arq.cron import CronJob
from arq.worker import func
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError, WatchError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.delivery import queue, reaper
from app.delivery.engine import DeliveryEngine, EngineDeps
from app.delivery.limits import ConnectionLimiter
from app.operator import connection_health
from app.privacy import blob_sweep, file_links, retention
from app.redis import client
from app.redis.keys import WAKE_KEY
from app.runtime import Runtime
from app.settings import Settings
from app.tracking import boards, callbacks, poll

log = structlog.get_logger("applyrelay.worker")
BUSY_RETRY_S = 5
WAKE_WAIT_S = 0.5  # longest wait for a wake-up token (scheduled retries are picked up this late at most)
BUSY_POLL_S = 0.05
REDIS_RETRY_S = 2
CRASH_RETRY_S = 30  # after an unexpected exception in a run (a bug): soon, but not in a tight loop
# Redis going away (restart, failover, network): the worker waits for it rather than exiting.
# (ReadOnlyError: a Sentinel failover in progress; OutOfMemoryError: Redis at maxmemory, which
# intake's high-water mark keeps rare, app/blobs/capacity.py.)
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OutOfMemoryError, ConnectionError, OSError)
# redis-py reports a connection lost during WATCH as a WatchError; arq's polling WATCHes.
POLL_ERRORS = (*REDIS_ERRORS, WatchError)


# arq cancels a job that overruns its timeout and, with `keep_result=0`, drops it: the delivery
# would stay `delivering` with no job left to run it. So the run ends itself at `job_timeout_s`
# (and asks arq to run the job again), and arq's own timeout, a few seconds later, is only a
# backstop. arq's in-progress lease stays at job_timeout + 10 s (how soon a killed worker's job
# is re-run), above the backstop.
ARQ_BACKSTOP_S = 4.0
IN_PROGRESS_EXTRA_S = 10.0


async def deliver(ctx: dict[str, Any], delivery_id: str) -> str:
    engine: DeliveryEngine = ctx["engine"]
    structlog.contextvars.bind_contextvars(delivery_id=delivery_id, job_try=ctx.get("job_try", 1))
    try:
        async with asyncio.timeout(ctx.get("run_deadline_s")):
            outcome = await engine.run(delivery_id, job_id=ctx.get("job_id"), job_try=ctx.get("job_try", 1))
    except TimeoutError:
        # Overran (an overloaded process, a slow Redis): run the same job again, from the checkpoints.
        log.warning("delivery.run_overran", delivery_id=delivery_id)
        raise Retry(defer=0) from None
    except REDIS_ERRORS as exc:
        # The state could not be written: keep the job (arq would drop a failed one) and come back.
        log.warning("delivery.redis_unavailable", delivery_id=delivery_id, error_type=type(exc).__name__)
        raise Retry(defer=REDIS_RETRY_S) from None
    except Exception:
        # A bug of ours (an ATS failure is an outcome, not an exception). arq would drop the failed
        # job and leave the delivery with no run to come: keep the job instead. The next run resumes
        # from the checkpoints; one left `delivering` MAX_CRASH_RERUNS times is dead-lettered. A
        # run that dies before it marks the delivery `delivering` is retried until arq's max_tries
        # (1000, about 8 h at this pace), each time logged.
        log.exception("delivery.run_crashed", delivery_id=delivery_id)
        raise Retry(defer=CRASH_RETRY_S) from None
    else:
        if outcome == "busy":  # another run holds the lease: come back rather than drop this job
            raise Retry(defer=BUSY_RETRY_S)
        return outcome
    finally:
        structlog.contextvars.clear_contextvars()


def build_engine(runtime: Runtime) -> DeliveryEngine:
    settings = runtime.settings
    return DeliveryEngine(
        EngineDeps(
            store=runtime.store,
            config=runtime.config,
            connector_for=runtime.connectors.get,
            load_attachment=runtime.load_attachment,
            run_budget_s=settings.run_budget_s,
            lease_s=settings.lease_s,
            keep_files_after_delivery=settings.keep_files_after_delivery,
            limiter=ConnectionLimiter(runtime.redis, settings.lease_s),
            file_links=_file_links(settings),
        )
    )


def _file_links(settings: Settings) -> Callable[[str, int, float], str] | None:
    public_url, secret = settings.public_url, settings.link_secret
    if not public_url or not secret:
        return None

    def link(delivery_id: str, index: int, expires_at: float) -> str:
        return f"{public_url.rstrip('/')}/v1/files/{file_links.sign(secret, delivery_id, index, expires_at)}"

    return link


class WakeableWorker(Worker):
    """arq's Worker, woken by intake instead of polling every `poll_delay`.

    arq's main loop sleeps whatever is left of `poll_delay` after each iteration, which would
    defeat the wake-up (a job accepted just after a poll waited up to 0.5 s, bench P3): the
    worker runs with `poll_delay=0` and does its own waiting here, on the wake list — only when
    a poll found nothing to start. A backlog (queued before the worker came, or faster than
    intake's wake tokens) is read again as soon as a slot is free, not after a wait on an empty
    wake list (bench P2: 20 such waits in a drain of 2,000, half its time).

    The jobs at the head of arq's queue are the ones running (they leave it when they end):
    arq would WATCH and read each before skipping it, four round trips a running job a poll.
    Those of this worker are left out from its own task table, those of others with one MGET of
    their in-progress keys; arq still claims the rest under WATCH, as before."""

    _started_last_poll = 0

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        running = self.tasks
        ids = [j for j in job_ids if (task := running.get(j.decode())) is None or task.done()]
        free = self.max_jobs - self.job_counter
        if len(ids) > free:
            taken = await self.pool.mget([in_progress_key_prefix + j.decode() for j in ids])
            ids = [j for j, busy in zip(ids, taken, strict=True) if busy is None][: max(free, 0)]
        before = {j: running.get(j.decode()) for j in ids}
        try:
            await super().start_jobs(ids)
        except POLL_ERRORS:
            # arq had taken a slot for the job it was claiming when Redis failed: give it back.
            self.job_counter -= 1
            self.sem.release()
            raise
        finally:
            self._started_last_poll = sum(1 for j, task in before.items() if running.get(j.decode()) is not task)

    async def _poll_iteration(self) -> None:
        try:
            await super()._poll_iteration()
        except POLL_ERRORS as exc:  # arq's own loop would end the worker; wait for Redis instead
            log.warning("worker.redis_unavailable", error_type=type(exc).__name__)
            await asyncio.sleep(WAKE_WAIT_S)
            return
        if self.burst:
            await asyncio.sleep(BUSY_POLL_S)
        elif self.job_counter >= self.max_jobs:
            await self._slot_freed(BUSY_POLL_S)  # every slot taken: look again once a job has ended
        elif self._started_last_poll:
            return  # it found work: the queue may hold more (arq's loop yields before the next poll)
        else:
            try:
                # redis-py types the timeout as int; Redis >= 6 takes fractional seconds
                await client.awaited(self.pool.blpop([WAKE_KEY], timeout=WAKE_WAIT_S))  # type: ignore[arg-type]
            except POLL_ERRORS:
                await asyncio.sleep(WAKE_WAIT_S)

    async def _slot_freed(self, at_most_s: float) -> None:
        """Until a running job ends (arq's semaphore has a free slot), `at_most_s` at most."""
        try:
            async with asyncio.timeout(at_most_s):
                await self.sem.acquire()
        except TimeoutError:
            return
        self.sem.release()


# Scheduled jobs, each `cron_job(settings) -> arq CronJob`; one line per feature, imported, so
# that the import contract (tests/unit/test_layers.py) sees them.
CRON_JOBS: list[Callable[[Settings], CronJob]] = [
    connection_health.cron_job,
    poll.cron_job,
    callbacks.cron_job,
    boards.cron_job,
    retention.cron_job,
    blob_sweep.cron_job,
    reaper.cron_job,  # every waiting delivery has a job or a lease (app/delivery/reaper.py)
]


def cron_jobs(settings: Settings) -> list[CronJob]:
    return [make(settings) for make in CRON_JOBS]


def create_worker(
    settings: Settings, *, burst: bool = False, max_jobs: int = 50, runtime: Runtime | None = None
) -> WakeableWorker:
    async def startup(ctx: dict[str, Any]) -> None:
        rt = runtime or Runtime(settings)
        await rt.start()  # the API's connections (docs/connections.md); refuses an evicting Redis
        ctx["runtime"], ctx["engine"] = rt, build_engine(rt)
        ctx["run_deadline_s"] = settings.job_timeout_s
        log.info(
            "worker.started",
            connections=len(settings.config.connections),
            event_loop=type(asyncio.get_running_loop()).__module__,
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        if runtime is None and "runtime" in ctx:
            await ctx["runtime"].close()

    redis_settings = client.arq_settings(settings.redis_url)  # REDIS_URL, or Sentinel
    worker = WakeableWorker(
        functions=[
            func(
                deliver,
                name=queue.DELIVER_FUNCTION,
                max_tries=1000,
                keep_result=0,
                timeout=settings.job_timeout_s + ARQ_BACKSTOP_S,
            )
        ],
        cron_jobs=cron_jobs(settings),
        redis_settings=redis_settings,
        on_startup=startup,
        on_shutdown=shutdown,
        job_serializer=queue.job_serializer,
        job_deserializer=queue.job_deserializer,
        burst=burst,
        max_jobs=max_jobs,
        poll_delay=0,  # WakeableWorker waits itself
        keep_result=0,
        health_check_interval=queue.HEALTH_CHECK_INTERVAL_S,
        job_completion_wait=int(settings.job_timeout_s),
        handle_signals=not burst,
    )
    worker.in_progress_timeout_s = settings.job_timeout_s + IN_PROGRESS_EXTRA_S
    return worker
