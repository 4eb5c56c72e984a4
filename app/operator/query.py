"""Finding deliveries by filter, newest first, with cursor pagination — for the API, the dashboard,
bulk retries and the CLI.

Every filter maps to a sorted set the store maintains (status, connection, connector, origin
channel, board, board application id); several filters intersect them (ZINTERSTORE, weighted so
the result is scored by receipt time) into a short-lived key that the next pages reuse. The
cursor is the last row's (receipt time, id): stable while new deliveries arrive.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import time
from dataclasses import asdict, dataclass
from typing import Any

from app.core.problems import Problem
from app.delivery.record import STATUSES, Delivery
from app.delivery.store import SERIES_STEP_S, DeliveryStore
from app.redis.client import awaited
from app.redis.keys import (
    IX_ALL,
    connection_status_index,
    index_key,
    names_key,
    query_cache_key,
    series_key,
    state_key,
    status_index,
)

QUERY_CACHE_S = 30
INTERSECT_MAX = 20_000  # intersect filter sets up to this size (Redis blocks ~2 ms per 1000 members)
SCAN_MAX = 20_000  # rows one request may walk when the filter sets are all larger
MAX_LIMIT = 500


def query_error(field: str, message: str) -> Problem:
    """A filter that cannot be applied: names the field at fault."""
    return Problem.invalid(field, message, status=422, title="Invalid request")  # a value, not the syntax


@dataclass(frozen=True)
class DeliveryFilter:
    status: str | None = None
    connection: str | None = None
    connector: str | None = None
    channel: str | None = None
    board: str | None = None
    received_from: float | None = None
    received_to: float | None = None
    q: str | None = None  # a delivery id or a board's application id

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise query_error("status", f"must be one of {', '.join(STATUSES)}")
        if self.received_from is not None and self.received_to is not None and self.received_from > self.received_to:
            raise query_error("received_from", "is after received_to")

    def as_params(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items() if v not in (None, "")}

    def matches(self, d: Delivery) -> bool:
        return (
            (self.status is None or d.status == self.status)
            and (self.connection is None or d.connection_id == self.connection)
            and (self.connector is None or d.connector == self.connector)
            and (self.channel is None or d.channel == self.channel)
            and (self.board is None or d.board == self.board)
            and (self.received_from is None or d.created_at >= self.received_from)
            and (self.received_to is None or d.created_at <= self.received_to)
        )


def parse_time(value: str | None, field: str) -> float | None:
    """Epoch seconds or ISO 8601 (a date, or a date-time; naive means UTC). Finite only: Python
    reads "nan", "inf" and "1e400" as floats, Redis refuses them as score bounds (a 500, or a bulk
    retry failing after its 202)."""
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise query_error(field, "expected finite epoch seconds or an ISO 8601 date-time")
        return seconds
    import datetime as dt

    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise query_error(field, "expected epoch seconds or an ISO 8601 date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def build_filter(params: dict[str, str | None]) -> DeliveryFilter:
    def text(name: str) -> str | None:
        value = params.get(name)
        if value is None or not value.strip():
            return None
        if len(value) > 200:
            raise query_error(name, "longer than 200 characters")
        return value.strip()

    return DeliveryFilter(
        status=text("status"),
        connection=text("connection"),
        connector=text("connector"),
        channel=text("channel"),
        board=text("board"),
        received_from=parse_time(params.get("received_from"), "received_from"),
        received_to=parse_time(params.get("received_to"), "received_to"),
        q=text("q"),
    )


def encode_cursor(score: float, delivery_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score!r}|{delivery_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, _, delivery_id = raw.partition("|")
        seconds = float(score)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise query_error("cursor", "not a cursor this API returned") from None
    if not math.isfinite(seconds):  # a forged one: Redis would refuse it as a bound (parse_time)
        raise query_error("cursor", "not a cursor this API returned")
    return seconds, delivery_id


@dataclass
class Page:
    deliveries: list[Delivery]
    next_cursor: str | None


async def _plan(store: DeliveryStore, f: DeliveryFilter, fresh: bool) -> tuple[str, list[str]]:
    """Where to read and what to check: (a set scored by receipt time, sets each row must be in).

    One filter: its own set. Several, when the smallest is small: their intersection (ZINTERSTORE
    costs about the smallest set's size), computed for a first page and reused by the next pages
    for a while. Several large ones: walk the smallest receipt-time set newest first and check
    membership in the others (ZMSCORE) — never one long-blocking Redis command."""
    by_created = [
        index_key(kind, value)
        for kind, value in (
            ("connection", f.connection),
            ("connector", f.connector),
            ("channel", f.channel),
            ("board", f.board),
        )
        if value
    ]
    by_updated = []
    if f.status:
        by_updated.append(connection_status_index(f.connection, f.status) if f.connection else status_index(f.status))
    if not by_updated and len(by_created) <= 1:
        return (by_created[0] if by_created else IX_ALL), []
    pipe = store.redis.pipeline(transaction=False)
    for key in (*by_created, *by_updated):
        pipe.zcard(key)
    sizes = dict(zip((*by_created, *by_updated), await pipe.execute(), strict=True))
    scored = min(by_created, key=lambda k: sizes[k]) if by_created else IX_ALL
    others = [k for k in (*by_created, *by_updated) if k != scored]
    if min(sizes.values()) > INTERSECT_MAX:
        return scored, others
    digest = hashlib.sha256("\0".join([scored, *others]).encode()).hexdigest()[:32]
    key = query_cache_key(digest)
    if fresh or not await store.redis.exists(key):
        pipe = store.redis.pipeline(transaction=True)
        pipe.zinterstore(key, {scored: 1, **{k: 0 for k in others}}, aggregate="SUM")
        pipe.expire(key, QUERY_CACHE_S)
        await pipe.execute()
    return key, []


async def find(store: DeliveryStore, f: DeliveryFilter, *, limit: int = 50, cursor: str | None = None) -> Page:
    """One page of deliveries matching `f`, newest received first. A page may be short (rows that
    changed status meanwhile, or a membership walk that hit its bound); `next_cursor` is None only
    at the end."""
    limit = max(1, min(limit, MAX_LIMIT))
    if f.q:
        return await _search(store, f, limit)
    key, check = await _plan(store, f, fresh=cursor is None)
    low = f.received_from if f.received_from is not None else "-inf"
    high: float | str = f.received_to if f.received_to is not None else "+inf"
    after: tuple[float, str] | None = decode_cursor(cursor) if cursor else None
    if after is not None:
        high = after[0] if high == "+inf" else min(float(high), after[0])
    rows: list[tuple[str, float]] = []
    offset = scanned = 0
    last: tuple[str, float] | None = None
    exhausted = False
    chunk = limit + 1 if not check else max(limit * 4, 200)
    while len(rows) <= limit:
        if check and scanned >= SCAN_MAX:
            break
        batch = await store.redis.zrevrangebyscore(key, high, low, start=offset, num=chunk, withscores=True)
        if not batch:
            exhausted = True
            break
        offset += len(batch)
        candidates = []
        for member, score in batch:
            delivery_id = member.decode()
            # equal scores come in descending id order: skip up to and including the cursor's row
            if after is not None and score == after[0] and delivery_id >= after[1]:
                continue
            candidates.append((delivery_id, score))
        if check and candidates:
            pipe = store.redis.pipeline(transaction=False)
            for other in check:
                pipe.zmscore(other, [i for i, _ in candidates])
            memberships = await pipe.execute()
            candidates = [row for n, row in enumerate(candidates) if all(m[n] is not None for m in memberships)]
            scanned += len(batch)
        for row in candidates:
            rows.append(row)
            if len(rows) > limit:
                break
        if batch:
            last = (batch[-1][0].decode(), batch[-1][1])
    page, more = rows[:limit], len(rows) > limit
    # a delivery may have changed status since the intersection was made: show what matches now
    deliveries = [d for d in await store.get_many([i for i, _ in page]) if f.matches(d)]
    if more and page:
        next_cursor = encode_cursor(page[-1][1], page[-1][0])
    elif not exhausted and check and last is not None and len(rows) <= limit and scanned >= SCAN_MAX:
        next_cursor = encode_cursor(last[1], last[0])  # the walk's bound: go on from where it stopped
    else:
        next_cursor = None
    return Page(deliveries, next_cursor)


async def _search(store: DeliveryStore, f: DeliveryFilter, limit: int) -> Page:
    """Exact match on a delivery id (with or without its `dlv_` prefix) or a board application id."""
    assert f.q is not None
    ids: list[str] = []
    for candidate in (f.q, f.q if f.q.startswith("dlv_") else "dlv_" + f.q):
        if candidate not in ids and await store.redis.exists(state_key(candidate)):
            ids.append(candidate)
    for member in await store.redis.zrevrange(index_key("board_application_id", f.q), 0, MAX_LIMIT - 1):
        if member.decode() not in ids:
            ids.append(member.decode())
    found = [d for d in await store.get_many(ids) if f.matches(d)]
    found.sort(key=lambda d: d.created_at, reverse=True)
    return Page(found[:limit], None)


async def find_all_ids(store: DeliveryStore, f: DeliveryFilter, *, batch: int = 500) -> list[str]:
    """Every matching id (a bulk retry's snapshot)."""
    ids: list[str] = []
    cursor = None
    while True:
        page = await find(store, f, limit=batch, cursor=cursor)
        ids.extend(d.id for d in page.deliveries)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


async def counts(store: DeliveryStore, connections: list[str]) -> dict[str, Any]:
    """Deliveries per status, overall and per connection (cheap: one ZCARD per set)."""
    pipe = store.redis.pipeline(transaction=False)
    for status in STATUSES:
        pipe.zcard(status_index(status))
    for connection in connections:
        for status in STATUSES:
            pipe.zcard(connection_status_index(connection, status))
    values = iter(await pipe.execute())
    by_status = {status: next(values) for status in STATUSES}
    by_connection = {c: {status: next(values) for status in STATUSES} for c in connections}
    return {"by_status": by_status, "by_connection": by_connection, "total": sum(by_status.values())}


async def known_names(store: DeliveryStore, kind: str) -> list[str]:
    """The connection / channel / board values deliveries have had (filter menus)."""
    return sorted(m.decode() for m in await awaited(store.redis.smembers(names_key(kind))))


async def series(store: DeliveryStore, *, span_s: float, buckets: int, now: float | None = None) -> dict[str, Any]:
    """Deliveries received, delivered and dead-lettered per time bucket: received from the index
    of receipt times; delivered and failed from the per-5-minute event counters (a failure that
    was later retried still shows where it happened)."""
    now = now or time.time()
    step = span_s / buckets
    end = math.ceil(now / SERIES_STEP_S) * SERIES_STEP_S
    start = end - span_s
    edges = [start + i * step for i in range(buckets + 1)]
    days = range(int(start // 86400), int(end // 86400) + 1)
    pipe = store.redis.pipeline(transaction=False)
    for i in range(buckets):
        pipe.zcount(IX_ALL, edges[i], f"({edges[i + 1]}")
    for event in ("delivered", "failed"):
        for day in days:
            pipe.hgetall(series_key(event, day))
    values = await pipe.execute()
    out: dict[str, Any] = {"start": start, "step": step, "received": values[:buckets]}
    hashes = iter(values[buckets:])
    for event in ("delivered", "failed"):
        counts_ = [0] * buckets
        for _ in days:
            for field, value in next(hashes).items():
                index = int((int(field) - start) // step)
                if 0 <= index < buckets:
                    counts_[index] += int(value)
        out[event] = counts_
    return out


FILTER_FIELDS = ("status", "connection", "connector", "channel", "board", "received_from", "received_to", "q")
