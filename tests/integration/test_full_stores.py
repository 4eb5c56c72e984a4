"""A full or failing store answered honestly (issue 20): Redis at maxmemory and a blob store that
is away give intake 503 + Retry-After (problem+json, PLATFORM.UNAVAILABLE), /ready 503, never a
500 and nothing half-written; the worker keeps delivering, which frees memory, and intake takes
applications again."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from app.blobs.capacity import EvictingRedis, refuse_evicting_policy
from app.blobs.store import BlobSettings
from app.redis.embedded import free_port
from tests.support.builders import PDF_BYTES, b64, connection_table
from tests.support.emulators import EmulatorFactory
from tests.support.harness import Relay
from tests.support.old_formats import to_old_format
from tests.support.s3 import S3Server

BIG_CV = PDF_BYTES + bytes(range(256)) * 1600  # ~400 KB


def _body(i: int, *, cv: bytes | None = BIG_CV) -> dict[str, Any]:
    body: dict[str, Any] = {
        "connection_id": "acme",
        "candidate": {"first_name": "Full", "last_name": f"Redis {i}", "email_address": f"full-{i}@example.org"},
        "application": {"job_id": "2001"},
    }
    if cv is not None:
        body["attachments"] = [
            {"name": f"cv-{i}.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(cv)}
        ]
    return body


@pytest.fixture
async def redis_limits(redis_url: str) -> AsyncIterator[Redis]:
    """The session's Redis, its maxmemory restored after the test."""
    client = Redis.from_url(redis_url)
    yield client
    await client.config_set("maxmemory", 0)
    await client.config_set("maxmemory-policy", "noeviction")
    await client.config_set("min-replicas-to-write", 0)
    await client.aclose()


def _assert_honest_503(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["code"] == "PLATFORM.UNAVAILABLE"


async def _to_old_format(relay: Relay, delivery_id: str) -> None:
    """The CV back into Redis, as before the blob store (what fills a Redis in the wild)."""
    assert await to_old_format(relay, delivery_id) == 1


async def test_redis_at_maxmemory_gives_503_then_accepts_once_the_backlog_drains(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, redis_limits: Redis
) -> None:
    factorial = emulator("factorial")
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    backlog = []
    for i in range(20):  # 20 CVs of 400 KB held in Redis: the scenario
        response = await relay.post(_body(i))
        assert response.status_code == 202, response.text
        backlog.append(response.json()["id"])
        await _to_old_format(relay, backlog[-1])
    await asyncio.sleep(0.5)
    used = int((await redis_limits.info("memory"))["used_memory"])
    # used is 80 % of maxmemory: past the high-water mark (70 % here, 90 % by default: a tiny
    # Redis, where new client connections alone move the figure), with room for the workers' writes
    relay.web_runtime.capacity.high_water = 0.7
    await redis_limits.config_set("maxmemory", int(used / 0.8))
    await asyncio.sleep(1.1)  # each web process looks at Redis's memory once a second

    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(8)

    async def attempt(i: int) -> None:
        async with gate:
            response = await relay.post(_body(100 + i, cv=PDF_BYTES if i % 2 else None))
        statuses[response.status_code] += 1
        _assert_honest_503(response)

    await asyncio.gather(*(attempt(i) for i in range(200)))
    assert statuses == {503: 200}
    ready = await relay.client.get("/ready")
    assert ready.status_code == 503 and "redis: full" in ready.json()["detail"]
    metrics = (await relay.client.get("/metrics", headers=relay.admin)).text
    assert 'applyrelay_store_unavailable{store="redis",reason="full"} 1' in metrics

    # Redis itself refusing (past maxmemory, the high-water mark out of the way): 503 still,
    # nothing half-written (no delivery, no blob, no pending entry)
    relay.web_runtime.capacity.high_water = 100.0
    await redis_limits.config_set("maxmemory", used // 2)
    refused = await relay.post(_body(999))
    _assert_honest_503(refused)
    await redis_limits.config_set("maxmemory", int(used / 0.8))
    relay.web_runtime.capacity.high_water = 0.7
    assert await relay.redis.zcard("ar:ix:all") == 20 and await relay.redis.zcard("ar:blobs:pending") == 0
    assert list((relay.tmp_path / "blobs").rglob("??/*")) == [] if relay.tmp_path else True

    # the worker keeps delivering (its writes fit under the mark), which frees the CVs' memory
    await relay.start_worker()
    for delivery_id in backlog:
        await relay.wait_for(delivery_id, "delivered", timeout=60)
    assert len(factorial.records()["files"]) == 20
    for _ in range(100):
        again = await relay.post(_body(1000))
        if again.status_code == 202:
            break
        _assert_honest_503(again)
        await asyncio.sleep(0.2)
    assert again.status_code == 202, again.text
    await relay.wait_for(again.json()["id"], "delivered")


async def test_an_unreachable_blob_store_gives_503_and_nothing_half_written(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory
) -> None:
    factorial = emulator("factorial")
    dead = BlobSettings(
        url="s3://cvs/relay",
        endpoint=f"http://127.0.0.1:{free_port()}",
        region="us-east-1",
        access_key_id="x",
        secret_access_key="y",
        timeout_s=3,
    )
    relay = make_relay({"acme": connection_table("factorial", factorial.url)}, blobs=dead)
    for i in range(5):
        _assert_honest_503(await relay.post(_body(i)))
    assert not await relay.redis.keys("ar:d:*") and not await relay.redis.keys("ar:f:*")
    # what may have reached the store is left noted for the sweep, which runs once it answers
    assert await relay.redis.zcard("ar:blobs:pending") == 5
    ready = await relay.client.get("/ready")
    assert ready.status_code == 503 and "blobs: unreachable" in ready.json()["detail"]
    metrics = (await relay.client.get("/metrics", headers=relay.admin)).text
    assert 'applyrelay_store_unavailable{store="blobs",reason="unreachable"} 1' in metrics
    without_files = await relay.post(_body(9, cv=None))  # nothing to write there: taken
    assert without_files.status_code == 202, without_files.text


async def test_the_worker_rides_out_a_failing_blob_store(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, s3_server: S3Server
) -> None:
    factorial = emulator("factorial")
    bucket = s3_server.new_bucket()
    relay = make_relay({"acme": connection_table("factorial", factorial.url)}, blobs=s3_server.settings(bucket))
    delivery_id = (await relay.post(_body(1))).json()["id"]
    saved = s3_server.objects(bucket)
    for key in saved:
        s3_server.client.delete_object(Bucket=bucket, Key=key)
    s3_server.client.delete_bucket(Bucket=bucket)  # the store refuses every read now

    await relay.start_worker()
    record = await relay.wait_for(delivery_id, "retry_scheduled", timeout=30)
    assert "blob store" in record["last_error"]["message"]
    assert record["checkpoints"].get("application")  # the candidate and application went in

    s3_server.client.create_bucket(Bucket=bucket)
    for key, data in saved.items():
        s3_server.client.put_object(Bucket=bucket, Key=key, Body=data)
    await relay.run_due_jobs()
    await relay.wait_for(delivery_id, "delivered", timeout=30)
    [received] = factorial.records()["files"]
    assert received["sha256"] == hashlib.sha256(BIG_CV).hexdigest()


@pytest.mark.slow
async def test_an_evicting_redis_is_refused_at_start(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, redis_limits: Redis
) -> None:
    relay = make_relay({"acme": connection_table("factorial", emulator("factorial").url)})
    await redis_limits.config_set("maxmemory-policy", "allkeys-lru")
    with pytest.raises(EvictingRedis, match=r"allkeys-lru.*lost application"):
        await refuse_evicting_policy(redis_limits)
    worker = relay.spawn_worker()  # a real worker process: it stops, saying why
    code = await asyncio.wait_for(asyncio.to_thread(worker.wait), 60)
    assert code != 0
    assert relay.tmp_path is not None
    assert "maxmemory-policy is allkeys-lru" in (relay.tmp_path / "worker-0.log").read_text()
    await redis_limits.config_set("maxmemory-policy", "noeviction")
    await refuse_evicting_policy(redis_limits)


async def test_a_redis_short_of_replicas_gives_503_not_500(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, redis_limits: Redis
) -> None:
    """min-replicas-to-write (docs/operations.md, Sentinel failover) refuses writes: NOREPLICAS."""
    relay = make_relay({"acme": connection_table("factorial", emulator("factorial").url)})
    await redis_limits.config_set("min-replicas-to-write", 1)  # the session's Redis has none
    response = await relay.post(_body(1))
    _assert_honest_503(response)
    assert "short of replicas" in response.json()["detail"]
    await redis_limits.config_set("min-replicas-to-write", 0)
    await asyncio.sleep(1.1)  # what a web process saw is kept for a second
    assert (await relay.post(_body(1))).status_code == 202
