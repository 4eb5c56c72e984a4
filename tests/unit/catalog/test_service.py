"""`Catalog` against a real Redis and a real connector on its emulator (Laura's, over HTTP): what it
answers when the ATS is slow, down, refusing, or the connection paused (app/catalog/service.py,
docs/catalog.md "Staleness", "Budget", "Errors")."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from app.catalog import Catalog, CatalogUnavailable
from app.config import parse_config
from app.core.catalog import Job, JobQuery
from app.core.problems import Problem
from app.redis.keys import catalog_key, paused_key
from app.runtime import ConnectorPool
from tests.support.builders import connection_table
from tests.support.emulators import Emulator

JOB, JOB_PATH = "102", "GET /api/v1.2/jobs/102"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def catalog(redis: Redis, laura: Emulator, http: httpx.AsyncClient, **table: object) -> Catalog:
    config = parse_config(
        {"connections": {"acme": connection_table("laura", laura.url, **table)}}, {"TEST_LAURA_KEY": "sandbox"}
    )
    return Catalog(redis, config, ConnectorPool(config, http).get)


def calls(laura: Emulator, path: str = JOB_PATH) -> int:
    return int(laura.records()["calls"].get(path, 0))


async def test_a_read_past_its_budget_is_503_and_fills_the_cache_for_the_next(
    redis: Redis, laura: Emulator, ats_http: httpx.AsyncClient
) -> None:
    reads = catalog(redis, laura, ats_http)
    laura.faults(latency_ms=400)
    with pytest.raises(CatalogUnavailable) as caught:
        await reads.job("acme", JOB, budget_s=0.05)
    assert caught.value.status == 503 and caught.value.code == "REMOTE.SERVICE_UNAVAILABLE"
    assert caught.value.retry_after_s >= 1 and caught.value.headers["Retry-After"] == str(caught.value.retry_after_s)
    await asyncio.sleep(1.5)  # the read goes on without the caller
    laura.faults()
    cached = await reads.job("acme", JOB, budget_s=0.05)
    assert cached.value.id == JOB and not cached.stale and calls(laura) == 1


async def test_the_stale_entry_answers_when_the_ats_is_slow_or_down(
    redis: Redis, laura: Emulator, ats_http: httpx.AsyncClient
) -> None:
    reads = catalog(redis, laura, ats_http, catalog_ttl_s=0.1)
    first = await reads.job("acme", JOB)
    await asyncio.sleep(0.2)
    laura.faults(latency_ms=500)
    slow = await reads.job("acme", JOB, budget_s=0.05)
    assert slow.stale and slow.value == first.value and slow.fetched_at == first.fetched_at and slow.age >= 0.2
    for _ in range(100):  # the slow refresh (three slow ATS calls) lands in Redis
        entry = await reads.cache.read(catalog_key("acme", "job", JOB), Job)
        if entry is not None and entry.fetched_at > first.fetched_at:
            break
        await asyncio.sleep(0.1)
    laura.faults(error_rate=1.0, error_status=503)
    await asyncio.sleep(0.2)
    down = await reads.job("acme", JOB)
    assert down.stale and down.fetched_at > first.fetched_at


async def test_refused_credentials_and_other_refusals(
    redis: Redis, laura: Emulator, ats_http: httpx.AsyncClient
) -> None:
    reads = catalog(redis, laura, ats_http, catalog_ttl_s=0.1)
    laura.faults(error_rate=1.0, error_status=401)
    with pytest.raises(Problem) as caught:
        await reads.job("acme", JOB)
    assert (caught.value.status, caught.value.code) == (502, "INTEGRATION.AUTHENTICATION_INVALID")
    laura.faults()
    await reads.job("acme", JOB)
    await asyncio.sleep(0.2)
    laura.faults(error_rate=1.0, error_status=401)
    assert (await reads.job("acme", JOB)).stale  # credentials refused: the kept answer, as for an outage
    laura.faults(error_rate=1.0, error_status=400)
    with pytest.raises(Problem) as caught:  # the ATS says no: not hidden behind a stale copy
        await reads.job("acme", JOB)
    assert (caught.value.status, caught.value.code) == (502, "REMOTE.UNKNOWN_HTTP_ERROR")


async def test_a_paused_connection_answers_from_the_cache_only(
    redis: Redis, laura: Emulator, ats_http: httpx.AsyncClient
) -> None:
    reads = catalog(redis, laura, ats_http, catalog_ttl_s=0.1)
    await reads.job("acme", JOB)
    await redis.set(paused_key("acme"), "401")
    await asyncio.sleep(0.2)
    assert (await reads.job("acme", JOB)).stale and calls(laura) == 1  # the ATS is not asked
    with pytest.raises(Problem) as caught:
        await reads.job("acme", "101")
    assert (caught.value.status, caught.value.code) == (502, "INTEGRATION.AUTHENTICATION_INVALID")


async def test_an_unknown_job_is_cached_as_a_miss(redis: Redis, laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    reads = catalog(redis, laura, ats_http)
    for _ in range(3):
        with pytest.raises(Problem) as caught:
            await reads.job("acme", "999999")
        assert (caught.value.status, caught.value.code) == (404, "ATS.JOB_NOT_FOUND")
    assert calls(laura, "GET /api/v1.2/jobs/999999") == 1


async def test_reads_the_connector_lacks_and_unknown_connections(
    redis: Redis, laura: Emulator, ats_http: httpx.AsyncClient
) -> None:
    reads = catalog(redis, laura, ats_http)
    with pytest.raises(Problem) as caught:
        await reads.sources("acme")
    assert (caught.value.status, caught.value.code) == (404, "INTEGRATION.ACTION_NOT_AVAILABLE")
    with pytest.raises(Problem) as caught:
        await reads.stages("acme", JOB)
    assert "connection-wide: /v1/connections/acme/stages" in caught.value.detail
    with pytest.raises(Problem) as caught:
        await reads.job_questions("other", JOB)
    assert (caught.value.status, caught.value.code) == (404, "PLATFORM.INTEGRATION_NOT_FOUND")
    assert (await reads.stages("acme")).value


async def test_a_listing_pages_with_the_catalogs_cursor(
    redis: Redis, laura: Emulator, ats_http: httpx.AsyncClient
) -> None:
    reads = catalog(redis, laura, ats_http)
    naive = dt.datetime(2026, 9, 1)  # UTC when naive
    query = JobQuery(page_size=10, status="OPEN", updated_after=naive)
    first = (await reads.list_jobs("acme", query)).value
    assert first.next_cursor and first.next_cursor != "2"  # ours, not Laura's page number
    second = (
        await reads.list_jobs(
            "acme", JobQuery(page_size=10, status="OPEN", updated_after=naive, cursor=first.next_cursor)
        )
    ).value
    assert not {j.id for j in first.jobs} & {j.id for j in second.jobs}
    assert all(
        j.status == "OPEN" and j.changed_at and j.changed_at > naive.replace(tzinfo=dt.UTC)
        for j in first.jobs + second.jobs
    )
    with pytest.raises(Problem) as caught:
        await reads.list_jobs("acme", JobQuery(page_size=0))
    assert caught.value.errors[0].field == "page_size"


async def test_the_ats_retry_after_is_passed_on(redis: Redis, laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    reads = catalog(redis, laura, ats_http)
    laura.faults(rate_limit_rate=1.0, retry_after=7)
    with pytest.raises(CatalogUnavailable) as caught:
        await reads.stages("acme")
    assert caught.value.headers == {"Retry-After": "7"} and caught.value.code == "REMOTE.SERVICE_UNAVAILABLE"
