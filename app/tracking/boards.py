"""Status back to the boards (docs/boards.md): HelloWork status pushes and Indeed Disposition Sync.

* **When.** The status poll (poll.py) calls `on_status_change` the first time it sees a delivered
  application's status in the ATS (that is "on delivery") and on every change after. A scan of
  dead letters (`scan_dead_letters`) reports Indeed applications that were accepted (202) and then
  dropped by the ATS as a duplicate (409) or for a closed job (410).
* **HelloWork.** One ``POST`` to the application's ``statusApiUrl`` (kept at intake behind the
  SSRF guard, ``ar:board:ctx:<delivery id>``) with ``{status, eventDate, created, jobId,
  source}``: `status` is the ATS's own stage label (HelloWork defines no enumeration).
* **Indeed.** ``partnerDisposition.send`` with OAuth client credentials (the token cached in
  Redis until shortly before it expires, refreshed once when Indeed answers 401 mid-batch),
  ``NEW`` first, then the mapped status (`indeed_status_map`, then hired → HIRED, declined →
  NOT_SELECTED, else UNABLE_TO_MAP), sent in batches of at most 25 sorted by change time.
  Identified by the Indeed apply id only: no other personal data leaves.
* Each report is a record ``ar:br:<id>`` (ids, labels and dates only) on a schedule
  ``ar:br:due``, retried on the connection's retry policy, with the delivery's reports listed in
  order under ``ar:br:d:<delivery id>`` (the board's view in the dashboard). Every attempt counts
  toward its destination's health (health.py).
"""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from typing import TYPE_CHECKING, Any, Literal

import httpx
import msgspec
import structlog
from arq import cron
from redis.asyncio import Redis

from app.config import Config, Connection
from app.delivery.record import Delivery
from app.delivery.retry_policy import next_retry
from app.delivery.store import Sealer
from app.net import ssrf
from app.redis.client import awaited
from app.redis.keys import (
    BOARD_FAILED_CURSOR,
    BOARD_REPORTS_DUE,
    board_context_key,
    board_report_key,
    board_report_lease_key,
    delivery_reports_key,
    dropped_marker_key,
    indeed_token_key,
    status_index,
)
from app.tracking import health
from connectors.base import TransientError, parse_retry_after

if TYPE_CHECKING:
    from arq.cron import CronJob

    from app.runtime import Runtime
    from app.settings import Settings

log = structlog.get_logger("applyrelay.boards")

KEEP_S = 90 * 24 * 3600
PERMANENT = frozenset({400, 404, 410, 413, 422})
BATCH = 25
MUTATION = (
    "mutation SendDispositions($input: SendPartnerDispositionInput!) { partnerDisposition { send(input: $input) "
    "{ numberGoodDispositions failedDispositions { identifiedBy { indeedApplyID } rationale } } } }"
)
RECEIVED = {"stage_id": None, "stage_name": "Received", "outcome": "PENDING"}  # an ATS that cannot be asked
DEFAULT_INDEED_MAP = {"HIRED": "HIRED", "DECLINED": "NOT_SELECTED", "REJECTED": "NOT_SELECTED"}


class Report(msgspec.Struct, omit_defaults=True):
    id: str
    kind: Literal["hellowork", "indeed"]
    delivery_id: str
    connection_id: str
    body: dict[str, Any]  # HelloWork's status body, or one Indeed disposition: ids, labels, dates
    change_at: float
    created_at: float
    url: str | None = None
    status: Literal["pending", "sent", "failed"] = "pending"
    attempts: int = 0
    next_attempt_at: float | None = None
    last_error: str | None = None
    http_status: int | None = None
    sent_at: float | None = None
    rationale: str | None = None  # Indeed's failedDispositions


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Report)


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def hellowork_enabled(connection: Connection) -> bool:
    """A connection that takes HelloWork applications: its key named in the file, or sealed."""
    return bool(connection.inbound.hellowork_secret_env or connection.inbound_secrets.get("hellowork"))


def indeed_enabled(connection: Connection) -> bool:
    return bool(connection.inbound.indeed_client_id_env and connection.inbound.indeed_client_secret_env)


def label(status: dict[str, Any]) -> str:
    """The ATS's own label for the application's state: its stage, else its outcome."""
    for name in ("stage_name", "outcome", "stage_id"):
        value = status.get(name)
        if value not in (None, ""):
            return str(value)[:200]
    return "unknown"


def indeed_status(connection: Connection, status: dict[str, Any]) -> str:
    """`indeed_status_map` by stage id, stage name, then outcome (case-insensitive); then the
    defaults; else UNABLE_TO_MAP."""
    mapping = {k.casefold(): v for k, v in connection.inbound.indeed_status_map.items()}
    for name in ("stage_id", "stage_name", "outcome"):
        value = status.get(name)
        if value not in (None, "") and str(value).casefold() in mapping:
            return mapping[str(value).casefold()]
    return DEFAULT_INDEED_MAP.get(str(status.get("outcome") or "").upper(), "UNABLE_TO_MAP")


def disposition(connection: Connection, apply_id: str, kind: str, raw: str, at: float) -> dict[str, Any]:
    return {
        "identifiedBy": {"indeedApplyID": apply_id},
        "dispositionStatus": kind,
        "rawDispositionStatus": raw,
        "atsName": connection.inbound.indeed_ats_name,
        "statusChangeDateTime": iso(at),
    }


# -- enqueueing -----------------------------------------------------------------------------------


async def enqueue(
    redis: Redis,
    kind: Literal["hellowork", "indeed"],
    delivery: Delivery,
    body: dict[str, Any],
    change_at: float,
    now: float,
    url: str | None = None,
) -> Report:
    report = Report(
        id="brp_" + uuid.uuid4().hex,
        kind=kind,
        delivery_id=delivery.id,
        connection_id=delivery.connection_id,
        body=body,
        change_at=change_at,
        created_at=now,
        url=url,
        next_attempt_at=now,
    )
    pipe = redis.pipeline(transaction=True)
    pipe.set(board_report_key(report.id), _encoder.encode(report), ex=KEEP_S)
    pipe.zadd(BOARD_REPORTS_DUE, {report.id: now})
    pipe.rpush(delivery_reports_key(delivery.id), report.id)
    pipe.expire(delivery_reports_key(delivery.id), KEEP_S)
    await pipe.execute()
    return report


async def on_status_change(
    redis: Redis,
    connection: Connection,
    delivery: Delivery,
    status: dict[str, Any],
    previous: dict[str, Any] | None,
    now: float,
) -> int:
    """Queue what the delivery's board wants to hear about this status; how many reports."""
    count = 0
    if delivery.board == "hellowork" and hellowork_enabled(connection):
        raw = await redis.get(board_context_key(delivery.id))
        context = msgspec.json.decode(raw) if raw else {}
        url = context.get("status_url")
        if not url and delivery.board_application_id:
            url = connection.inbound.hellowork_status_url.replace("{applicationId}", delivery.board_application_id)
        if url:
            body = {
                "status": label(status),
                "eventDate": iso(now),
                "created": iso(delivery.delivered_at or delivery.created_at),
                "jobId": str(delivery.job_id or ""),
                "source": context.get("source") or connection.inbound.hellowork_source_name,
            }
            await enqueue(redis, "hellowork", delivery, body, now, now, url)
            count += 1
    if delivery.board == "indeed" and indeed_enabled(connection) and delivery.board_application_id:
        apply_id = delivery.board_application_id
        kinds = []
        if previous is None:
            kinds.append("NEW")  # once in the ATS
        mapped = indeed_status(connection, status)
        if previous is not None or mapped not in ("NEW", "UNABLE_TO_MAP"):
            kinds.append(mapped)
        for n, kind in enumerate(kinds):
            at = now + n * 0.001  # NEW strictly first in Indeed's order
            await enqueue(
                redis, "indeed", delivery, disposition(connection, apply_id, kind, label(status), at), at, now
            )
            count += 1
    return count


def dropped_reason(delivery: Delivery) -> str | None:
    """Indeed's DROPPED_* for a delivery the ATS refused after the relay's 202."""
    error = delivery.last_error
    if error is None or error.kind == "erased":
        return None
    message = error.message.lower()
    if error.http_status == 409 or "duplicate" in message:
        return "DROPPED_DUPLICATE"
    if error.http_status == 410 or "expired" in message or "closed" in message:
        return "DROPPED_JOB_EXPIRED"
    return None


async def scan_dead_letters(runtime: Runtime, now: float) -> int:
    """Dead-lettered Indeed applications since the last scan: DROPPED_DUPLICATE / _JOB_EXPIRED."""
    redis, config = runtime.redis, runtime.config
    raw = await redis.get(BOARD_FAILED_CURSOR)
    cursor = float(raw) if raw else now - runtime.settings.status_sync_window_s
    queued = 0
    while True:
        rows = await redis.zrangebyscore(
            status_index("failed"), f"({cursor}", "+inf", start=0, num=500, withscores=True
        )
        if not rows:
            break
        for delivery in await runtime.store.get_many([r[0].decode() for r in rows]):
            connection = config.connections.get(delivery.connection_id)
            reason = dropped_reason(delivery)
            if (
                connection is None
                or reason is None
                or delivery.board != "indeed"
                or delivery.kind != "application"
                or not delivery.board_application_id
                or not indeed_enabled(connection)
                or not await redis.set(dropped_marker_key(delivery.id), reason, nx=True, ex=KEEP_S)
            ):
                continue
            at = delivery.updated_at
            body = disposition(connection, delivery.board_application_id, reason, "Dead letter", at)
            body["rawDispositionStatus"] = f"Not delivered ({error_label(delivery)})"
            await enqueue(redis, "indeed", delivery, body, at, now)
            queued += 1
        cursor = rows[-1][1]
        await redis.set(BOARD_FAILED_CURSOR, repr(cursor))
        if len(rows) < 500:
            break
    return queued


def error_label(delivery: Delivery) -> str:
    error = delivery.last_error
    return f"HTTP {error.http_status}" if error and error.http_status else "refused"


async def get(redis: Redis, report_id: str) -> Report | None:
    raw = await redis.get(board_report_key(report_id))
    return _decoder.decode(raw) if raw else None


async def reports_of(redis: Redis, delivery_id: str) -> list[Report]:
    ids = [i.decode() for i in await awaited(redis.lrange(delivery_reports_key(delivery_id), 0, -1))]
    found = [await get(redis, i) for i in ids]
    return [r for r in found if r is not None]


async def _save(redis: Redis, report: Report) -> None:
    pipe = redis.pipeline(transaction=True)
    pipe.set(board_report_key(report.id), _encoder.encode(report), ex=KEEP_S)
    if report.status == "pending" and report.next_attempt_at is not None:
        pipe.zadd(BOARD_REPORTS_DUE, {report.id: report.next_attempt_at})
    else:
        pipe.zrem(BOARD_REPORTS_DUE, report.id)
    await pipe.execute()


async def requeue(redis: Redis, report_id: str, now: float) -> bool:
    """Recover: a failed report is sent again, with a fresh retry schedule."""
    report = await get(redis, report_id)
    if report is None or report.status != "failed":
        return False
    report.status, report.attempts, report.next_attempt_at = "pending", 0, now
    report.last_error = report.rationale = None
    await _save(redis, report)
    return True


# -- sending --------------------------------------------------------------------------------------


class _Outcome(msgspec.Struct):
    kind: Literal["ok", "transient", "permanent"]
    http_status: int | None = None
    retry_after: float | None = None
    error: str | None = None


async def _finish(redis: Redis, report: Report, outcome: _Outcome, connection: Connection, now: float) -> str:
    """Record one attempt's outcome on the report: sent, scheduled again, or failed for good."""
    report.attempts += 1
    report.http_status = outcome.http_status
    dest = health.destination(report.kind, report.connection_id)
    if outcome.kind == "ok":
        report.status, report.sent_at, report.next_attempt_at, report.last_error = "sent", now, None, None
        await _save(redis, report)
        return "sent"
    report.last_error = outcome.error
    if outcome.kind == "transient":
        decision = next_retry(
            connection.retry,
            report.attempts,
            TransientError(outcome.error or "", status=outcome.http_status, retry_after=outcome.retry_after),
        )
        if decision.delay_s is not None:
            report.next_attempt_at = now + decision.delay_s
            await _save(redis, report)
            return "retry_scheduled"
        report.last_error = f"{decision.reason}; last error: {outcome.error}"
    report.status, report.next_attempt_at = "failed", None
    await _save(redis, report)
    await health.exhausted(redis, dest, report.id, report.delivery_id, report.attempts, report.created_at, now)
    return "failed"


def _response_outcome(response: httpx.Response) -> _Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return _Outcome("ok", status)
    kind: Literal["transient", "permanent"] = "permanent" if status in PERMANENT else "transient"
    return _Outcome(kind, status, parse_retry_after(response.headers.get("retry-after")), f"HTTP {status}")


async def _send_hellowork(redis: Redis, http: httpx.AsyncClient, report: Report, connection: Connection) -> _Outcome:
    assert report.url is not None
    try:
        response = await ssrf.post(
            report.url,
            http,
            content=msgspec.json.encode(report.body),
            headers={"content-type": "application/json", "user-agent": "applyrelay-status"},
            allow_hosts=connection.inbound.hellowork_status_hosts,
            allow_http=connection.fetch_allow_http,
            timeout_s=connection.timeout_s,
        )
    except ssrf.UnsafeURL as exc:
        return _Outcome("permanent", error=f"unsafe status URL: {exc}")
    except (httpx.HTTPError, OSError) as exc:
        return _Outcome("transient", error=f"network error: {type(exc).__name__}")
    return _response_outcome(response)


class _AuthFailed(Exception):
    pass


async def indeed_token(
    redis: Redis, http: httpx.AsyncClient, connection: Connection, sealer: Sealer | None, *, force: bool = False
) -> str:
    """The OAuth client-credentials token, shared by every worker through Redis (sealed with the
    data key, like the connections' OAuth tokens) until ~1 min (or a tenth of its life) before it
    expires."""
    key = indeed_token_key(connection.id)
    if not force:
        cached = await redis.get(key)
        if cached:
            return (sealer.open(cached) if sealer else cached).decode()
    inbound = connection.inbound
    client_id = os.environ.get(inbound.indeed_client_id_env or "", "")
    client_secret = os.environ.get(inbound.indeed_client_secret_env or "", "")
    if not client_id or not client_secret:
        raise _AuthFailed("the Indeed client id or secret variable is not set")
    response = await http.post(
        inbound.indeed_token_url,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret},
        headers={"accept": "application/json"},
        timeout=connection.timeout_s,
    )
    if response.status_code in (400, 401, 403):
        raise _AuthFailed(f"Indeed refused the client credentials (HTTP {response.status_code})")
    response.raise_for_status()
    body = response.json()
    token, expires_in = str(body["access_token"]), float(body.get("expires_in") or 3600)
    keep_s = max(0.5, expires_in - min(60.0, expires_in / 10))
    await redis.set(key, sealer.seal(token.encode()) if sealer else token.encode(), px=int(keep_s * 1000))
    return token


async def _send_indeed(
    redis: Redis, http: httpx.AsyncClient, reports: list[Report], connection: Connection, sealer: Sealer | None
) -> tuple[_Outcome, dict[str, str]]:
    """One partnerDisposition.send for up to 25 reports: the request's outcome, and Indeed's
    rationale per apply id it refused."""
    payload = msgspec.json.encode(
        {"query": MUTATION, "variables": {"input": {"dispositions": [r.body for r in reports]}}}
    )
    try:
        token = await indeed_token(redis, http, connection, sealer)
        for refreshed in (False, True):
            response = await http.post(
                connection.inbound.indeed_disposition_url,
                content=payload,
                headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
                timeout=connection.timeout_s,
            )
            if response.status_code != 401 or refreshed:
                break
            token = await indeed_token(redis, http, connection, sealer, force=True)  # expired mid-batch: once
    except _AuthFailed as exc:
        return _Outcome("transient", 401, error=str(exc)), {}
    except (httpx.HTTPError, OSError, KeyError, ValueError) as exc:
        return _Outcome("transient", error=f"network error: {type(exc).__name__}"), {}
    outcome = _response_outcome(response)
    if outcome.kind != "ok":
        return outcome, {}
    try:
        body = response.json()
        send = body["data"]["partnerDisposition"]["send"]
    except (ValueError, KeyError, TypeError):
        errors = body.get("errors") if isinstance(body, dict) else None
        message = str(errors[0].get("message", ""))[:300] if isinstance(errors, list) and errors else "no data"
        return _Outcome("permanent", response.status_code, error=f"Indeed refused the request: {message}"), {}
    failed = {
        str((f.get("identifiedBy") or {}).get("indeedApplyID")): str(f.get("rationale") or "")[:300]
        for f in send.get("failedDispositions") or []
        if isinstance(f, dict)
    }
    return outcome, failed


async def dispatch_due(
    redis: Redis,
    config: Config,
    http: httpx.AsyncClient,
    *,
    now: float | None = None,
    limit: int = 500,
    budget_s: float = 30.0,
    sealer: Sealer | None = None,
) -> dict[str, int]:
    """Send the reports due by `now` (a parameter, so tests can move the clock): HelloWork's one by
    one, Indeed's per connection in batches of 25 by change time. Health is counted at `now`.
    `sealer` seals the cached Indeed token (the runtime's)."""
    now = time.time() if now is None else now
    deadline = time.monotonic() + budget_s
    outcomes: dict[str, int] = {}
    locked: list[str] = []
    try:
        ready: list[Report] = []
        for raw_id in await redis.zrangebyscore(BOARD_REPORTS_DUE, "-inf", now, start=0, num=limit):
            report_id = raw_id.decode()
            if not await redis.set(board_report_lease_key(report_id), b"1", nx=True, px=60_000):
                continue
            locked.append(report_id)
            report = await get(redis, report_id)
            if report is None or report.status != "pending":
                await awaited(redis.zrem(BOARD_REPORTS_DUE, report_id))
                continue
            ready.append(report)
        groups: dict[tuple[str, str], list[Report]] = {}
        for report in ready:
            groups.setdefault((report.kind, report.connection_id), []).append(report)
        for (kind, connection_id), group in groups.items():
            connection = config.connections.get(connection_id)
            dest = health.destination(kind, connection_id)
            if connection is None or await health.is_disabled(redis, dest):
                for report in group:
                    report.status, report.next_attempt_at = "failed", None
                    report.last_error = "destination disabled" if connection else "the connection is gone"
                    await _save(redis, report)
                    await health.failed_without_attempt(redis, dest, report.id, report.created_at)
                    outcomes["failed"] = outcomes.get("failed", 0) + 1
                continue
            group.sort(key=lambda r: (r.change_at, r.created_at))
            chunks = (
                [[r] for r in group]
                if kind == "hellowork"
                else [group[i : i + BATCH] for i in range(0, len(group), BATCH)]
            )
            for chunk in chunks:
                if time.monotonic() > deadline:
                    break
                failed: dict[str, str] = {}
                if kind == "hellowork":
                    outcome = await _send_hellowork(redis, http, chunk[0], connection)
                else:
                    outcome, failed = await _send_indeed(redis, http, chunk, connection, sealer)
                await health.record_attempt(
                    redis,
                    dest,
                    ok=outcome.kind == "ok",
                    now=now,
                    message_id=chunk[0].id,
                    http_status=outcome.http_status,
                    error=outcome.error,
                    disable_after_s=connection.inbound.outbound_disable_after_s,
                )
                for report in chunk:
                    apply_id = str(report.body.get("identifiedBy", {}).get("indeedApplyID"))
                    if outcome.kind == "ok" and apply_id in failed:
                        report.attempts += 1
                        report.status, report.rationale, report.next_attempt_at = "failed", failed[apply_id], None
                        report.last_error = "Indeed refused this disposition"
                        await _save(redis, report)
                        await health.failed_without_attempt(redis, dest, report.id, report.created_at)
                        result = "refused"
                    else:
                        result = await _finish(redis, report, outcome, connection, now)
                    outcomes[result] = outcomes.get(result, 0) + 1
                log.info(
                    "board.reported",
                    kind=kind,
                    connection=connection_id,
                    count=len(chunk),
                    outcome=outcome.kind,
                    http_status=outcome.http_status,
                )
    finally:
        for report_id in locked:
            await redis.delete(board_report_lease_key(report_id))
    return outcomes


async def report_to_boards(ctx: dict[str, Any]) -> dict[str, int]:
    runtime = ctx["runtime"]
    await scan_dead_letters(runtime, time.time())
    return await dispatch_due(
        runtime.redis, runtime.config, runtime.http, budget_s=runtime.settings.run_budget_s / 2, sealer=runtime.sealer
    )


def cron_job(settings: Settings) -> CronJob:
    """Every 10 s (offset from the callbacks'): first reports go out within seconds."""
    return cron(report_to_boards, name="report_to_boards", second=set(range(5, 60, 10)), timeout=settings.job_timeout_s)
