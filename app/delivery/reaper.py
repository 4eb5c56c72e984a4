"""The reaper: no delivery is ever left without a way forward (docs/operations.md, "The reaper").

Invariant: every delivery that still has to run (`queued`, `delivering`, `retry_scheduled`) has
its pending arq job (`Delivery.job`, stored in `arq:job:<id>` and scored in `arq:queue`) or a
live lease (`ar:lock:<id>`: a run is going on). arq breaks it in ways the engine cannot see: its
own job timeout (a run that blocked the event loop past both deadlines) finishes the job as
failed and deletes it; an expired or evicted job record; a job that vanished while its run's
lease lapsed. The sweep finds each such delivery and enqueues its next run, from its checkpoints
(a `delivering` one counts the lost run as a crash: one that always dies is dead-lettered after
`MAX_CRASH_RERUNS`).

It runs as an arq cron job every minute (and at each worker's start), on any number of workers:
each repair is one compare-and-set script (the state must be byte-for-byte the one inspected, no
lease, no pending job), so two sweeps never repair the same delivery twice and a run that moved
the delivery on in between wins. Each repair is counted in `ar:m:reaped` (by reason, shown in
/metrics) and logged, with ids only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from arq.cron import CronJob, cron
from redis.asyncio import Redis

from app.delivery import queue
from app.delivery.record import Delivery, Status, delivery_decoder, delivery_encoder
from app.redis.keys import NO_MARKER, WAKE_KEY, lease_key, metric_key, state_key, status_index
from app.settings import Settings

log = structlog.get_logger("applyrelay.reaper")

#: The statuses that must have a run to come (paused and the terminal ones keep none).
WAITING: tuple[Status, ...] = (Status.QUEUED, Status.DELIVERING, Status.RETRY_SCHEDULED)
REAPED_METRIC = metric_key("reaped")  # hash: reason → deliveries repaired
BATCH = 500

# KEYS: 1 state, 2 lease, 3 pending job key (or the no-marker key), 4 arq queue, 5 new job key,
#       6 wake list, 7 reaped metric.
# ARGV: 1 the state as inspected, 2 pending job id ('' if none), 3 new state, 4 new job body,
#       5 new job ttl ms, 6 new job score ms, 7 new job id, 8 reason, 9 wake (1/0).
_REPAIR = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if ARGV[2] ~= '' and redis.call('EXISTS', KEYS[3]) == 1 and redis.call('ZSCORE', KEYS[4], ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('PSETEX', KEYS[5], ARGV[5], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[7])
if ARGV[9] == '1' then
  redis.call('LPUSH', KEYS[6], '1')
  redis.call('LTRIM', KEYS[6], 0, 63)
end
redis.call('HINCRBY', KEYS[7], ARGV[8], 1)
return 1
"""


@dataclass
class SweepResult:
    checked: int = 0
    repaired: list[tuple[str, str]] = field(default_factory=list)  # (delivery id, reason)


class Reaper:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._repair = redis.register_script(_REPAIR)

    async def sweep(self, now: float | None = None) -> SweepResult:
        """One pass over every waiting delivery: O(waiting), in pipelined batches of `BATCH`."""
        result = SweepResult()
        for status in WAITING:
            offset = 0
            while True:
                ids = [i.decode() for i in await self.redis.zrange(status_index(status), offset, offset + BATCH - 1)]
                if not ids:
                    break
                offset += len(ids)
                await self._check(ids, result, now)
        return result

    async def _check(self, ids: list[str], result: SweepResult, now: float | None) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for delivery_id in ids:
            pipe.get(state_key(delivery_id))
        raws: list[bytes | None] = await pipe.execute()
        found: list[tuple[bytes, Delivery]] = []
        for raw in raws:
            if raw:
                try:
                    found.append((raw, delivery_decoder.decode(raw)))
                except msgspec.DecodeError:
                    continue
        pipe = self.redis.pipeline(transaction=False)
        for _, delivery in found:
            pipe.exists(lease_key(delivery.id))
            job = delivery.job
            if job:
                pipe.exists(queue.job_key(job))
                pipe.zscore(queue.QUEUE_NAME, job)
            else:
                pipe.exists(NO_MARKER)
                pipe.exists(NO_MARKER)
        answers = await pipe.execute()
        for n, (raw, delivery) in enumerate(found):
            leased, job_stored, score = answers[3 * n : 3 * n + 3]
            result.checked += 1
            if delivery.status not in WAITING or leased:
                continue
            if delivery.job and job_stored and score is not None:
                continue
            reason = "no_job" if not delivery.job else ("job_missing" if not job_stored else "job_unqueued")
            if await self.repair(raw, delivery, reason, now):
                result.repaired.append((delivery.id, reason))

    async def repair(self, raw: bytes, delivery: Delivery, reason: str, now: float | None = None) -> bool:
        """Enqueue the delivery's next run, if it is still exactly `raw`, unleased and jobless."""
        now = now or time.time()
        old_job = delivery.job or ""
        run_at = max(now, delivery.next_attempt_at or 0.0) if delivery.status == Status.RETRY_SCHEDULED else now
        delivery.version += 1
        delivery.updated_at = now
        new_job = queue.job_id(delivery.id, f"{delivery.runs}-{delivery.version}-r")
        delivery.job = new_job
        now_ms, score = int(now * 1000), int(run_at * 1000)
        args: list[Any] = [
            raw,
            old_job,
            delivery_encoder.encode(delivery),
            queue.serialize(delivery.id, now_ms),
            max(score - now_ms, 0) + queue.JOB_EXPIRES_MS,
            score,
            new_job,
            reason,
            "1" if score <= now_ms + 50 else "0",
        ]
        keys = [
            state_key(delivery.id),
            lease_key(delivery.id),
            queue.job_key(old_job) if old_job else NO_MARKER,
            queue.QUEUE_NAME,
            queue.job_key(new_job),
            WAKE_KEY,
            REAPED_METRIC,
        ]
        done = bool(await self._repair(keys=keys, args=args))
        if done:
            log.warning(
                "delivery.reaped",
                delivery_id=delivery.id,
                connection=delivery.connection_id,
                connector=delivery.connector,
                status=str(delivery.status),
                reason=reason,
                lost_job=old_job or None,
            )
        return done


async def reap(ctx: dict[str, Any]) -> int:
    """The cron job: how many deliveries it gave a way forward."""
    runtime = ctx["runtime"]
    result = await Reaper(runtime.redis).sweep()
    return len(result.repaired)


def cron_job(settings: Settings) -> CronJob:
    """`CRON_JOBS` entry: every minute, and at each worker's start (a restarted worker repairs
    what its predecessor's death left at once). The timeout is the delivery jobs' one (arq sizes
    the in-progress lease of every job on the longest function timeout)."""
    return cron(reap, name="reap", second=30, run_at_startup=True, unique=True, timeout=settings.job_timeout_s)


__all__ = ["REAPED_METRIC", "WAITING", "Reaper", "SweepResult", "cron_job"]
