"""Where attachment bytes live: a blob store behind one small interface (docs/operations.md,
"Attachments: local files or S3"), so Redis holds a reference and the sha256, never a CV.

One kept library over both kinds, Apache OpenDAL (`opendal`, Rust-backed, async):

- `file://<dir>` (the default, `file://var/blobs`): OpenDAL's fs service writes each blob to a
  temporary name under `<dir>/.tmp`, fsyncs it and renames it into place, so a blob is either
  whole or absent; the Redis transaction that makes the delivery visible runs after that.
- `s3://<bucket>/<prefix>`: any S3-compatible store (AWS S3, MinIO, Ceph, R2, GCS's S3 API), with
  endpoint, region and credentials from the environment (`Settings.blobs`).

Blobs are stored as they are given: the caller (app/delivery/store.py) seals them with the data
key first. Names say nothing about the candidate: a delivery's files are `file_blob_name(delivery
id, index)` (no Redis key needed to find them), older ones random (`new_name`, named by a file key).
Every failure but "not found" is a `BlobUnavailable` naming why (unreachable, full, refused), which
intake answers with 503 + Retry-After and /ready reports.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import secrets
import time
from collections.abc import AsyncIterable, Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import opendal
from opendal import exceptions as od
from opendal.file import AsyncFile

T = TypeVar("T")

TMP_DIR = ".tmp"  # the fs service's staging directory, inside the root (the sweeper empties it)
PROBE = "ready-probe"
# OpenDAL's exceptions do not share a base class: every one of them, but NotFound
_FAILURES: tuple[type[BaseException], ...] = (
    od.Error,
    od.Unexpected,
    od.Unsupported,
    od.ConfigInvalid,
    od.PermissionDenied,
    od.IsADirectory,
    od.NotADirectory,
    od.AlreadyExists,
    od.IsSameFile,
    od.ConditionNotMatch,
    od.Conflict,
    od.RangeNotSatisfied,
    od.RateLimited,
    OSError,
    TimeoutError,
)  # /ready stats this name: an answer (found or not) means reachable


class BlobUnavailable(Exception):
    """The store cannot take or give bytes now: `reason` is unreachable | full | refused."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"blob store {reason}: {detail}")
        self.reason = reason


class BlobConfigError(ValueError):
    """APPLYRELAY_BLOBS or the S3 settings cannot be used (the message says which)."""


@dataclass(frozen=True)
class BlobSettings:
    """`APPLYRELAY_BLOBS` and, for s3://, the endpoint, region and credentials (app/settings.py)."""

    url: str = "file://var/blobs"
    endpoint: str | None = None  # APPLYRELAY_S3_ENDPOINT or AWS_ENDPOINT_URL (MinIO, R2, ...)
    region: str | None = None  # AWS_REGION / AWS_DEFAULT_REGION
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    timeout_s: float = 30.0  # one operation, at most (a store that hangs is unreachable)

    @property
    def kind(self) -> str:
        return urlsplit(self.url).scheme

    def describe(self) -> str:
        """The URL without anything secret (it never holds credentials anyway)."""
        return self.url


def new_name() -> str:
    """A blob's name: 128 random bits, hex, fanned out by its first two characters."""
    token = secrets.token_hex(16)
    return f"{token[:2]}/{token}"


def file_blob_name(delivery_id: str, index: int) -> str:
    """The blob of a delivery's file `index` (issue 20, P5): derived, so Redis keeps no per-file
    key; erasure, retention and the worker compute it from the delivery id. A one-way hash of the
    delivery id (128 random bits), shaped like `new_name`: it says nothing about the candidate,
    and the bytes under it are sealed (docs/data-protection.md)."""
    digest = hashlib.sha256(f"applyrelay file blob\0{delivery_id}\0{index}".encode()).hexdigest()
    return f"{digest[:2]}/{digest[:32]}"


def _reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "full"
    if "No space left" in text or "EntityTooLarge" in text or "QuotaExceeded" in text or "quota" in text.lower():
        return "full"
    if isinstance(exc, od.PermissionDenied | od.ConfigInvalid):
        return "refused"
    if isinstance(exc, TimeoutError) or "send http request" in text or "Connect" in text:
        return "unreachable"
    return "refused"


def write_whole_file(root: Path, name: str, data: bytes) -> None:
    """fs: what OpenDAL's fs service does for a write with `atomic_write_dir` (a temporary file
    under `.tmp`, written, fsynced, renamed into place: whole or absent), as plain system calls
    in the one thread that runs them. OpenDAL's own path costs 0.8-1.0 ms of CPU per 100 KB
    blob here (four stats, two mkdirs, each a hop through its runtime's blocking pool) against
    0.3 ms for these calls, on every intake with a file (docs/operations.md, "Attachments: local
    files or S3"). Reads, deletes, streamed writes and S3 stay OpenDAL's. Owner-only mode: the
    bytes are sealed anyway, nobody else on the host needs them."""
    target = root / name
    temp = root / TMP_DIR / secrets.token_hex(16)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(temp, target)
        except FileNotFoundError:  # the first blob of its fan-out directory
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)  # else the sweep finds it (stale_temp_files)
        raise


class BlobStore:
    """put / get / delete / exists (and a streamed put), on one OpenDAL operator."""

    def __init__(self, settings: BlobSettings) -> None:
        self.settings = settings
        self.kind = settings.kind
        self.root: Path | None = None
        self.startup_error: str | None = None
        if self.kind == "file":
            parts = urlsplit(settings.url)
            raw = (parts.netloc + parts.path) if parts.netloc not in ("", "localhost") else parts.path
            self.root = Path(raw).resolve()
            try:
                (self.root / TMP_DIR).mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # read-only, no such volume: /ready and intake say so (refused)
                self.startup_error = f"{self.root}: {exc.strerror or type(exc).__name__}"
            try:
                self.op = opendal.AsyncOperator("fs", root=str(self.root), atomic_write_dir=str(self.root / TMP_DIR))
            except _FAILURES as exc:
                self.startup_error = self.startup_error or f"{self.root}: {type(exc).__name__}"
                self.op = opendal.AsyncOperator("memory")  # never used: every call answers `startup_error`
        elif self.kind == "s3":
            parts = urlsplit(settings.url)
            if not parts.netloc:
                raise BlobConfigError(
                    f"APPLYRELAY_BLOBS={settings.url!r}: s3://<bucket>/<prefix>, the bucket is missing"
                )
            options = {
                "bucket": parts.netloc,
                "root": "/" + parts.path.strip("/"),
                "region": settings.region or "us-east-1",
                "disable_ec2_metadata": "true" if settings.access_key_id else "false",
            }
            for key, value in (
                ("endpoint", settings.endpoint),
                ("access_key_id", settings.access_key_id),
                ("secret_access_key", settings.secret_access_key),
                ("session_token", settings.session_token),
            ):
                if value:
                    options[key] = value
            self.op = opendal.AsyncOperator("s3", **options)
        else:
            raise BlobConfigError(
                f"APPLYRELAY_BLOBS={settings.url!r}: use file://<directory> (one host) or s3://<bucket>/<prefix>"
            )

    async def _call(self, what: Awaitable[T]) -> T:
        if self.startup_error is not None:
            if asyncio.iscoroutine(what):
                what.close()
            raise BlobUnavailable("refused", self.startup_error)
        try:
            async with asyncio.timeout(self.settings.timeout_s):
                return await what
        except od.NotFound:
            raise
        except _FAILURES as exc:
            raise BlobUnavailable(_reason(exc), type(exc).__name__) from None

    async def put(self, name: str, data: bytes) -> None:
        """Write the whole blob (fs: temp name, fsync, rename, in one thread hop; S3: one PUT)."""
        if self.root is not None and self.startup_error is None:
            await self._call(asyncio.to_thread(write_whole_file, self.root, name, data))
            return
        await self._call(self.op.write(name, data))

    async def put_stream(self, name: str, chunks: AsyncIterable[bytes]) -> int:
        """Write a blob as it arrives (fs: the same temp-fsync-rename; S3: a multipart upload);
        nothing is visible under `name` unless every chunk was written. Returns its size."""
        size = 0
        writer = await self._call(self.op.open(name, "wb"))
        # A failure before close() leaves the staged write uncommitted (fs: a temp file, swept;
        # S3: an incomplete multipart upload, for the bucket's lifecycle rule); the name is in
        # the pending set (app/delivery/store.py), so even a committed partial is swept.
        async for chunk in chunks:  # the source's own errors (a client gone) pass as they are
            size += len(chunk)
            await self._call(writer.write(chunk))
        await self._call(writer.close())
        return size

    async def writer(self, name: str) -> BlobWriter:
        """A blob written piece by piece as the caller gets them (the form route's parser): the
        same guarantees as `put_stream`, nothing under `name` until `close()`."""
        return BlobWriter(self, await self._call(self.op.open(name, "wb")))

    async def move(self, source: str, target: str) -> None:
        """Give a whole blob another name (fs: one rename; S3, which has none: a server-side copy,
        then the delete): the form route's file, written before its delivery had an id."""
        if self.op.capability().rename:
            await self._call(self.op.rename(source, target))
            return
        await self._call(self.op.copy(source, target))
        await self.delete(source)

    async def get(self, name: str) -> bytes | None:
        try:
            return bytes(await self._call(self.op.read(name)))
        except od.NotFound:
            return None

    async def delete(self, name: str) -> None:
        """Idempotent: deleting a blob that is not there is no error."""
        try:
            await self._call(self.op.delete(name))
        except od.NotFound:
            return

    async def exists(self, name: str) -> bool:
        try:
            return bool(await self._call(self.op.exists(name)))
        except od.NotFound:
            return False

    async def check(self) -> None:
        """Raise `BlobUnavailable` unless the store answers (and, for files, can be written)."""
        if self.startup_error is not None:
            raise BlobUnavailable("refused", self.startup_error)
        if self.root is not None and not os.access(self.root / TMP_DIR, os.W_OK):
            raise BlobUnavailable("refused", f"{self.root / TMP_DIR} is not writable")
        await self.exists(PROBE)

    def stale_temp_files(self, older_than_s: float) -> list[Path]:
        """fs only: temporary files a crash left mid-write (never renamed into place)."""
        if self.root is None:
            return []
        cutoff = time.time() - older_than_s
        found = []
        for path in (self.root / TMP_DIR).iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    found.append(path)
            except FileNotFoundError:
                continue
        return found


class BlobWriter:
    """An open blob (`BlobStore.writer`): `write` each piece, then `close` to commit it."""

    def __init__(self, store: BlobStore, file: AsyncFile) -> None:
        self.store = store
        self.file = file

    async def write(self, piece: bytes) -> None:
        await self.store._call(self.file.write(piece))

    async def close(self) -> None:
        await self.store._call(self.file.close())


def open_store(settings: BlobSettings) -> BlobStore:
    return BlobStore(settings)
