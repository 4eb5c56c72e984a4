"""`Catalog`: the ATS's jobs, screening questions, stages and sources in Kombo's shapes, through
the shared cache (cache.py), with every refusal a `Problem` carrying a Kombo code
(docs/catalog.md, "Errors").

    unknown connection                         404 PLATFORM.INTEGRATION_NOT_FOUND
    no such job in the ATS                     404 ATS.JOB_NOT_FOUND
    a read the connector does not have         404 INTEGRATION.ACTION_NOT_AVAILABLE
    paused connection / credentials refused    502 INTEGRATION.AUTHENTICATION_INVALID
    ATS unreachable or `budget_s` elapsed      503 REMOTE.SERVICE_UNAVAILABLE + Retry-After
      (and nothing cached)                         (`CatalogUnavailable`)
    the ATS refused the read otherwise         502 REMOTE.UNKNOWN_HTTP_ERROR
    a bad page size or cursor                  422 PLATFORM.INPUT_INVALID

When the ATS cannot answer (unreachable, over budget, credentials refused, connection paused) and
a stale entry is still kept, that entry is the answer, marked `stale` with its age: a career
site shows yesterday's questions rather than an error. One instance per process
(`runtime.catalog`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.catalog.cache import CatalogCache, Entry, Policy
from app.catalog.ids import INPUT_INVALID, unwrap_cursor, wrap_cursor
from app.config import Config, Connection, unavailable, unloadable
from app.core.catalog import (
    READ_JOB_STAGES,
    READ_JOBS,
    READ_SCREENING_QUESTIONS,
    READ_SOURCES,
    READ_STAGES,
    Job,
    JobPage,
    JobQuery,
    ScreeningQuestion,
    Source,
    Stage,
)
from app.core.problems import FieldError, Problem
from app.redis import keys
from connectors.base import AuthError, Connector, ConnectorError, PermanentError, TransientError

log = structlog.get_logger("applyrelay.catalog")

T = TypeVar("T")

INTEGRATION_NOT_FOUND = "PLATFORM.INTEGRATION_NOT_FOUND"
JOB_NOT_FOUND = "ATS.JOB_NOT_FOUND"
ACTION_NOT_AVAILABLE = "INTEGRATION.ACTION_NOT_AVAILABLE"
AUTHENTICATION_INVALID = "INTEGRATION.AUTHENTICATION_INVALID"
SERVICE_UNAVAILABLE = "REMOTE.SERVICE_UNAVAILABLE"
REMOTE_ERROR = "REMOTE.UNKNOWN_HTTP_ERROR"
MAX_PAGE_SIZE = 250
DEFAULT_RETRY_AFTER_S = 5
MAX_RETRY_AFTER_S = 3600
DOWN_S = 10.0  # how long a failed read spares budgeted callers the wait (unless Retry-After says)
MAX_DOWN_S = 30.0
DOWN_BUDGET_S = 0.25  # ... and how long they wait then: enough for an ATS that is back

_WHAT = {
    READ_JOBS: "jobs",
    READ_SCREENING_QUESTIONS: "screening questions",
    READ_STAGES: "connection-wide application stages",
    READ_JOB_STAGES: "application stages per job",
    READ_SOURCES: "candidate sources",
}


@dataclass(frozen=True)
class Cached(Generic[T]):
    """A read and when the ATS was asked for it (epoch s); `stale` when it is past the
    connection's `catalog_ttl_s` and served because the ATS could not answer."""

    value: T
    fetched_at: float
    stale: bool = False

    @property
    def age(self) -> float:
        """Seconds since the ATS was asked (the `Age` header is its integer part)."""
        return max(0.0, time.time() - self.fetched_at)


class CatalogUnavailable(Problem):
    """The ATS could not be reached (or not within the caller's budget) and nothing is cached:
    503 with `Retry-After`. Intake accepts the application anyway and checks in the worker."""

    @classmethod
    def because(cls, detail: str, retry_after_s: float | None = None) -> CatalogUnavailable:
        seconds = DEFAULT_RETRY_AFTER_S if retry_after_s is None else math.ceil(retry_after_s)
        seconds = min(max(seconds, 1), MAX_RETRY_AFTER_S)
        return cls(503, "ATS unavailable", detail, code=SERVICE_UNAVAILABLE, headers={"Retry-After": str(seconds)})

    @property
    def retry_after_s(self) -> int:
        return int(self.headers.get("Retry-After", DEFAULT_RETRY_AFTER_S))


class Catalog:
    """The reads of every connection, cached in Redis (module docstring; docs/catalog.md)."""

    def __init__(
        self,
        redis: Redis,
        config: Config,
        connectors: Callable[[str], Connector],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.config = config
        self.connectors = connectors
        self.cache = CatalogCache(redis, clock=clock)

    # -- reads -------------------------------------------------------------------------------------

    async def job(self, connection_id: str, job_id: str, *, budget_s: float | None = None) -> Cached[Job]:
        """One job with its screening questions and stages (`job_id`: the ATS's id, see
        `parse_job_id` for `remote:<id>`)."""
        connector = self._connector(connection_id, READ_JOBS)
        return await self._read(
            connection_id, "job", job_id, Job, lambda: connector.get_job(job_id), budget_s=budget_s, job_id=job_id
        )

    async def job_questions(
        self, connection_id: str, job_id: str, *, budget_s: float | None = None
    ) -> Cached[list[ScreeningQuestion]]:
        """The job's screening questions, ordered by `index` (what intake checks answers against)."""
        connector = self._connector(connection_id, READ_SCREENING_QUESTIONS)
        return await self._read(
            connection_id,
            "questions",
            job_id,
            list[ScreeningQuestion],
            _missing_on_404(lambda: connector.job_questions(job_id)),
            budget_s=budget_s,
            job_id=job_id,
        )

    async def list_jobs(self, connection_id: str, query: JobQuery, *, budget_s: float | None = None) -> Cached[JobPage]:
        """One page of jobs. `query.cursor` and the page's `next_cursor` are the catalog's cursors
        (the connector's inside, bound to the filters: ids.py), not the connector's own."""
        connector = self._connector(connection_id, READ_JOBS)
        if not 1 <= query.page_size <= MAX_PAGE_SIZE:
            message = f"must be between 1 and {MAX_PAGE_SIZE}"
            raise Problem(
                422, "Invalid request", f"page_size: {message}", [FieldError("page_size", message)], code=INPUT_INVALID
            )
        if query.updated_after is not None and query.updated_after.tzinfo is None:
            query = msgspec.structs.replace(query, updated_after=query.updated_after.replace(tzinfo=dt.UTC))
        inner = msgspec.structs.replace(query, cursor=unwrap_cursor(query.cursor, query))
        digest = hashlib.sha256(msgspec.msgpack.encode(inner)).hexdigest()[:32]
        cached = await self._read(
            connection_id, "jobs", digest, JobPage, lambda: connector.list_jobs(inner), budget_s=budget_s
        )
        page = JobPage(jobs=cached.value.jobs, next_cursor=wrap_cursor(cached.value.next_cursor, query))
        return Cached(page, cached.fetched_at, cached.stale)

    async def stages(
        self, connection_id: str, job_id: str | None = None, *, budget_s: float | None = None
    ) -> Cached[list[Stage]]:
        """The application stages: connection-wide (`job_id` None) or of one job, as the ATS
        scopes them (`Capabilities.reads`: READ_STAGES or READ_JOB_STAGES)."""
        connector = self._connector(connection_id, READ_STAGES if job_id is None else READ_JOB_STAGES)
        return await self._read(
            connection_id,
            "stages",
            job_id or "",
            list[Stage],
            _missing_on_404(lambda: connector.list_stages(job_id)),
            budget_s=budget_s,
            job_id=job_id,
        )

    async def sources(self, connection_id: str, *, budget_s: float | None = None) -> Cached[list[Source]]:
        """The candidate sources (Factorial) or publication portals (OTYS) an application may name."""
        connector = self._connector(connection_id, READ_SOURCES)
        return await self._read(connection_id, "sources", "", list[Source], connector.list_sources, budget_s=budget_s)

    # -- the one way through the cache -------------------------------------------------------------

    def connection(self, connection_id: str) -> Connection:
        connection = self.config.connections.get(connection_id)
        if connection is None and unloadable(self.config.connections, connection_id) is not None:
            raise unavailable(connection_id)  # stored, but this process cannot build it
        if connection is None:
            raise Problem(
                404, "Unknown connection", f"connection {connection_id!r} is not configured", code=INTEGRATION_NOT_FOUND
            )
        return connection

    def _connector(self, connection_id: str, read: str) -> Connector:
        self.connection(connection_id)
        connector = self.connectors(connection_id)
        if read not in connector.capabilities.reads:
            detail = f"{connector.name} does not serve {_WHAT[read]}"
            if read == READ_STAGES and READ_JOB_STAGES in connector.capabilities.reads:
                detail += f"; its stages are per job: /v1/connections/{connection_id}/jobs/{{job_id}}/stages"
            elif read == READ_JOB_STAGES and READ_STAGES in connector.capabilities.reads:
                detail += f"; its stages are connection-wide: /v1/connections/{connection_id}/stages"
            raise Problem(404, "Not available for this ATS", detail, code=ACTION_NOT_AVAILABLE)
        return connector

    def policy(self, connection: Connection) -> Policy:
        # The lock outlives one read of a few ATS calls; past it another process asks the ATS itself.
        lock_s = min(max(2 * connection.timeout_s + 1, 5.0), 60.0)
        return Policy(ttl_s=connection.catalog_ttl_s, keep_s=connection.catalog_stale_s, lock_s=lock_s)

    async def _read(
        self,
        connection_id: str,
        kind: str,
        key: str,
        type_: Any,
        fetch: Callable[[], Awaitable[Any]],
        *,
        budget_s: float | None,
        job_id: str | None = None,
    ) -> Cached[Any]:
        policy = self.policy(self.connection(connection_id))
        entry_key = keys.catalog_key(connection_id, kind, key)
        known = await self.cache.read(entry_key, type_)
        if known is not None and self.cache.fresh(known, policy):
            return self._answer(connection_id, known, job_id, stale=False)
        paused, down = await self.redis.mget(keys.paused_key(connection_id), keys.catalog_down_key(connection_id))
        if down is not None and budget_s is not None:
            budget_s = min(budget_s, DOWN_BUDGET_S)  # failing just now: a recovered ATS answers in this
        if paused is not None:
            if known is not None:
                return self._answer(connection_id, known, job_id, stale=True)
            raise Problem(
                502,
                "Connection paused",
                f"connection {connection_id!r} is paused (the ATS refused its credentials); "
                "resume it once they are fixed",
                code=AUTHENTICATION_INVALID,
            )
        flight = self.cache.refresh(
            entry_key, keys.catalog_lock_key(connection_id, kind, key), type_, fetch, policy, known
        )
        try:
            if budget_s is None:
                entry = await asyncio.shield(flight)
            else:
                entry = await asyncio.wait_for(asyncio.shield(flight), max(budget_s, 0.0))
        except TimeoutError:
            await self._mark_down(connection_id, down)
            if known is not None:
                return self._answer(connection_id, known, job_id, stale=True)
            raise CatalogUnavailable.because(
                f"the ATS of {connection_id!r} did not answer within {budget_s:g} s", retry_after_s=None
            ) from None
        except ConnectorError as exc:
            log.info(
                "catalog.read_failed",
                connection=connection_id,
                kind=kind,
                error_type=type(exc).__name__,
                http_status=exc.status,
                stale_kept=known is not None,
            )
            if isinstance(exc, TransientError):
                await self._mark_down(connection_id, down, exc.retry_after)
            if known is not None and isinstance(exc, TransientError | AuthError):
                return self._answer(connection_id, known, job_id, stale=True)
            raise _problem(connection_id, exc) from None
        except RedisError:
            raise  # the web answers 503 "the queue store is not reachable"
        except Exception as exc:  # a connector's bug: a 502 naming it, never a 500
            log.error("catalog.connector_failed", connection=connection_id, kind=kind, error_type=type(exc).__name__)
            raise Problem(
                502,
                "ATS answer not understood",
                f"connection {connection_id!r}: the connector failed reading {kind} ({type(exc).__name__})",
                code=REMOTE_ERROR,
            ) from None
        if down is not None:
            await self.redis.delete(keys.catalog_down_key(connection_id))
        return self._answer(connection_id, entry, job_id, stale=False)

    async def _mark_down(self, connection_id: str, down: bytes | None, retry_after: float | None = None) -> None:
        """Remember for a few seconds that the ATS failed, so that the next callers with a budget
        (every intake while an ATS is down) answer at once instead of each waiting its budget
        (docs/catalog.md, "Budget"). The read itself still runs, and its success ends it."""
        if down is None:
            seconds = min(max(retry_after or DOWN_S, 1.0), MAX_DOWN_S)
            await self.redis.set(keys.catalog_down_key(connection_id), b"1", px=int(seconds * 1000))

    @staticmethod
    def _answer(connection_id: str, entry: Entry[Any], job_id: str | None, *, stale: bool) -> Cached[Any]:
        if entry.value is None:
            raise Problem(404, "Unknown job", f"the ATS of {connection_id!r} has no job {job_id!r}", code=JOB_NOT_FOUND)
        return Cached(entry.value, entry.fetched_at, stale)


def _missing_on_404(read: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T | None]]:
    """A read whose 404 means "no such job": None, cached like an answer."""

    async def run() -> T | None:
        try:
            return await read()
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    return run


def _problem(connection_id: str, exc: ConnectorError) -> Problem:
    if isinstance(exc, TransientError):
        return CatalogUnavailable.because(
            f"the ATS of {connection_id!r} is unavailable: {exc.detail}", retry_after_s=exc.retry_after
        )
    if isinstance(exc, AuthError):
        return Problem(
            502,
            "ATS refused the credentials",
            f"connection {connection_id!r}: {exc.detail}",
            code=AUTHENTICATION_INVALID,
        )
    return Problem(502, "ATS refused the read", f"connection {connection_id!r}: {exc.detail}", code=REMOTE_ERROR)
