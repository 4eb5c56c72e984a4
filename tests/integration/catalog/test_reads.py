"""The read routes as a client uses them, per ATS: the relay over HTTP, its Redis, the ATS's
emulator over HTTP (app/web/api/catalog.py, app/catalog/, docs/catalog.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import httpx

from app.core.catalog import READ_JOB_STAGES, READ_SOURCES, READ_STAGES
from app.redis.keys import paused_key
from app.tokens import ApiToken
from connectors import connector_class
from tests.support.catalog import Ats
from tests.support.emulators import Emulator
from tests.support.harness import Relay

BASE = "/v1/connections/acme"


async def get(relay: Relay, path: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    return await relay.client.get(path, params=params, headers=headers or relay.admin)


async def all_jobs(relay: Relay, **filters: Any) -> tuple[list[dict[str, Any]], int]:
    jobs: list[dict[str, Any]] = []
    pages, cursor = 0, None
    while True:
        params = {**filters, **({"cursor": cursor} if cursor else {})}
        response = await get(relay, f"{BASE}/jobs", **params)
        assert response.status_code == 200, response.text
        body = response.json()
        pages += 1
        jobs.extend(body["data"])
        assert pages < 100
        if body["next_cursor"] is None:
            return jobs, pages
        cursor = body["next_cursor"]


def problem_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    return body


async def test_jobs_page_through_the_ats_with_filters(
    ats: Ats, served: Emulator, relay_for: Callable[..., Relay]
) -> None:
    relay = relay_for()
    seeded = served.records()[ats.jobs_key]
    jobs, pages = await all_jobs(relay, page_size=10)
    assert len(jobs) == len(seeded) and len({j["id"] for j in jobs}) == len(seeded) and pages >= 3
    assert all(j["id"] == j["remote_id"] and "remote_data" not in j for j in jobs)
    assert {j["status"] for j in jobs} >= {"OPEN", "CLOSED"}

    for status in ("OPEN", "CLOSED", "DRAFT", "ARCHIVED"):
        filtered, _ = await all_jobs(relay, status=status, page_size=25)
        assert sorted(j["id"] for j in filtered) == sorted(j["id"] for j in jobs if j["status"] == status)

    word = jobs[0]["name"].split()[0].casefold()
    named, _ = await all_jobs(relay, name_contains=word.upper(), page_size=30)
    assert named and sorted(j["id"] for j in named) == sorted(j["id"] for j in jobs if word in j["name"].casefold())

    changed = sorted(dt.datetime.fromisoformat(j["changed_at"]) for j in jobs if j["changed_at"])
    if changed:  # the ATS says when a job changed: updated_after filters on it
        after = changed[len(changed) // 2]
        recent, _ = await all_jobs(relay, updated_after=after.isoformat(), page_size=50)
        expected = [j["id"] for j in jobs if j["changed_at"] and dt.datetime.fromisoformat(j["changed_at"]) > after]
        assert sorted(j["id"] for j in recent) == sorted(expected)

    with_raw = await get(relay, f"{BASE}/jobs", page_size=5, include="remote_data")
    assert with_raw.status_code == 200 and all(j["remote_data"] for j in with_raw.json()["data"])
    assert int(with_raw.headers["age"]) >= 0 and with_raw.json()["fetched_at"] > 0


async def test_a_bad_filter_is_a_422_naming_it(relay_for: Callable[..., Relay]) -> None:
    relay = relay_for()
    for params, field in (
        ({"status": "OPENED"}, "status"),
        ({"page_size": 251}, "page_size"),
        ({"page_size": 0}, "page_size"),
        ({"updated_after": "yesterday"}, "updated_after"),
        ({"include": "everything"}, "include"),
        ({"cursor": "not-ours"}, "cursor"),
    ):
        body = problem_of(await get(relay, f"{BASE}/jobs", **params), 422, "PLATFORM.INPUT_INVALID")
        assert [e["field"] for e in body["errors"]] == [field], (params, body)
    first = (await get(relay, f"{BASE}/jobs", page_size=2, status="OPEN")).json()
    assert first["next_cursor"]
    body = problem_of(
        await get(relay, f"{BASE}/jobs", cursor=first["next_cursor"], status="CLOSED"), 422, "PLATFORM.INPUT_INVALID"
    )
    assert body["errors"][0]["field"] == "cursor" and "other filters" in body["errors"][0]["message"]


async def test_one_job_with_its_questions_and_stages(ats: Ats, relay_for: Callable[..., Relay]) -> None:
    relay = relay_for()
    response = await get(relay, f"{BASE}/jobs/{ats.job_id}")
    assert response.status_code == 200, response.text
    job = response.json()["data"]
    assert job["id"] == ats.job_id and job["screening_questions"] and job["stages"]
    assert "remote_data" not in job and int(response.headers["age"]) >= 0
    for question in job["screening_questions"]:
        assert {"id", "remote_id", "title", "format", "required", "index"} <= set(question)
        for option in question["format"].get("options") or []:
            assert set(option) == {"id", "remote_id", "name"}
    assert (await get(relay, f"{BASE}/jobs/remote:{ats.job_id}")).json()["data"] == job
    raw = (await get(relay, f"{BASE}/jobs/{ats.job_id}", include="remote_data")).json()["data"]
    assert raw["remote_data"]

    questions = await get(relay, f"{BASE}/jobs/remote:{ats.job_id}/screening-questions")
    assert questions.status_code == 200 and questions.json()["data"] == job["screening_questions"]
    reads = connector_class(ats.name).capabilities.reads
    if READ_JOB_STAGES in reads:
        stages = await get(relay, f"{BASE}/jobs/{ats.job_id}/stages")
        assert stages.status_code == 200 and stages.json()["data"] == job["stages"]
    if READ_STAGES in reads:
        stages = await get(relay, f"{BASE}/stages")
        assert stages.status_code == 200 and [s["id"] for s in stages.json()["data"]]


async def test_reads_the_ats_lacks_are_404_with_a_clear_detail(ats: Ats, relay_for: Callable[..., Relay]) -> None:
    relay = relay_for()
    reads = connector_class(ats.name).capabilities.reads
    lacking = [
        (f"{BASE}/sources", READ_SOURCES, "sources"),
        (f"{BASE}/stages", READ_STAGES, "stages"),
        (f"{BASE}/jobs/{ats.job_id}/stages", READ_JOB_STAGES, "stages"),
    ]
    checked = 0
    for path, read, word in lacking:
        response = await get(relay, path)
        if read in reads:
            assert response.status_code == 200, response.text
            continue
        body = problem_of(response, 404, "INTEGRATION.ACTION_NOT_AVAILABLE")
        assert ats.name in body["detail"].lower() and word in body["detail"]
        checked += 1
    assert checked == len({READ_SOURCES, READ_STAGES, READ_JOB_STAGES} - reads)


async def test_unknown_connection_and_unknown_job_are_404_with_their_code(
    ats: Ats, relay_for: Callable[..., Relay]
) -> None:
    relay = relay_for()
    for path in ("/v1/connections/nope/jobs", "/v1/connections/nope/jobs/1", "/v1/connections/nope/sources"):
        problem_of(await get(relay, path), 404, "PLATFORM.INTEGRATION_NOT_FOUND")
    for path in (f"{BASE}/jobs/999999", f"{BASE}/jobs/remote:999999/screening-questions", f"{BASE}/jobs/nope"):
        body = problem_of(await get(relay, path), 404, "ATS.JOB_NOT_FOUND")
        assert "acme" in body["detail"]
    problem_of(await get(relay, f"{BASE}/jobs/remote:"), 422, "PLATFORM.INPUT_INVALID")


async def test_the_read_scope_is_needed(relay_for: Callable[..., Relay], make_relay: Any) -> None:
    relay = relay_for()
    assert (await relay.client.get(f"{BASE}/jobs")).status_code == 401
    reader = ApiToken("career-site", "reader-secret-0123456789", frozenset({"read"}))
    writer = ApiToken("board", "writer-secret-0123456789", frozenset({"retry"}))
    scoped = make_relay(relay.connections, extra_tokens=[reader, writer])
    ok = await get(scoped, f"{BASE}/jobs", headers={"authorization": f"Bearer {reader.secret}"})
    assert ok.status_code == 200
    refused = await get(scoped, f"{BASE}/jobs", headers={"authorization": f"Bearer {writer.secret}"})
    assert refused.status_code == 403


async def test_ats_down_and_nothing_cached_is_503_with_retry_after_else_the_stale_answer(
    ats: Ats, served: Emulator, relay_for: Callable[..., Relay]
) -> None:
    relay = relay_for(catalog_ttl_s=0.2, catalog_stale_s=600)
    served.faults(error_rate=1.0, error_status=503)
    for path in (f"{BASE}/jobs", f"{BASE}/jobs/{ats.job_id}", f"{BASE}/jobs/{ats.job_id}/screening-questions"):
        response = await get(relay, path)
        problem_of(response, 503, "REMOTE.SERVICE_UNAVAILABLE")
        assert int(response.headers["retry-after"]) >= 1
    served.faults()
    listing = f"{BASE}/jobs?page_size=5&status=OPEN"
    fresh = await relay.client.get(listing, headers=relay.admin)
    assert fresh.status_code == 200 and fresh.json()["stale"] is False
    await asyncio.sleep(1.1)  # past the TTL, within the stale window
    served.faults(error_rate=1.0, error_status=503)
    stale = await relay.client.get(listing, headers=relay.admin)
    assert stale.status_code == 200 and stale.json()["stale"] is True
    assert stale.json()["data"] == fresh.json()["data"] and stale.json()["fetched_at"] == fresh.json()["fetched_at"]
    assert int(stale.headers["age"]) >= 1


async def test_a_paused_connection_is_refused_with_its_code(relay_for: Callable[..., Relay]) -> None:
    relay = relay_for()
    await relay.redis.set(paused_key("acme"), "401 from the ATS")
    body = problem_of(await get(relay, f"{BASE}/jobs"), 502, "INTEGRATION.AUTHENTICATION_INVALID")
    assert "paused" in body["detail"]


async def test_fifty_concurrent_reads_of_one_jobs_questions_make_one_ats_call(
    ats: Ats, served: Emulator, relay_for: Callable[..., Relay]
) -> None:
    """Two web processes (two relays, one Redis), 25 requests each, all at once."""
    first, second = relay_for(), relay_for()
    served.faults(latency_ms=300)  # the ATS is slow: every request arrives while the first is out
    path = f"{BASE}/jobs/{ats.job_id}/screening-questions"
    responses = await asyncio.gather(*(get(relay, path) for relay in (first, second) * 25))
    assert {r.status_code for r in responses} == {200}
    assert len({r.content for r in responses}) == 1
    assert served.records()["calls"].get(ats.questions_path) == 1


async def test_the_cache_expiring_picks_up_a_question_added_in_the_ats(
    ats: Ats, served: Emulator, relay_for: Callable[..., Relay]
) -> None:
    relay = relay_for(catalog_ttl_s=0.5)
    path = f"{BASE}/jobs/{ats.job_id}/screening-questions"
    before = (await get(relay, path)).json()
    ats.add_question(served, ats.job_id)
    assert (await get(relay, path)).json() == before  # still fresh: the cache answers
    await asyncio.sleep(0.6)
    after = (await get(relay, path)).json()
    assert len(after["data"]) == len(before["data"]) + 1 and after["fetched_at"] > before["fetched_at"]
    assert {q["title"] for q in after["data"]} - {q["title"] for q in before["data"]} == {"Shift work?"}
