"""A CommandBatch runs its writes in order, atomically, as one call (app/redis/batch.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from app.delivery import queue
from app.delivery.record import Delivery, Status
from app.delivery.store import DeliveryStore, PlainSealer
from app.delivery.transitions import Move
from app.redis.batch import BLOB_TTL_MS, BatchRunner, CommandBatch, call_with_blobs
from app.redis.keys import connection_status_index, metric_key, status_index


async def test_every_command_writes_what_a_pipeline_would(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    blob = bytes(range(256)) * 400  # binary, past one network packet
    batch = CommandBatch()
    batch.set("k:bin", blob)
    batch.set("k:text", "héllo")
    batch.psetex("k:ttl", 60_000, b"x")
    batch.zadd("z", {"a": 1.25, "b": 1764079999.123456})
    batch.zrem("z", "a")
    batch.hincrby("h", "n", 2)
    batch.hincrbyfloat("h", "f", 0.1)
    batch.expire("h", 100)
    batch.lpush("l", b"1", b"2")
    batch.ltrim("l", 0, 0)
    batch.set("gone:1", b"1")
    batch.set("gone:2", b"2")
    batch.delete("gone:1", "gone:2")
    batch.zrem("z")  # nothing to remove: no command at all
    await BatchRunner(redis).execute(batch)
    assert await redis.get("k:bin") == blob and (await redis.get("k:text")).decode() == "héllo"
    assert 0 < await redis.pttl("k:ttl") <= 60_000
    assert await redis.zrange("z", 0, -1, withscores=True) == [(b"b", 1764079999.123456)]
    assert await redis.hgetall("h") == {b"n": b"2", b"f": b"0.1"} and 0 < await redis.ttl("h") <= 100
    assert await redis.lrange("l", 0, -1) == [b"2"]
    assert await redis.exists("gone:1", "gone:2") == 0
    await redis.aclose()


async def test_a_batch_is_never_seen_half_done(redis_url: str) -> None:
    """A reader polling during 200 batches never sees one key of a batch without the other."""
    writer, reader = Redis.from_url(redis_url), Redis.from_url(redis_url)
    runner = BatchRunner(writer)
    stop = asyncio.Event()
    torn = 0

    async def read() -> None:
        nonlocal torn
        while not stop.is_set():
            a, b = await reader.mget("pair:a", "pair:b")
            torn += a != b
            await asyncio.sleep(0)

    watcher = asyncio.create_task(read())
    for i in range(200):
        batch = CommandBatch()
        batch.set("pair:a", str(i))
        batch.zadd("pair:pad", {f"m{j}": j for j in range(200)})  # keep the script busy between the two
        batch.set("pair:b", str(i))
        await runner.execute(batch)
    stop.set()
    await watcher
    assert torn == 0
    await writer.aclose()
    await reader.aclose()


async def test_a_status_change_is_one_script_call_not_a_transaction(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    store = DeliveryStore(redis, sealer=PlainSealer())
    delivery = Delivery(
        id="dlv_1",
        connection_id="acme",
        connector="factorial",
        status="queued",
        created_at=1.0,
        updated_at=1.0,
        idempotency_key_hash="h",
        channel="api",
    )
    await store.save(delivery, Move(None, Status(delivery.status)))
    await redis.config_resetstat()
    delivery.status = "delivered"
    await store.save(delivery, Move(Status.QUEUED, Status.DELIVERED), drop_files=2)
    calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in (await redis.info("commandstats")).items()}
    assert calls["evalsha"] == 1 and "multi" not in calls and "exec" not in calls, calls
    assert await redis.zscore(status_index("delivered"), "dlv_1") is not None
    assert await redis.zscore(status_index("queued"), "dlv_1") is None
    assert await redis.zscore(connection_status_index("acme", "queued"), "dlv_1") is None
    assert await redis.zscore(connection_status_index("acme", "delivered"), "dlv_1") is not None
    await redis.aclose()


async def test_large_values_ride_beside_the_script_even_after_a_redis_restart(redis_url: str) -> None:
    """Blobs are plain SETs in the batch's transaction (a 100 KB script argument costs Redis ~170 us);
    an empty script cache (a restarted Redis) is reloaded and the whole transaction sent again."""
    redis = Redis.from_url(redis_url)
    runner = BatchRunner(redis)
    blob = bytes(range(256)) * 400
    batch = CommandBatch()
    batch.set("state", b"v1")
    await redis.script_flush()
    await redis.config_resetstat()
    await runner.execute(batch, {"file:0": blob})
    assert await redis.get("file:0") == blob and await redis.get("state") == b"v1"
    assert await redis.pttl("file:0") == -1  # kept by the batch: no TTL left
    calls = {k.removeprefix("cmdstat_"): v["calls"] for k, v in (await redis.info("commandstats")).items()}
    assert calls["script|load"] == 1 and calls["exec"] == 2, calls  # NOSCRIPT once, then loaded and sent again
    await redis.aclose()


async def test_a_failing_command_leaves_the_state_and_its_job_consistent(redis_url: str) -> None:
    """A script stops at a failing command and rolls nothing back: the state and its next run are
    the batch's first writes, so whatever fails after them, the delivery has its job."""
    redis = Redis.from_url(redis_url)
    store = DeliveryStore(redis, sealer=PlainSealer())
    delivery = Delivery(
        id="dlv_2",
        connection_id="acme",
        connector="factorial",
        status="delivering",
        created_at=1.0,
        updated_at=1.0,
        idempotency_key_hash="h",
        channel="api",
    )
    await store.save(delivery, Move(None, Status(delivery.status)))
    await redis.set(metric_key("retries"), b"not a hash")  # the retry counter's HINCRBY will fail
    delivery.status = "retry_scheduled"
    with pytest.raises(ResponseError):
        await store.save(delivery, Move(Status.DELIVERING, Status.RETRY_SCHEDULED), run_at=time.time() + 60, run_seq=1)
    assert delivery.job is not None
    assert await redis.exists(queue.job_key(delivery.job)) == 1
    assert await redis.zscore(queue.QUEUE_NAME, delivery.job) is not None
    await redis.aclose()


async def test_blobs_of_a_transaction_whose_script_failed_expire(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    failing = redis.register_script("return redis.error_reply('boom')")
    with pytest.raises(ResponseError):
        await call_with_blobs(redis, failing, [], [], {"orphan": b"x" * 1000})
    assert 0 < await redis.pttl("orphan") <= BLOB_TTL_MS  # EXEC applied the SET; it does not stay
    await redis.aclose()
