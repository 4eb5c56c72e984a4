"""P2's naive baseline (issue 21): what a team would write in an afternoon instead of the relay.

An arq job that makes the same HTTP calls as the relay's Factorial connector, in the same order
(find the candidate by email, create it, create the application, set its source), with one
shared `httpx.AsyncClient` and nothing else: no checkpoints, no lease, no retries, no status
indexes, no encryption at rest, no logs. The application travels in the job itself (arq's default
pickle), as the FastAPI baseline of P1 enqueues it. The company and the source id are read once at
start-up, as the relay's connector caches them. Same arq version, same uvloop, same max_jobs (50)
as the relay's worker; one keep-alive connection per job slot (httpx keeps 20 by default, which
would make the baseline pay for reconnects the relay does not).

    python -m bench.naive COUNT BASE_URL [httpx|aiohttp]   # enqueue, drain, print the figures

`aiohttp`: the same job on the relay's own HTTP client (httpx's API on aiohttp's pool,
app/net/ats_http.py), which costs less CPU per call than httpx's own transport: the stricter
baseline, that isolates what the guarantees cost from what the HTTP client costs.

Prints `<jobs> <deliveries/s> <CPU ms per delivery>`, both measured from the end of the first
job to the end of the last (the relay's window in bench/__main__.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import Any

import httpx
import msgspec
from arq import Worker, create_pool
from arq.connections import RedisSettings

from app.net.ats_http import ATSTransport
from app.net.event_loop import use_uvloop
from bench.procs import canonical

API = "/api/2026-07-01/resources/"


class _Done:
    """Completed jobs, and (wall, CPU) at the end of the first and of the last."""

    n = 0
    count = 0
    first = (0.0, 0.0)
    last = (0.0, 0.0)


_done = _Done()


async def startup(ctx: dict[str, Any]) -> None:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=50)
    transport = ATSTransport(limits=limits) if ctx["transport"] == "aiohttp" else None
    http = httpx.AsyncClient(
        base_url=ctx["base_url"] + API, headers={"x-api-key": "sandbox"}, limits=limits, timeout=20, transport=transport
    )
    ctx["http"] = http
    credentials = (await http.get("api_public/credentials")).json()
    ctx["company_id"] = credentials["data"][0]["company_id"]
    sources = (await http.get("ats/candidate_sources", params={"limit": "100"})).json()["data"]
    ctx["source_id"] = next(s["id"] for s in sources if s["label"] == "LinkedIn")


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["http"].aclose()


async def deliver(ctx: dict[str, Any], application: dict[str, Any]) -> None:
    http: httpx.AsyncClient = ctx["http"]
    candidate = application["candidate"]
    found = await http.get("ats/candidates", params={"emails[]": candidate["email_address"], "limit": "100"})
    found.raise_for_status()
    rows = found.json()["data"]
    if rows:
        candidate_id = rows[0]["id"]
    else:
        created = await http.post(
            "ats/candidates",
            json={
                "first_name": candidate["first_name"],
                "last_name": candidate["last_name"],
                "company_id": ctx["company_id"],
                "email": candidate["email_address"],
                "phone_number": candidate["phone_number"],
                "gender": candidate["gender"].lower(),
                "medium": "api",
            },
        )
        created.raise_for_status()
        candidate_id = created.json()["id"]
    made = await http.post(
        "ats/applications",
        json={
            "ats_job_posting_id": application["application"]["job_id"],
            "ats_candidate_id": candidate_id,
            "phone": candidate["phone_number"],
            "consent_to_talent_pool": True,
            "medium": "api",
        },
    )
    made.raise_for_status()
    application_id = made.json()["id"]
    put = await http.put(
        f"ats/applications/{application_id}", json={"id": application_id, "source_id": ctx["source_id"]}
    )
    put.raise_for_status()
    _done.n += 1
    if _done.n == 1:
        _done.first = (time.perf_counter(), time.process_time())
    if _done.n == _done.count:
        _done.last = (time.perf_counter(), time.process_time())


async def main(count: int, base_url: str, transport: str) -> None:
    settings = RedisSettings.from_dsn(os.environ["REDIS_URL"])
    pool = await create_pool(settings)
    for start in range(0, count, 500):
        apps = [msgspec.to_builtins(canonical(i, 0)) for i in range(start, min(start + 500, count))]
        await asyncio.gather(*(pool.enqueue_job("deliver", app) for app in apps))
    await pool.aclose()
    _done.count = count
    worker = Worker(
        functions=[deliver],
        redis_settings=settings,
        burst=True,
        max_jobs=50,
        keep_result=0,
        poll_delay=0.05,
        handle_signals=False,
        on_startup=startup,
        on_shutdown=shutdown,
        ctx={"base_url": base_url, "transport": transport},
    )
    await worker.async_run()
    await worker.close()
    (t0, c0), (t1, c1), n = _done.first, _done.last, _done.n
    print(n, (n - 1) / (t1 - t0), (c1 - c0) * 1000 / max(n - 1, 1))


if __name__ == "__main__":
    use_uvloop()
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "httpx"))
