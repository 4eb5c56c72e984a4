"""Redis persistence of deliveries: state, payload, files, indexes and metrics, written together.

The keys are built in `app/redis/keys.py`. arq's own `arq:job:<job id>` / `arq:queue` are written
in the same transaction as the state change that needs a run, so "stored" and "enqueued" can
never disagree (docs/architecture.md, "Delivery").
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, OutOfMemoryError, ResponseError

from app.blobs.capacity import Capacity
from app.blobs.store import BlobStore, BlobUnavailable, file_blob_name
from app.delivery import queue
from app.delivery.limits import ACQUIRE_FUNCTION
from app.delivery.record import STATUSES, Delivery, delivery_decoder, delivery_encoder
from app.delivery.staging import StagedFile
from app.delivery.transitions import Move
from app.redis.batch import RUN_FUNCTION, BatchRunner, CommandBatch, call_with_blobs
from app.redis.keys import (
    BLOBS_PENDING,
    IX_ALL,
    NO_MARKER,
    WAKE_KEY,
    connection_status_index,
    file_key,
    idempotency_claim_key,
    index_key,
    lease_key,
    metric_key,
    names_key,
    paused_key,
    payload_key,
    series_key,
    state_key,
    status_index,
)

DEFAULT_RETENTION_S = 30 * 24 * 3600
log = structlog.get_logger("applyrelay.store")

# Where a delivery's file n is (docs/operations.md, "Attachments: local files or S3"):
# - now: the blob `file_blob_name(delivery id, n)` (app/blobs/store.py), no Redis key at all: a
#   queued application costs Redis no per-file key (bench P5, issue 20);
# - stored by the first blob-store release: the file key `ar:f:<id>:<n>` holds BLOB_REF + a random
#   blob name;
# - stored before the blob store: the file key holds the sealed bytes (b"\x01"..., app/privacy/crypto.py).
# The older two are still read, dropped and erased, and `applyrelay blobs migrate` moves them to
# the first form.
BLOB_REF = b"blob:"
STREAM_ABOVE = 4 << 20  # files larger than this are sealed and written in 1 MB pieces (one copy less)
# A payload deflated before sealing starts with PACKED (a msgpack map never does): ~1 KB less Redis
# per queued application on bench P5's payload; one without it is read as it is (stored before).
PACKED = b"Z"


def pack_payload(raw: bytes) -> bytes:
    """The payload as stored (before sealing): deflated when that makes it smaller. Compressing
    before encrypting lets the length say something of the content; a payload holds one
    candidate's own application and nothing of anyone else's, so no third party's secret can be
    guessed from it (docs/data-protection.md)."""
    packed = PACKED + zlib.compress(raw, 6, wbits=-15)
    return packed if len(packed) < len(raw) else raw


def unpack_payload(raw: bytes) -> bytes:
    return zlib.decompress(raw[1:], wbits=-15) if raw[:1] == PACKED else raw


def parse_file_key(key: str) -> tuple[str, int]:
    """(delivery id, file index) of `ar:f:<id>:<n>` (app/redis/keys.py)."""
    head, _, index = key.rpartition(":")
    return head.split(":", 2)[2], int(index)


# Atomic intake: claim the idempotency key, store state and payload, index, enqueue, wake. With a
# blob store the files are in it already and have no key here (nfiles = 0). Without one (tests of
# the store alone) the files' bytes are SET beside the script in the same MULTI/EXEC (app/redis_batch.call_with_blobs),
# with a TTL that the script lifts once the delivery is stored: one round trip, and a transaction
# whose script failed (NOSCRIPT, an error) leaves no file behind for good. A duplicate deletes
# them; the same transaction sent again (redis-py retries it after a timed-out reply) finds its
# own id under the key and answers "created" again, files kept.
# The blobs' entries in `ar:blobs:pending` go with the files they are kept for (one round trip
# less than clearing them after; a duplicate's stay, for whoever deletes its blobs).
# KEYS: 1 idempotency, 2 state, 3 payload, 4 arq job, 5 arq queue, 6 ix:all, 7 status index,
#       8 wake list, 9-11 names (connection, channel, board), 12 accepted metric, 13 marker key,
#       then the files, the sorted-set indexes, the set indexes, and (with pending blobs) the
#       pending blobs' sorted set.
# ARGV: 1 id, 2 idempotency ttl, 3 state, 4 state if the marker key exists, 5 payload, 6 job body,
#       7 job ttl ms, 8 now ms, 9 created_at, 10 job id, 11-13 counts (files, zset ix, set ix),
#       14-16 names, 17 metric field, 18 count of pending blob entries, then the entries.
_CREATE = """
local nfiles, nzix, nsets = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local npending = tonumber(ARGV[18])
local function settle()
  if npending > 0 then redis.call('ZREM', KEYS[#KEYS], unpack(ARGV, 19, 18 + npending)) end
end
local existing = redis.call('GET', KEYS[1])
if existing == ARGV[1] then
  for i = 1, nfiles do redis.call('PERSIST', KEYS[13 + i]) end
  settle()
  return {1, ARGV[1], redis.call('GET', KEYS[2]) == ARGV[4] and 1 or 0}
end
if existing then
  for i = 1, nfiles do redis.call('DEL', KEYS[13 + i]) end
  return {0, existing, 0}
end
for i = 1, nfiles do redis.call('PERSIST', KEYS[13 + i]) end
local marked = 0
if ARGV[4] ~= '' and redis.call('EXISTS', KEYS[13]) == 1 then marked = 1 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('SET', KEYS[2], marked == 1 and ARGV[4] or ARGV[3])
redis.call('SET', KEYS[3], ARGV[5])
redis.call('PSETEX', KEYS[4], ARGV[7], ARGV[6])
redis.call('ZADD', KEYS[5], ARGV[8], ARGV[10])
redis.call('ZADD', KEYS[6], ARGV[9], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[9], ARGV[1])
redis.call('LPUSH', KEYS[8], '1')
redis.call('LTRIM', KEYS[8], 0, 63)
for i = 1, 3 do
  if ARGV[13 + i] ~= '' then redis.call('SADD', KEYS[8 + i], ARGV[13 + i]) end
end
redis.call('HINCRBY', KEYS[12], ARGV[17], 1)
for i = 1, nzix do redis.call('ZADD', KEYS[13 + nfiles + i], ARGV[9], ARGV[1]) end
for i = 1, nsets do redis.call('SADD', KEYS[13 + nfiles + nzix + i], ARGV[1]) end
settle()
return {1, ARGV[1], marked}
"""

# A file moved to its derived blob: the old file key goes only if it still holds what was copied
# (not dropped or re-fetched meanwhile). KEYS: file key. ARGV: 1 old value.
_DEL_IF = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# A run's start, in one round trip (bench P2): the connection's pause, then its limits, then the
# run's first write, then its payload, in that order and atomically, stopping at the first no.
# KEYS: 1 paused flag, 2 payload, 3-4 the limiter's semaphore and bucket (with a limit only).
# ARGV: 1 "1" with a limit, 2-6 the limiter's (lease ttl ms, limit, token, rate, burst), then
# the batch's commands (app/redis/batch.py). Returns {0, reason} (paused), {1, ms to wait or -1}
# (denied, app/delivery/limits.py), or {2, the payload as stored (nil: gone)}.
_BEGIN_RUN = (
    ACQUIRE_FUNCTION
    + RUN_FUNCTION
    + """
local reason = redis.call('GET', KEYS[1])
if reason then return {0, reason} end
local first = 2
if ARGV[1] == '1' then
  local got = acquire(KEYS[3], KEYS[4], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]),
    tonumber(ARGV[6]))
  if got[1] == 0 then return {1, got[2]} end
  first = 7
end
run_batch(first)
return {2, redis.call('GET', KEYS[2])}
"""
)

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Sealer(Protocol):
    """Encrypts what is stored about a candidate (payload and files). See app/privacy/crypto.py."""

    def seal(self, data: bytes) -> bytes: ...
    def open(self, data: bytes) -> bytes: ...


class PlainSealer:
    """No encryption: for tests of the store alone, never for a relay (see app/runtime.py)."""

    def seal(self, data: bytes) -> bytes:
        return data

    def open(self, data: bytes) -> bytes:
        return data


class NoSealer:
    """The default: a store built without a sealer may read and write delivery states, but never
    candidate data — neither storing it in clear nor handing back sealed bytes as if they were it."""

    def seal(self, data: bytes) -> bytes:
        raise RuntimeError(
            "this DeliveryStore has no sealer: candidate data is stored encrypted; "
            "pass sealer=runtime.sealer (tests: relay.store)"
        )

    def open(self, data: bytes) -> bytes:
        return self.seal(data)


def _in_memory(data: bytes | StagedFile) -> bytes:
    if isinstance(data, StagedFile):  # only a store with a blob store is given one
        raise TypeError("a staged file needs a DeliveryStore with a blob store")
    return data


async def _async_iter(items: Iterable[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


# -- secondary indexes, metrics, bulk jobs and sessions (the dashboard's keys) ------------------

SEP = "\x1f"  # joins label values in metric hash fields (never in an id or a name)
LATENCY_BUCKETS_S: tuple[float, ...] = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 24 * 3600)


SERIES_STEP_S = 300  # the chart's finest bucket
SERIES_KEEP_DAYS = 8


def _count_event(pipe: Any, event: str, at: float) -> None:
    key = series_key(event, int(at // 86400))
    pipe.hincrby(key, str(int(at // SERIES_STEP_S) * SERIES_STEP_S), 1)
    pipe.expire(key, SERIES_KEEP_DAYS * 86400)


def latency_bucket(seconds: float) -> str:
    for le in LATENCY_BUCKETS_S:
        if seconds <= le:
            return repr(float(le))
    return "+Inf"


def _index_values(delivery: Delivery) -> list[tuple[str, str]]:
    values = {
        "connection": delivery.connection_id,
        "connector": delivery.connector,
        "channel": delivery.channel,
        "board": delivery.board,
        "board_application_id": delivery.board_application_id,
    }
    return [(kind, value) for kind, value in values.items() if value]


def secondary_index_keys(delivery: Delivery) -> list[str]:
    """Every list index a delivery can be in (for whoever deletes a delivery for good)."""
    return [
        IX_ALL,
        *(status_index(s) for s in STATUSES),
        *(connection_status_index(delivery.connection_id, s) for s in STATUSES),
        *(index_key(kind, value) for kind, value in _index_values(delivery)),
    ]


def _transition_metrics(pipe: Any, delivery: Delivery, previous: str | None) -> None:
    """Count what a status change means for the metrics, in the same transaction as the change."""
    if previous == delivery.status:
        return
    labels = SEP.join((delivery.connection_id, delivery.connector))
    if delivery.status == "delivered":
        pipe.hincrby(metric_key("delivered"), labels, 1)
        latency = max((delivery.delivered_at or delivery.updated_at) - delivery.created_at, 0.0)
        pipe.hincrby(metric_key("latency"), SEP.join((delivery.connector, latency_bucket(latency))), 1)
        pipe.hincrbyfloat(metric_key("latency"), SEP.join((delivery.connector, "sum")), latency)
        _count_event(pipe, "delivered", delivery.updated_at)
    elif delivery.status == "failed":
        pipe.hincrby(metric_key("failed"), labels, 1)
        _count_event(pipe, "failed", delivery.updated_at)
    elif delivery.status == "retry_scheduled":
        code = delivery.last_error.http_status if delivery.last_error else None
        pipe.hincrby(metric_key("retries"), SEP.join((delivery.connector, str(code or "none"))), 1)
    elif delivery.status == "queued" and previous in ("failed", "paused", "retry_scheduled", "delivered"):
        pipe.hincrby(metric_key("retries"), SEP.join((delivery.connector, "manual")), 1)


def new_delivery_id() -> str:
    return "dlv_" + uuid.uuid4().hex


@dataclass(frozen=True)
class CreateResult:
    created: bool
    delivery_id: str
    marked: bool = False  # the `marked_by` key existed: the marked state was stored


class DeliveryStore:
    def __init__(
        self,
        redis: Redis,
        sealer: Sealer | None = None,
        retention_s: int = DEFAULT_RETENTION_S,
        blobs: BlobStore | None = None,
        capacity: Capacity | None = None,
    ) -> None:
        """`blobs`: where file bytes go (app/blobs); without one (tests of the store alone) they
        are kept in Redis as before the blob store."""
        self.redis = redis
        self.sealer: Sealer = sealer or NoSealer()
        self.retention_s = retention_s
        self.blobs = blobs
        self.capacity = capacity  # intake's high-water check (app/blobs/capacity.py)
        self._create = redis.register_script(_CREATE)
        self._unlock = redis.register_script(_UNLOCK)
        self._del_if = redis.register_script(_DEL_IF)
        self._batches = BatchRunner(redis)
        self._begin_run = redis.register_script(_BEGIN_RUN)

    # -- intake -------------------------------------------------------------------------------

    async def create(
        self,
        delivery: Delivery,
        payload: bytes,
        files: Sequence[bytes | StagedFile],
        idempotency_hash: str,
        index_sets: Sequence[str] = (),
        marked_by: tuple[str, Delivery] | None = None,
    ) -> CreateResult:
        """Store a new delivery and enqueue its first run, unless the idempotency key is known:
        one transaction, one round trip (bench P1). `index_sets` (e.g. the candidate's keyed-hash
        email index) get the new id. `marked_by` = (key, state): if that key exists when the
        script runs, `state` is stored instead of `delivery` (intake's erasure tombstone, checked
        in the same atomic step as the write). A file may be a `StagedFile`, in the blob store
        already (the form route's): it is moved to this delivery's name before the transaction."""
        if self.capacity is not None:  # Redis near maxmemory, the blob store failing: 503 first
            await self.capacity.check_intake()
        job_id = queue.job_id(delivery.id, 0)
        delivery.job = job_id
        now_ms = int(time.time() * 1000)
        indexes = [index_key(kind, value) for kind, value in _index_values(delivery)]
        indexes.append(connection_status_index(delivery.connection_id, delivery.status))
        marker_key, marked_state = marked_by if marked_by else (NO_MARKER, None)
        if marked_state is not None:
            marked_state.job = job_id
        # with a blob store, files have no key (their blobs' names are derived from the id)
        file_keys = [file_key(delivery.id, i) for i in range(len(files))] if self.blobs is None else []
        keys = [
            idempotency_claim_key(idempotency_hash),
            state_key(delivery.id),
            payload_key(delivery.id),
            queue.job_key(job_id),
            queue.QUEUE_NAME,
            IX_ALL,
            status_index(delivery.status),
            WAKE_KEY,
            names_key("connection"),
            names_key("channel"),
            names_key("board"),
            metric_key("accepted"),
            marker_key,
            *file_keys,
            *indexes,
            *index_sets,
        ]
        args: list[Any] = [
            delivery.id,
            self.retention_s,
            delivery_encoder.encode(delivery),
            delivery_encoder.encode(marked_state) if marked_state is not None else b"",
            self.sealer.seal(pack_payload(payload)),
            queue.serialize(delivery.id, now_ms),
            queue.JOB_EXPIRES_MS,
            now_ms,
            delivery.created_at,
            job_id,
            len(file_keys),
            len(indexes),
            len(index_sets),
            delivery.connection_id,
            delivery.channel,
            delivery.board or "",
            SEP.join((delivery.connection_id, delivery.connector, delivery.channel)),
        ]
        if self.blobs is None:
            blobs = {file_key(delivery.id, i): self.sealer.seal(_in_memory(f)) for i, f in enumerate(files)}
            args.append(0)
            created, delivery_id, marked = await call_with_blobs(self.redis, self._create, keys, args, blobs)
        else:
            # Blob first (noted pending, written, fsynced, renamed), then the one transaction that
            # makes the delivery visible, and with it its files: a crash in between leaves an
            # orphan blob the sweep removes (no delivery names it), never a delivery without its file.
            # (an empty file is a data_url's placeholder: fetched later, nothing to write now)
            pending = await self._write_blobs(delivery.id, [(i, f) for i, f in enumerate(files) if f])
            args += [len(pending), *pending]
            if pending:
                keys.append(BLOBS_PENDING)
            try:
                created, delivery_id, marked = await self._create(keys=keys, args=args)
            except ResponseError as exc:  # refused (OOM, a script error): nothing was kept
                await self._discard(pending)
                if isinstance(exc, OutOfMemoryError) and self.capacity is not None:
                    self.capacity.mark("redis", "full")
                raise
            # kept: the script cleared their pending entries; a connection lost mid-transaction
            # leaves them, for the sweep to check
            if not created:
                await self._discard(pending)
        return CreateResult(
            bool(created), delivery_id.decode() if isinstance(delivery_id, bytes) else delivery_id, bool(marked)
        )

    # -- reading ------------------------------------------------------------------------------

    async def get(self, delivery_id: str) -> Delivery | None:
        raw = await self.redis.get(state_key(delivery_id))
        return delivery_decoder.decode(raw) if raw else None

    async def get_many(self, ids: Sequence[str]) -> list[Delivery]:
        if not ids:
            return []
        raws = await self.redis.mget([state_key(i) for i in ids])
        return [delivery_decoder.decode(r) for r in raws if r]

    async def load_payload(self, delivery_id: str) -> bytes | None:
        raw = await self.redis.get(payload_key(delivery_id))
        return unpack_payload(self.sealer.open(raw)) if raw else None

    async def load_file(self, delivery_id: str, index: int) -> bytes | None:
        """A file's bytes: from its blob, or (stored by an older release) from the blob its file
        key names or from Redis itself. None if they are gone."""
        raw = await self.redis.get(file_key(delivery_id, index))
        if raw and raw.startswith(BLOB_REF):
            sealed = await self._blob_store().get(raw[len(BLOB_REF) :].decode())
            return self.sealer.open(sealed) if sealed is not None else None
        if raw:
            return self.sealer.open(raw)
        if self.blobs is None:
            return None
        sealed = await self.blobs.get(file_blob_name(delivery_id, index))
        return self.sealer.open(sealed) if sealed is not None else None

    async def store_file(self, delivery_id: str, index: int, data: bytes) -> None:
        """A file fetched later (a data_url): to its blob (replacing any earlier one whole)."""
        if self.blobs is None:
            await self.redis.set(file_key(delivery_id, index), self.sealer.seal(data))
            return
        pending = await self._write_blobs(delivery_id, [(index, data)])
        old = await self.redis.getdel(file_key(delivery_id, index))  # an older release's copy: replaced
        await self._settle(pending, kept=True)
        if old and old.startswith(BLOB_REF):
            await self._blob_store().delete(old[len(BLOB_REF) :].decode())

    async def files_held(self, delivery_id: str, count: int) -> int:
        """How many of a delivery's first `count` files are still stored (the subject access report)."""
        keys = [file_key(delivery_id, i) for i in range(count)]
        values = await self.redis.mget(keys) if keys else []
        held = 0
        for index, value in enumerate(values):
            if value or (self.blobs is not None and await self.blobs.exists(file_blob_name(delivery_id, index))):
                held += 1
        return held

    # -- blobs --------------------------------------------------------------------------------

    def _blob_store(self) -> BlobStore:
        if self.blobs is None:
            raise RuntimeError("a file key names a blob but this DeliveryStore has no blob store (runtime.store has)")
        return self.blobs

    async def _write_blobs(self, delivery_id: str, files: Sequence[tuple[int, bytes | StagedFile]]) -> list[str]:
        """Seal and write each file to its blob (a staged one: moved there), noted in
        `ar:blobs:pending` first (so an orphan is always found): the pending entries ("<blob
        name> <file key>")."""
        store = self._blob_store()
        names = {file_key(delivery_id, index): file_blob_name(delivery_id, index) for index, _ in files}
        pending = [f"{name} {key}" for key, name in names.items()]
        if not pending:
            return []
        await self.redis.zadd(BLOBS_PENDING, dict.fromkeys(pending, time.time()))
        try:
            for (_, data), name in zip(files, names.values(), strict=True):
                pieces = getattr(self.sealer, "seal_chunks", None)
                if isinstance(data, StagedFile):
                    await store.move(data.name, name)  # sealed and written as it arrived
                    data.moved = True
                elif pieces is not None and len(data) > STREAM_ABOVE:
                    await store.put_stream(name, _async_iter(pieces(data)))
                else:
                    await store.put(name, self.sealer.seal(data))  # one sealed copy at a time
        except BaseException as exc:
            if isinstance(exc, BlobUnavailable) and self.capacity is not None:
                self.capacity.mark("blobs", exc.reason)
            await self._discard(pending)
            raise
        staged = [data.entry for _, data in files if isinstance(data, StagedFile)]
        if staged:  # their pending entries now are the delivery's (above)
            await self.redis.zrem(BLOBS_PENDING, *staged)
        return pending

    async def _discard(self, pending: Sequence[str]) -> None:
        """Blobs written for nothing: deleted now, best effort (else the sweep does it)."""
        if not pending:
            return
        try:
            for entry in pending:
                await self._blob_store().delete(entry.split(" ", 1)[0])
            await self.redis.zrem(BLOBS_PENDING, *pending)
        except Exception as exc:
            log.warning("blobs.discard_deferred", error_type=type(exc).__name__, blobs=len(pending))

    async def _settle(self, pending: Sequence[str], *, kept: bool) -> None:
        if not pending:
            return
        if not kept:
            await self._discard(pending)
            return
        try:
            await self.redis.zrem(BLOBS_PENDING, *pending)
        except Exception as exc:  # the sweep finds them referenced and only forgets them
            log.warning("blobs.pending_not_cleared", error_type=type(exc).__name__, blobs=len(pending))

    async def drop_blobs(self, delivery_id: str, indexes: Iterable[int], *, probe: bool = True) -> list[str]:
        """Delete the blobs of these files (before any file keys go): the names deleted. Each
        file's derived blob, and the blob an older release's file key names. `probe`: ask the
        store which derived blobs exist first, to count them (the erasure report); without it
        they are deleted blind (deleting a missing blob is no error)."""
        wanted = list(indexes)
        if not wanted or self.blobs is None:
            return []
        values = await self.redis.mget([file_key(delivery_id, i) for i in wanted])
        names = [v[len(BLOB_REF) :].decode() for v in values if v and v.startswith(BLOB_REF)]
        for index in wanted:
            name = file_blob_name(delivery_id, index)
            if not probe or await self.blobs.exists(name):
                names.append(name)
        for name in names:
            await self.blobs.delete(name)
        return names

    async def migrate_file(self, key: str) -> str:
        """Move one file an older release stored under a file key (its sealed bytes in Redis, or
        a reference to a random blob) to its derived blob, as sealed as it was, and drop the key:
        "moved", "skipped" (gone, or its blob is), or "changed" (dropped or re-fetched meanwhile:
        the copy goes if the delivery's files are purged). Idempotent, so `applyrelay blobs
        migrate` resumes by simply running again."""
        old = await self.redis.get(key)
        if not old:
            return "skipped"
        store = self._blob_store()
        previous = old[len(BLOB_REF) :].decode() if old.startswith(BLOB_REF) else None
        sealed = await store.get(previous) if previous is not None else old
        if sealed is None:
            return "skipped"
        delivery_id, index = parse_file_key(key)
        name = file_blob_name(delivery_id, index)
        entry = f"{name} {key}"
        await self.redis.zadd(BLOBS_PENDING, {entry: time.time()})
        await store.put(name, sealed)
        if await self._del_if(keys=[key], args=[old]):
            await self.redis.zrem(BLOBS_PENDING, entry)
            if previous is not None:
                await store.delete(previous)
            return "moved"
        state = await self.get(delivery_id)
        await self._settle([entry], kept=state is not None and not state.files_purged)
        return "changed"

    async def sweep_orphans(self, older_than_s: float) -> int:
        """Delete blobs written but never referenced (a web process killed between the blob write
        and the Redis transaction, a duplicate whose cleanup was cut short), and stale temp files.
        `older_than_s` must exceed any intake's duration (default: the blob TTL, app/redis/batch.py)."""
        if self.blobs is None:
            return 0
        cutoff = time.time() - older_than_s
        swept = 0
        while True:
            entries = await self.redis.zrangebyscore(BLOBS_PENDING, "-inf", cutoff, start=0, num=500)
            if not entries:
                break
            decoded = [e.decode().split(" ", 1) for e in entries]
            refs = await self.redis.mget([key for _, key in decoded])
            states = await self.redis.mget([state_key(parse_file_key(key)[0]) for _, key in decoded])
            for (name, key), ref, raw in zip(decoded, refs, states, strict=True):
                if ref == BLOB_REF + name.encode():
                    continue  # an older release's reference names it
                if raw and name == file_blob_name(*parse_file_key(key)):
                    if not delivery_decoder.decode(raw).files_purged:
                        continue  # its delivery was stored: it is that delivery's file
                await self.blobs.delete(name)
                swept += 1
            await self.redis.zrem(BLOBS_PENDING, *entries)
        for path in self.blobs.stale_temp_files(older_than_s):
            path.unlink(missing_ok=True)
            swept += 1
        return swept

    async def list_ids(
        self, status: str | None = None, *, offset: int = 0, count: int = 50, newest_first: bool = True
    ) -> list[str]:
        key = status_index(status) if status else IX_ALL
        fn = self.redis.zrevrange if newest_first else self.redis.zrange
        return [i.decode() for i in await fn(key, offset, offset + count - 1)]

    async def counts(self) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for status in STATUSES:
            pipe.zcard(status_index(status))
        return dict(zip(STATUSES, await pipe.execute(), strict=True))

    # -- state changes ------------------------------------------------------------------------

    async def save(
        self,
        delivery: Delivery,
        move: Move | None = None,
        *,
        run_at: float | None = None,
        run_seq: int | None = None,
        extra_files: dict[int, bytes] | None = None,
        drop_files: int = 0,
        release: tuple[str, tuple[str, str] | None] | None = None,
    ) -> None:
        """Write the state, move it between status indexes (`move`, from app/delivery/transitions.py;
        none for a save that changes no status), and (with `run_at`) enqueue its next run, in one
        atomic call; also store `extra_files` and delete the first `drop_files` files. `release`:
        (lease token, the connection's slot or None), given back in the same call (a run's last
        write: see `release_lease`)."""
        if move is not None and move.to != delivery.status:
            raise ValueError(f"delivery {delivery.id} is {delivery.status}, not {move.to} as moved")
        previous_status = move.previous if move is not None else delivery.status
        delivery.updated_at = time.time()
        delivery.version += 1
        jid = None
        if run_at is not None:
            jid = queue.job_id(delivery.id, f"{run_seq if run_seq is not None else delivery.runs}-{delivery.version}")
            delivery.job = jid
        if drop_files:
            # the ATS holds them: the blobs go first (a failed save leaves a delivered run that
            # re-runs with every step checkpointed, needing no file)
            try:
                await self.drop_blobs(delivery.id, range(drop_files), probe=False)
            except BlobUnavailable as exc:  # kept (references and blobs) until retention purges them
                log.warning("blobs.drop_deferred", delivery_id=delivery.id, reason=exc.reason)
                drop_files = 0
        batch = self._batch(delivery, previous_status, jid, run_at, drop_files)
        if isinstance(batch, bytes):
            # A checkpoint (the status stays): the indexes already hold it, one SET is the whole
            # write. Most saves of a delivery are these, one per ATS step.
            if not extra_files and release is None:
                await self.redis.set(state_key(delivery.id), batch)
                return
            state, batch = batch, CommandBatch()
            batch.set(state_key(delivery.id), state)
        if release is not None:
            token, slot = release
            batch.delete_if_equal(lease_key(delivery.id), token)
            if slot is not None:
                batch.zrem(*slot)
        blobs = {file_key(delivery.id, index): self.sealer.seal(data) for index, data in (extra_files or {}).items()}
        await self._batches.execute(batch, blobs)

    async def begin_run(
        self,
        delivery: Delivery,
        move: Move,
        limit: tuple[Sequence[str], Sequence[Any]] | None,
    ) -> tuple[int, Any]:
        """A run's start in one round trip: the connection's pause flag, then its limits (`limit`:
        the limiter's keys and arguments, app/delivery/limits.py `LimitRequest`), then
        `save(delivery, move)` and the payload as stored. Stops at the first no, writing nothing:
        (0, the pause reason), (1, the limiter's wait in ms or -1), or (2, the sealed payload or
        None). `delivery` is changed in memory either way (version, updated_at): a caller that
        gets a no re-reads the state it had (the engine keeps the bytes it read)."""
        if move.to != delivery.status:
            raise ValueError(f"delivery {delivery.id} is {delivery.status}, not {move.to} as moved")
        delivery.updated_at = time.time()
        delivery.version += 1
        batch = self._batch(delivery, move.previous, None, None, 0)
        if isinstance(batch, bytes):
            state, batch = batch, CommandBatch()
            batch.set(state_key(delivery.id), state)
        keys: list[str] = [paused_key(delivery.connection_id), payload_key(delivery.id)]
        args: list[Any] = ["0"]
        if limit is not None:
            keys += limit[0]
            args = ["1", *limit[1]]
        kind, value = await self._begin_run(keys=keys, args=[*args, *batch.args])
        return int(kind), value

    def open_payload(self, sealed: bytes) -> bytes:
        return unpack_payload(self.sealer.open(sealed))

    def _batch(
        self, delivery: Delivery, previous_status: str | None, jid: str | None, run_at: float | None, drop_files: int
    ) -> CommandBatch | bytes:
        """The commands of a save; only the encoded state when a plain SET of it is the whole write."""
        state = delivery_encoder.encode(delivery)
        moved = previous_status != delivery.status
        if not moved and jid is None and not drop_files:
            return state
        batch = CommandBatch()  # one atomic call (app/redis/batch.py): state and job first
        batch.set(state_key(delivery.id), state)
        if jid is not None and run_at is not None:
            queue.add_to_pipeline(batch, delivery.id, jid, run_at)
        if moved:
            if previous_status:
                batch.zrem(status_index(previous_status), delivery.id)
            batch.zadd(status_index(delivery.status), {delivery.id: delivery.updated_at})
            for status in STATUSES:  # per-connection status sets: self-healing, whatever `previous_status` says
                if status != delivery.status:
                    batch.zrem(connection_status_index(delivery.connection_id, status), delivery.id)
            batch.zadd(
                connection_status_index(delivery.connection_id, delivery.status), {delivery.id: delivery.updated_at}
            )
            _transition_metrics(batch, delivery, previous_status)
        if drop_files:
            batch.delete(*(file_key(delivery.id, i) for i in range(drop_files)))
        return batch

    async def purge(self, delivery: Delivery, file_count: int) -> int:
        """Drop the payload and files, keep the state as a tombstone (ids, statuses, attempts).
        Returns how many blobs were deleted from the blob store."""
        files = [file_key(delivery.id, i) for i in range(file_count)]
        deleted = await self.drop_blobs(delivery.id, range(file_count))
        keys = [payload_key(delivery.id), *files]
        delivery.payload_purged = delivery.files_purged = True
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(*keys)
        pipe.set(state_key(delivery.id), delivery_encoder.encode(delivery))
        await pipe.execute()
        # Once more, now that the state says purged: a `keys rotate` that read one of them before
        # the first delete may have written it back since (it checks that state after writing).
        try:
            for name in deleted:
                await self._blob_store().delete(name)
        except BlobUnavailable as exc:
            log.warning("blobs.purge_recheck_failed", delivery_id=delivery.id, reason=exc.reason)
        return len(deleted)

    async def unindex(self, delivery: Delivery) -> None:
        """Take a delivery out of every list index (a retention or erasure job deleting it)."""
        pipe = self.redis.pipeline(transaction=True)
        for key in secondary_index_keys(delivery):
            pipe.zrem(key, delivery.id)
        await pipe.execute()

    async def drop_file(self, delivery_id: str, index: int) -> None:
        """One file's bytes, once the ATS confirmed it (retention: nothing kept longer than needed)."""
        try:
            await self.drop_blobs(delivery_id, [index], probe=False)
        except BlobUnavailable as exc:  # dropped with the others at the end, or by retention
            log.warning("blobs.drop_deferred", delivery_id=delivery_id, reason=exc.reason)
            return
        await self.redis.delete(file_key(delivery_id, index))

    # -- leases -------------------------------------------------------------------------------

    async def acquire_lease(self, delivery_id: str, ttl_s: float) -> str | None:
        token = uuid.uuid4().hex
        ok = await self.redis.set(lease_key(delivery_id), token, nx=True, px=int(ttl_s * 1000))
        return token if ok else None

    async def acquire_lease_and_get(self, delivery_id: str, ttl_s: float) -> tuple[str | None, Delivery | None]:
        """Take the lease and read the state in one round trip: (lease token or None, delivery).
        Without the lease the state is not decoded (someone else is running it)."""
        token, delivery, _ = await self.acquire_lease_and_read(delivery_id, ttl_s)
        return token, delivery

    async def acquire_lease_and_read(
        self, delivery_id: str, ttl_s: float
    ) -> tuple[str | None, Delivery | None, bytes | None]:
        """`acquire_lease_and_get`, with the state's bytes as read (to go back to, cheaply)."""
        token = uuid.uuid4().hex
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(lease_key(delivery_id), token, nx=True, px=int(ttl_s * 1000))
        pipe.get(state_key(delivery_id))
        ok, raw = await pipe.execute()
        if not ok:
            return None, None, None
        return token, delivery_decoder.decode(raw) if raw else None, raw

    async def release_lease(self, delivery_id: str, token: str, *, also_zrem: tuple[str, str] | None = None) -> None:
        """Give the lease back if it is still ours; `also_zrem` = (key, member), removed in the same
        round trip (the connection's slot: app/delivery/limits.py)."""
        if also_zrem is None:
            await self._unlock(keys=[lease_key(delivery_id)], args=[token])
            return
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(*also_zrem)
        pipe.evalsha(self._unlock.sha, 1, lease_key(delivery_id), token)
        removed, unlocked = await pipe.execute(raise_on_error=False)
        if isinstance(removed, Exception):
            raise removed
        if isinstance(unlocked, NoScriptError):  # Redis restarted: the script is loaded again
            await self._unlock(keys=[lease_key(delivery_id)], args=[token])
        elif isinstance(unlocked, Exception):
            raise unlocked

    # -- connections --------------------------------------------------------------------------

    async def pause_connection(self, connection_id: str, reason: str) -> None:
        await self.redis.set(paused_key(connection_id), reason.encode())

    async def lift_pause(self, connection_id: str) -> None:
        await self.redis.delete(paused_key(connection_id))

    async def paused_reason(self, connection_id: str) -> str | None:
        raw = await self.redis.get(paused_key(connection_id))
        return raw.decode() if raw else None
