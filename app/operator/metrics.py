"""Prometheus metrics, computed from Redis at scrape time.

Workers and web processes come and go; what they count lives in Redis (hashes the store
increments in the same transaction as the change they count, and the indexes), so any web
process answers for the whole relay. No labels carry PII: connection, connector, channel,
status and HTTP status code only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from app.delivery import queue
from app.delivery.reaper import REAPED_METRIC
from app.delivery.record import STATUSES
from app.delivery.store import LATENCY_BUCKETS_S, SEP, DeliveryStore
from app.redis.client import awaited
from app.redis.keys import connection_status_index, metric_key, status_index

# Litestar appends "; charset=utf-8" to every text/* media type (litestar/response/base.py): naming
# it here too said it twice, which strict scrapers refuse.
CONTENT_TYPE = "text/plain; version=0.0.4"


class _Snapshot:
    """A collector yielding families built beforehand (prometheus_client collectors are sync)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def _decode(raw: dict[bytes, bytes]) -> dict[str, float]:
    return {k.decode(): float(v) for k, v in raw.items()}


async def collect(store: DeliveryStore, connections: list[str], now: float | None = None) -> list[Metric]:
    now = now or time.time()
    redis = store.redis
    pipe = redis.pipeline(transaction=False)
    for name in ("accepted", "delivered", "failed", "retries", "latency"):
        pipe.hgetall(metric_key(name))
    pipe.zcount(queue.QUEUE_NAME, "-inf", int(now * 1000))
    pipe.zcard(queue.QUEUE_NAME)
    pipe.zrange(status_index("queued"), 0, 0, withscores=True)
    for connection in connections:
        for status in STATUSES:
            pipe.zcard(connection_status_index(connection, status))
    results = await pipe.execute()
    accepted, delivered, failed, retries, latency = (_decode(r) for r in results[:5])
    due, total_jobs, oldest = results[5], results[6], results[7]
    per_connection = iter(results[8:])

    families: list[Metric] = []
    fam = CounterMetricFamily(
        "applyrelay_accepted",
        "Applications accepted (stored and enqueued)",
        labels=["connection", "connector", "channel"],
    )
    for labels, value in sorted(accepted.items()):
        fam.add_metric(labels.split(SEP), value)
    families.append(fam)
    for name, data, help_text in (
        ("delivered", delivered, "Deliveries that reached the ATS"),
        ("failed", failed, "Deliveries dead-lettered"),
    ):
        fam = CounterMetricFamily(f"applyrelay_{name}", help_text, labels=["connection", "connector"])
        for labels, value in sorted(data.items()):
            fam.add_metric(labels.split(SEP), value)
        families.append(fam)
    fam = CounterMetricFamily(
        "applyrelay_retries",
        "Retries scheduled, by the ATS's HTTP status code "
        "(none: network error or timeout; manual: an operator's retry)",
        labels=["connector", "status_code"],
    )
    for labels, value in sorted(retries.items()):
        fam.add_metric(labels.split(SEP), value)
    families.append(fam)

    jobs = GaugeMetricFamily("applyrelay_queue_jobs", "Delivery runs in the queue", labels=["state"])
    jobs.add_metric(["due"], due)
    jobs.add_metric(["scheduled"], total_jobs - due)
    families.append(jobs)
    age = max(now - oldest[0][1], 0.0) if oldest else 0.0
    families.append(
        GaugeMetricFamily(
            "applyrelay_oldest_queued_age_seconds", "How long the oldest queued delivery has waited", value=age
        )
    )
    deliveries = GaugeMetricFamily(
        "applyrelay_deliveries", "Deliveries by connection and status", labels=["connection", "status"]
    )
    for connection in connections:
        for status in STATUSES:
            deliveries.add_metric([connection, status], next(per_connection))
    families.append(deliveries)
    families.append(_latency_histogram(latency))
    families.append(_purged(_decode(await awaited(redis.hgetall(metric_key("purged"))))))
    families.append(_reaped(_decode(await awaited(redis.hgetall(REAPED_METRIC)))))
    return families


def _reaped(counts: dict[str, float]) -> Metric:
    """Deliveries found with neither a pending job nor a live lease, and re-enqueued by the
    reaper (app/delivery/reaper.py): any non-zero rate is a bug or an outage worth a look."""
    fam = CounterMetricFamily(
        "applyrelay_deliveries_reaped",
        "Waiting deliveries found without a job or a lease and re-enqueued, by what was missing",
        labels=["reason"],
    )
    for reason in ("no_job", "job_missing", "job_unqueued"):
        fam.add_metric([reason], counts.get(reason, 0.0))
    return fam


def _purged(counts: dict[str, float]) -> Metric:
    """Candidate records purged (payload and files dropped) by retention or erasure (app/privacy/retention.py)."""
    fam = CounterMetricFamily(
        "applyrelay_records_purged",
        "Candidate records purged, by reason (delivered / dead_letter: retention; erasure: on request)",
        labels=["reason"],
    )
    for reason in ("delivered", "dead_letter", "erasure"):
        fam.add_metric([reason], counts.get(reason, 0.0))
    return fam


def _latency_histogram(latency: dict[str, float]) -> Metric:
    fam = HistogramMetricFamily(
        "applyrelay_delivery_latency_seconds", "From acceptance to delivered", labels=["connector"]
    )
    per_connector: dict[str, dict[str, float]] = {}
    for field, value in latency.items():
        connector, _, bucket = field.rpartition(SEP)
        per_connector.setdefault(connector, {})[bucket] = value
    for connector, data in sorted(per_connector.items()):
        cumulative, buckets = 0.0, []
        for le in LATENCY_BUCKETS_S:
            cumulative += data.get(repr(float(le)), 0.0)
            buckets.append((_le(le), cumulative))
        cumulative += data.get("+Inf", 0.0)
        buckets.append(("+Inf", cumulative))
        fam.add_metric([connector], buckets, sum_value=data.get("sum", 0.0))
    return fam


def _le(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


async def render(store: DeliveryStore, connections: list[str]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await collect(store, connections)))
    return generate_latest(registry)
