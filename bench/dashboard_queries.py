"""How fast the dashboard's queries are on a big store: N deliveries over 4 connections and 3
channels, 5 % failed, the rest delivered; times the first page of each filter, the next page,
counts, the chart and a /metrics scrape (all straight on Redis, no HTTP).

    python -m bench.dashboard_queries [N]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from app.delivery import transitions
from app.delivery.record import Delivery, ErrorInfo
from app.delivery.store import DeliveryStore, new_delivery_id
from app.operator import metrics
from app.operator.query import build_filter, counts, find, series
from app.privacy.crypto import AesGcmSealer, new_key, parse_keys
from app.redis.embedded import EmbeddedRedis


async def seed(store: DeliveryStore, n: int) -> None:
    now = time.time()
    batch = []
    for i in range(n):
        status = "failed" if i % 20 == 0 else "queued"
        created = now - (n - i) * 2.0
        d = Delivery(
            id=new_delivery_id(),
            connection_id=f"conn{i % 4}",
            connector="factorial",
            status="queued",
            created_at=created,
            updated_at=created,
            idempotency_key_hash=f"h{i}",
            channel=("api", "indeed", "webhook")[i % 3],
            board="indeed" if i % 3 == 1 else None,
            board_application_id=f"b{i}" if i % 3 == 1 else None,
            job_id="1",
        )
        batch.append(store.create(d, b"x", [], f"h{i}"))
        if len(batch) == 500:
            await asyncio.gather(*batch)
            batch = []
        if status == "failed":
            pass
    await asyncio.gather(*batch)
    # move them on: 5 % failed, the rest delivered (the engine's save path, with metrics)
    ids = [m.decode() for m in await store.redis.zrange("ar:ix:all", 0, -1)]
    for start in range(0, len(ids), 500):
        for d in await store.get_many(ids[start : start + 500]):
            if hash(d.id) % 20 == 0:
                move = transitions.dead_letter(d, ErrorInfo(kind="permanent", message="bench", at=d.created_at + 3))
            else:
                move = transitions.deliver(d, d.created_at + 3)
            await store.save(d, move)


async def timed(label: str, coro_fn, repeat: int = 5) -> None:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await coro_fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    print(f"{label:48} median {samples[len(samples) // 2]:8.1f} ms   max {samples[-1]:8.1f} ms")


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp))
        url = server.start()
        redis = Redis.from_url(url)
        store = DeliveryStore(redis, sealer=AesGcmSealer(parse_keys(new_key())))  # sealed, as in the relay
        try:
            t0 = time.perf_counter()
            await seed(store, n)
            print(f"seeded {n} deliveries in {time.perf_counter() - t0:.1f} s")
            conns = [f"conn{i}" for i in range(4)]
            for label, params in (
                ("no filter", {}),
                ("status=failed", {"status": "failed"}),
                ("status=delivered", {"status": "delivered"}),
                ("connection=conn1", {"connection": "conn1"}),
                ("status=failed&connection=conn1", {"status": "failed", "connection": "conn1"}),
                ("channel=indeed&connection=conn1", {"channel": "indeed", "connection": "conn1"}),
                ("q=<board application id>", {"q": "b1"}),
            ):
                f = build_filter(params)
                await timed(f"first page, {label}", lambda f=f: find(store, f, limit=50))
                page = await find(store, f, limit=50)
                if page.next_cursor:
                    await timed(
                        f"next page, {label}", lambda f=f, c=page.next_cursor: find(store, f, limit=50, cursor=c)
                    )
            await timed("counts (4 connections)", lambda: counts(store, conns))
            await timed("chart, 7 days", lambda: series(store, span_s=7 * 86400, buckets=28))
            await timed("/metrics body", lambda: metrics.render(store, conns))
        finally:
            await redis.aclose()
            server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
