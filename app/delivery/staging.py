"""The career-site form's files, written to the blob store as the multipart parser yields them
(issue 20; docs/operations.md, "Attachments: local files or S3"), so a 20 MB CV is never held
whole by the web process.

Each file part is sealed piece by piece (the same layout as `Sealer.seal`), hashed (the sha256
Redis keeps in the payload) and written under a random staging name, noted in `ar:blobs:pending`
first; the store's `create` moves it to the delivery's derived name (fs: a rename; S3: a
server-side copy) before the Redis transaction, as it writes any other file. What the relay
checks of a file's bytes (app/core/files.py `sniff`) needs only the two ends of a PDF or an image:
of those the parser keeps the first 64 KB and the last 4 KB; a zip (Word, OpenDocument) or a text
is kept whole until it is checked, as before. Whatever is not moved (a refused, duplicate or
abandoned post) is deleted by `Stager.discard`, or, after a crash, by the orphan sweep.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Protocol

import structlog
from redis.asyncio import Redis

from app.blobs.capacity import Capacity
from app.blobs.store import BlobStore, BlobUnavailable, BlobWriter, new_name
from app.core import files
from app.privacy.crypto import SealStream
from app.redis.keys import BLOBS_PENDING, file_key

log = structlog.get_logger("applyrelay.blobs")
WRITE_PIECE = 1 << 20  # ciphertext gathered before a write (S3's parts: OpenDAL buffers to 5 MB)


class StreamSealer(Protocol):
    def seal_stream(self) -> SealStream: ...


@dataclass
class StagedFile:
    """A file part already in the blob store, sealed, under `name`; what intake checks of it."""

    name: str
    entry: str  # its ar:blobs:pending entry
    size: int
    sha256: str
    head: bytes  # the whole file when `whole`, else its first files.PROBE_HEAD bytes
    tail: bytes = b""  # its last files.PROBE_TAIL bytes, unless `whole`
    whole: bool = True
    moved: bool = False  # set by DeliveryStore.create once it is a delivery's file

    def sniff(self) -> str:
        """Its real content type, as `files.sniff` of all its bytes says (FileRejected if refused)."""
        return files.sniff(self.head) if self.whole else files.sniff_ends(self.head, self.tail)

    @property
    def sample_bytes(self) -> int:
        """How much of it is held in memory (what checking it costs)."""
        return len(self.head) + len(self.tail)


@dataclass
class FileSink:
    """One file part on its way to the store."""

    name: str
    entry: str
    writer: BlobWriter
    seal: SealStream
    size: int = 0
    _hash: hashlib._Hash = field(default_factory=hashlib.sha256)
    _out: bytearray = field(default_factory=bytearray)
    _whole: bytearray | None = field(default_factory=bytearray)  # dropped once the ends suffice
    _head: bytearray = field(default_factory=bytearray)
    _tail: bytearray = field(default_factory=bytearray)
    _decided: bool = False
    closed: bool = False

    def __post_init__(self) -> None:
        self._out += self.seal.header()

    async def write(self, piece: bytes) -> None:
        self.size += len(piece)
        self._hash.update(piece)
        if len(self._head) < files.PROBE_HEAD:
            self._head += piece[: files.PROBE_HEAD - len(self._head)]
        self._tail += piece
        if len(self._tail) > files.PROBE_TAIL:
            del self._tail[: -files.PROBE_TAIL]
        if self._whole is not None:
            self._whole += piece
            if not self._decided and len(self._head) >= files.PROBE_HEAD:
                self._decided = True
                if files.decided_by_ends(bytes(self._head)):
                    self._whole = None  # a PDF or an image: its two ends are all `sniff` reads
        self._out += self.seal.update(piece)
        if len(self._out) >= WRITE_PIECE:
            await self.writer.write(bytes(self._out))
            self._out.clear()

    async def close(self) -> StagedFile:
        self._out += self.seal.finish()
        await self.writer.write(bytes(self._out))
        self._out.clear()
        await self.writer.close()
        self.closed = True
        digest = self._hash.hexdigest()
        if self._whole is not None:
            return StagedFile(self.name, self.entry, self.size, digest, bytes(self._whole))
        return StagedFile(self.name, self.entry, self.size, digest, bytes(self._head), bytes(self._tail), whole=False)


class Stager:
    """The files of one form post: `open` a sink per file part; `discard` what intake did not keep."""

    def __init__(self, redis: Redis, blobs: BlobStore, sealer: StreamSealer, capacity: Capacity | None = None) -> None:
        self.redis = redis
        self.blobs = blobs
        self.sealer = sealer
        self.capacity = capacity
        self.sinks: list[FileSink] = []
        self.staged: list[StagedFile] = []

    async def open(self) -> FileSink:
        name = new_name()
        entry = f"{name} {file_key('staged-' + name[3:], 0)}"  # no delivery yet: swept unless moved
        await self.redis.zadd(BLOBS_PENDING, {entry: time.time()})
        try:
            writer = await self.blobs.writer(name)
        except BlobUnavailable as exc:
            self.mark(exc)
            await self.redis.zrem(BLOBS_PENDING, entry)
            raise
        sink = FileSink(name, entry, writer, self.sealer.seal_stream())
        self.sinks.append(sink)
        return sink

    async def close(self, sink: FileSink) -> StagedFile:
        staged = await sink.close()
        self.staged.append(staged)
        return staged

    def mark(self, exc: BlobUnavailable) -> None:
        if self.capacity is not None:
            self.capacity.mark("blobs", exc.reason)

    async def discard(self) -> None:
        """Delete every staged blob no delivery took (best effort: else the orphan sweep does)."""
        entries = []
        try:
            for sink in self.sinks:
                if not sink.closed:  # cut short: commit what there is, to delete it
                    try:
                        await sink.writer.close()
                    except BlobUnavailable:
                        pass
            for staged in self.staged:
                entries.append(staged.entry)
                if not staged.moved:
                    await self.blobs.delete(staged.name)
            for sink in self.sinks:
                if not sink.closed:
                    entries.append(sink.entry)
                    await self.blobs.delete(sink.name)
            if entries:
                await self.redis.zrem(BLOBS_PENDING, *entries)
        except Exception as exc:  # noted pending: the orphan sweep deletes them
            log.warning("blobs.discard_deferred", error_type=type(exc).__name__, blobs=len(self.sinks))
