"""The delivery engine: runs a connector's steps for one delivery and records what happened.

It knows no ATS (connectors do) and no HTTP routes (the web layer does). One run:

1. take the delivery's lease (one runner at a time, whatever the number of workers);
2. ignore stale jobs (a job that is not the delivery's pending one, or a finished delivery);
3. run the core steps in order, skipping checkpointed ones, storing each remote id at once;
4. run the attachment and extra steps, each on its own: a failed file never blocks the rest;
5. map the outcome to the retry policy: delivered, retry_scheduled (engine-scheduled run),
   failed (dead letter), or paused (credentials refused: no attempt spent).

A run that dies (kill -9) leaves the status `delivering`; arq re-runs the same job after its
in-progress lease, and the checkpoints make the re-run resume instead of repeat.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import msgspec
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import Config, Connection, RetryPolicyConfig, unloadable
from app.core import answers
from app.core.catalog import READ_JOBS, READ_SCREENING_QUESTIONS
from app.core.model import AttachmentRef, StoredAnswer, StoredApplication, stored_decoder
from app.core.pii import personal_values, scrub
from app.delivery import transitions
from app.delivery.limits import ConnectionLimiter, Denied, Lease
from app.delivery.record import (
    MAX_ATTEMPT_LOG,
    TERMINAL,
    AttachmentState,
    Attempt,
    Delivery,
    ErrorInfo,
    Status,
    delivery_decoder,
)
from app.delivery.retry_policy import next_retry
from app.delivery.store import DeliveryStore
from app.privacy.crypto import SealError
from connectors.base import (
    AttachmentRejected,
    AuthError,
    Connector,
    ConnectorError,
    PermanentError,
    Step,
    StepContext,
    TransientError,
)

log = structlog.get_logger("applyrelay.engine")

MAX_CRASH_RERUNS = 5
CHECK_STEP = "check_answers"  # the step a failed pre-write check of the answers names


class ActionPayload(msgspec.Struct, omit_defaults=True):
    """What an action delivery carries (add attachment, result link, move stage...)."""

    action: str
    params: dict[str, Any] = {}
    attachments: list[AttachmentRef] = []


action_encoder = msgspec.msgpack.Encoder()
action_decoder = msgspec.msgpack.Decoder(ActionPayload)

AttachmentLoader = Callable[[Delivery, AttachmentRef], Awaitable[bytes]]

# How a run's steps ended: all done ("ok"), out of run budget ("budget"), a core step's error
# (the run stopped there), or the (step, error) pairs of the non-core steps that failed.
RunOutcome: TypeAlias = Literal["ok", "budget"] | BaseException | list[tuple[Step, BaseException]]


@dataclass
class EngineDeps:
    store: DeliveryStore
    config: Config
    connector_for: Callable[[str], Connector[Any]]
    load_attachment: AttachmentLoader
    clock: Callable[[], float] = time.time
    rng: random.Random = field(default_factory=random.Random)
    run_budget_s: float = 40.0
    lease_s: float = 50.0
    keep_files_after_delivery: bool = False
    limiter: ConnectionLimiter | None = None  # per-connection concurrency / rate (app/delivery/limits.py)
    file_links: Callable[[str, int, float], str] | None = None  # (delivery, index, expiry) → URL


@dataclass
class _RunState:
    started: float
    done_before: int = 0
    step: str | None = None
    personal: tuple[str, ...] = ()  # the application's values, scrubbed from every recorded message
    files: int | None = None  # file keys the payload may have (known from the plan: no re-read to drop them)
    hold: _Hold | None = None  # the lease and slot, given back with a delivered run's outcome
    revision: int = 0  # the connection's, as this run used it (`_stale_credentials`)
    # A finished step's checkpoint held back to be written with the next one (see `_run_step`);
    # `unsaved_write`: one of them may have created something in the ATS.
    unsaved: bool = False
    unsaved_write: bool = False


@dataclass
class _Hold:
    """What a run holds, given back when it ends: the delivery's lease and the connection's slot
    (`released`: already given back with the run's outcome, in the same round trip)."""

    delivery_id: str
    token: str
    slot: tuple[str, str] | None = None
    released: bool = False


# What a run's start answers (`DeliveryStore.begin_run`): paused, denied by the limits, started.
_PAUSED, _DENIED, _STARTED = 0, 1, 2


class Refused(PermanentError):
    """The relay's own refusal at delivery (the answers' check, a closed job), with its code."""

    def __init__(self, detail: str, code: str) -> None:
        super().__init__(detail)
        self.code = code


def refusal_code(kind: str, exc: BaseException | str) -> str | None:
    """Kombo's code for what ended (or paused) a delivery (README, "Error codes"): the ATS's
    refusal by its HTTP status, the retries given up by the last error, the relay's own checks."""
    if isinstance(exc, Refused):
        return exc.code
    if kind == "auth" or isinstance(exc, AuthError):
        return "INTEGRATION.AUTHENTICATION_INVALID"
    if kind == "crash":
        return "PLATFORM.UNKNOWN_ERROR"
    if not isinstance(exc, ConnectorError):
        return "PLATFORM.UNKNOWN_ERROR" if kind in ("permanent", "exhausted") else None
    status = exc.status
    if isinstance(exc, TransientError):
        return "REMOTE.RATE_LIMIT_EXCEEDED" if status == 429 else "REMOTE.SERVICE_UNAVAILABLE"
    if status is None:
        return "PLATFORM.INPUT_INVALID"  # the connector refused it before sending (what the ATS cannot take)
    if status in (404, 409, 410, 422) and "closed" in exc.detail.lower():
        return "ATS.JOB_CLOSED"
    if status in (400, 422):
        return "REMOTE.INPUT_INVALID"
    return "REMOTE.UNKNOWN_HTTP_ERROR"


def _error_info(kind: str, exc: BaseException | str, at: float, step: str | None) -> ErrorInfo:
    code = refusal_code(kind, exc)
    if isinstance(exc, ConnectorError):
        return ErrorInfo(kind=kind, message=exc.detail, step=step, http_status=exc.status, at=at, code=code)
    return ErrorInfo(kind=kind, message=str(exc)[:500], step=step, at=at, code=code)


UNLOADABLE_WAIT_S = 30.0  # between two looks at a stored connection this worker cannot build
FILE_SLACK = 4  # files fetched later from a data_url may sit past the payload's count: be generous


async def file_count(store: DeliveryStore, delivery: Delivery) -> int:
    """How many file keys a delivery may have (from its payload), plus slack: what a purge,
    an erasure or the end of a delivery must delete."""
    raw = await store.load_payload(delivery.id)
    if raw is not None:
        try:
            return planned_file_count(
                action_decoder.decode(raw) if delivery.kind == "action" else stored_decoder.decode(raw)
            )
        except msgspec.DecodeError:
            pass
    return FILE_SLACK


def planned_file_count(payload: ActionPayload | StoredApplication) -> int:
    """How many file keys the decoded payload of a delivery may have (see `file_count`)."""
    if isinstance(payload, ActionPayload):
        return len(payload.attachments) + FILE_SLACK
    return (
        len(payload.attachments)
        + sum(1 for a in payload.screening_question_answers if isinstance(a.answer, AttachmentRef))
        + FILE_SLACK
    )


def _trailing_crashes(delivery: Delivery) -> int:
    count = 0
    for attempt in reversed(delivery.attempts):
        if attempt.outcome != "crash":
            break
        count += 1
    return count


def _record(delivery: Delivery, attempt: Attempt) -> None:
    delivery.attempts.append(attempt)
    if len(delivery.attempts) > MAX_ATTEMPT_LOG:
        del delivery.attempts[: len(delivery.attempts) - MAX_ATTEMPT_LOG]


class DeliveryEngine:
    def __init__(self, deps: EngineDeps) -> None:
        self.deps = deps

    async def run(self, delivery_id: str, job_id: str | None = None, job_try: int = 1) -> str:
        """Run one delivery; returns the resulting status (or why nothing ran)."""
        store = self.deps.store
        token, delivery, raw = await store.acquire_lease_and_read(delivery_id, self.deps.lease_s)
        if token is None:
            return "busy"
        hold = _Hold(delivery_id, token)  # the slot, once taken, is given back with the lease
        try:
            if delivery is None or raw is None:
                return "missing"
            if job_id is not None and job_id != delivery.job:
                return "stale"  # superseded by a newer run (operator retry, resume), or finished
            if delivery.status in TERMINAL:
                return delivery.status
            return await self._run(delivery, raw, job_try, hold)
        finally:
            if not hold.released:
                await self._release(hold)

    async def _release(self, hold: _Hold) -> None:
        """Give the lease back, and the connection's slot with it, briefly: this also runs when the
        run is cancelled (its deadline) or Redis is away, and must not hold the job past arq's
        timeout; an unreleased lease or slot simply expires after `lease_s`."""
        try:
            async with asyncio.timeout(1.0):
                await self.deps.store.release_lease(hold.delivery_id, hold.token, also_zrem=hold.slot)
        except (TimeoutError, OSError, RedisError) as exc:
            log.warning("delivery.lease_not_released", delivery_id=hold.delivery_id, error_type=type(exc).__name__)

    # -- one run ------------------------------------------------------------------------------

    async def _run(self, delivery: Delivery, raw: bytes, job_try: int, hold: _Hold) -> str:
        """Checks, in this order: the connection is configured, not paused, a run that died is
        not re-run for ever, the connection's limits; then the run. The pause check, the limits
        and the run's first write are one round trip (`DeliveryStore.begin_run`); a no there
        leaves the state as it was read (`raw`)."""
        deps, now = self.deps, self.deps.clock()
        connection = deps.config.connections.get(delivery.connection_id)
        # made through the API a moment ago: this worker's registry may not have polled yet;
        # asked once before the delivery is given up on
        if connection is None and await self._reload_connections():
            connection = deps.config.connections.get(delivery.connection_id)
        if connection is None:
            why = unloadable(deps.config.connections, delivery.connection_id)  # stored, but not buildable here
            if why is not None:
                return await self._wait_for_connection(delivery, why, now)
            return await self._dead_letter(
                delivery,
                ErrorInfo(
                    kind="permanent",
                    message=f"connection {delivery.connection_id!r} is no longer configured",
                    at=now,
                    code="PLATFORM.INTEGRATION_NOT_FOUND",
                ),
            )
        crashed = delivery.status == Status.DELIVERING  # the last run died without recording its end
        if crashed and _trailing_crashes(delivery) + 1 >= MAX_CRASH_RERUNS:
            # Rare: the checks one by one, so that a paused connection still comes first.
            paused = await deps.store.paused_reason(delivery.connection_id)
            if paused:
                return await self._paused_at_start(delivery, paused, now)
            crashes = self._note_crash(delivery, now)
            return await self._dead_letter(
                delivery,
                ErrorInfo(
                    kind="crash",
                    message=f"the worker died {crashes} times in a row running this delivery",
                    at=now,
                    code="PLATFORM.UNKNOWN_ERROR",
                ),
            )
        if crashed:
            self._note_crash(delivery, now)
        ask = deps.limiter.request(connection) if deps.limiter is not None else None
        kind, value = await deps.store.begin_run(
            delivery, transitions.start_run(delivery), None if ask is None else (ask.keys, ask.args)
        )
        if kind == _STARTED:
            if ask is not None:
                hold.slot = ConnectionLimiter.slot(Lease(ask.connection_id, ask.token))
            return await self._run_limited(delivery, connection, value, hold)
        delivery = delivery_decoder.decode(raw)  # nothing was written: back to the state as read
        if kind == _PAUSED:
            return await self._paused_at_start(delivery, value.decode(), now)
        assert ask is not None and kind == _DENIED
        if crashed:
            self._note_crash(delivery, now)
        denied = ask.answer(0, value)
        assert isinstance(denied, Denied)
        return await self._defer(delivery, denied)

    @staticmethod
    def _note_crash(delivery: Delivery, now: float) -> int:
        """Record the run that died without recording its end; how many died in a row."""
        _record(
            delivery,
            Attempt(
                number=delivery.runs,
                started_at=delivery.updated_at,
                finished_at=now,
                outcome="crash",
                error="worker stopped during the run",
            ),
        )
        # Counted from the delivery's own log, not arq's job_try, which also counts re-queues
        # that were no crash (lease busy, Redis briefly away).
        return _trailing_crashes(delivery)

    async def _paused_at_start(self, delivery: Delivery, reason: str, now: float) -> str:
        info = ErrorInfo(
            kind="auth", message=f"connection paused: {reason}", at=now, code="INTEGRATION.AUTHENTICATION_INVALID"
        )
        move = transitions.pause(delivery, info)
        await self.deps.store.save(delivery, move)
        return "paused"

    async def _wait_for_connection(self, delivery: Delivery, reason: str, now: float) -> str:
        """The connection is stored but this worker cannot build it (a newer relay's during a
        rolling upgrade, a settings value this version refuses; docs/connections.md): run again
        later, no attempt spent, the reason on the delivery, until a worker that can takes it."""
        if delivery.status == Status.DELIVERING:  # the last run died: recorded, as on any other path
            self._note_crash(delivery, now)
        delivery.last_error = ErrorInfo(
            kind="transient",
            message=f"connection {delivery.connection_id!r} is stored but cannot be loaded: {reason}"[:500],
            at=now,
            code="PLATFORM.UNAVAILABLE",
        )
        run_at = now + UNLOADABLE_WAIT_S + self.deps.rng.uniform(0, UNLOADABLE_WAIT_S / 2)
        move = transitions.continue_later(delivery, run_at)
        await self.deps.store.save(delivery, move, run_at=run_at, run_seq=delivery.runs)
        log.warning("delivery.connection_unloadable", delivery_id=delivery.id, connection=delivery.connection_id)
        return "deferred"

    async def _defer(self, delivery: Delivery, denied: Denied) -> str:
        """The connection is at its concurrency or rate limit: run again shortly, no attempt spent."""
        wait = denied.wait_s if denied.wait_s is not None else 0.25
        run_at = self.deps.clock() + wait + self.deps.rng.uniform(0.05, 0.5)
        move = transitions.continue_later(delivery, run_at)
        await self.deps.store.save(delivery, move, run_at=run_at, run_seq=delivery.runs)
        log.debug(
            "delivery.deferred",
            delivery_id=delivery.id,
            connection=delivery.connection_id,
            reason="rate" if denied.wait_s is not None else "concurrency",
        )
        return "deferred"

    async def _run_limited(self, delivery: Delivery, connection: Connection, sealed: bytes | None, hold: _Hold) -> str:
        """The run, once started (`sealed`: the payload as stored, read with the run's start)."""
        deps, now = self.deps, self.deps.clock()

        connector = deps.connector_for(delivery.connection_id)
        try:
            steps, application, files = self._plan(delivery, connector, sealed)
        except (PermanentError, msgspec.DecodeError) as exc:
            return await self._dead_letter(delivery, _error_info("permanent", exc, now, "plan"))
        except TransientError as exc:
            delivery.failed_attempts += 1
            return await self._retry_or_give_up(
                delivery, exc, _RunState(started=now, step="plan"), connection.retry, delivery.failed_attempts
            )
        if application is not None and delivery.check_answers_before_write and not delivery.checkpoints:
            try:
                checked = await self._check_answers(delivery, connector, application)
            except AuthError as exc:
                return await self._pause(
                    delivery, exc, _RunState(started=now, step=CHECK_STEP, revision=connection.revision)
                )
            except Refused as exc:  # the relay's own verdict: a closed or unknown job, a bad answer
                return await self._dead_letter(delivery, _error_info("permanent", exc, now, CHECK_STEP))
            except (RedisConnectionError, RedisTimeoutError):
                raise  # our own store is away: the worker re-runs the job, no attempt spent
            except Exception as exc:
                # A read that failed (or a connector that broke on its answer) says nothing about
                # the application: retry on the schedule (a read is safe to repeat), never
                # dead-letter an application over it.
                if isinstance(exc, ConnectorError):
                    retry = exc if isinstance(exc, TransientError) else TransientError(exc.detail, status=exc.status)
                else:
                    retry = TransientError(f"internal error checking the answers: {type(exc).__name__}")
                delivery.failed_attempts += 1
                return await self._retry_or_give_up(
                    delivery, retry, _RunState(started=now, step=CHECK_STEP), connection.retry, delivery.failed_attempts
                )
            if checked is not application:
                application, steps = checked, connector.plan(checked)
        self._track_attachments(delivery, steps)
        ctx = StepContext(
            application=application,
            checkpoints=delivery.checkpoints,
            load_attachment=lambda ref: deps.load_attachment(delivery, ref),
            file_link=lambda ref, ttl_s: self._file_link(delivery, ref, ttl_s),
        )
        run = _RunState(
            started=now,
            done_before=len(delivery.checkpoints),
            personal=personal_values(application),
            files=files,
            hold=hold,
            revision=connection.revision,
        )
        try:
            async with asyncio.timeout(deps.run_budget_s):
                outcome: RunOutcome = await self._run_steps(delivery, steps, ctx, run)
        except TimeoutError:
            outcome = "budget"
        finally:
            for warning in ctx.warnings:  # linear: past the cap a warning is only counted, not scrubbed
                if delivery.warnings_full:
                    delivery.warnings_dropped += 1
                else:
                    delivery.add_warning(warning.code, scrub(warning.message, run.personal))
        return await self._finish(delivery, outcome, run, connection.retry)

    async def _check_answers(
        self, delivery: Delivery, connector: Connector[Any], application: StoredApplication
    ) -> StoredApplication:
        """Intake could not read the job in time (docs/answers.md): before anything is
        written to the ATS, the job must be open and the answers fit its questions, by the same
        check (app/core/answers.py); a fault is a dead letter naming the question. Returns the
        application with only the answers to send (unknown questions dropped, with a warning)."""
        reads = connector.capabilities.reads
        job_id = application.application.job_id
        if READ_JOBS in reads:
            job = await connector.get_job(job_id)
            if job is None:
                raise Refused(f"job {job_id[:100]} does not exist in the ATS", "PLATFORM.INPUT_INVALID")
            if job.status != "OPEN":
                raise Refused(f"job {job_id[:100]} no longer takes applications ({job.status})", "ATS.JOB_CLOSED")
        if READ_SCREENING_QUESTIONS not in reads:
            delivery.check_answers_before_write = False
            return application
        try:
            questions = await connector.job_questions(job_id)
        except PermanentError as exc:
            if exc.status == 404:
                raise Refused(f"job {job_id[:100]} does not exist in the ATS", "PLATFORM.INPUT_INVALID") from None
            raise
        by_id = {q.id: q for q in questions}
        given = [
            StoredAnswer(a.question_id, answers.normalise(by_id.get(a.question_id), a.answer))
            for a in application.screening_question_answers
        ]
        result = answers.check_answers(questions, given)
        if not result.ok:
            raise Refused("screening answers rejected: " + result.summary(), "PLATFORM.INPUT_INVALID")
        for warning in result.warnings:
            delivery.add_warning(warning.code, warning.message)
        delivery.check_answers_before_write = False
        kept = [given[i] for i in result.kept]
        return msgspec.structs.replace(application, screening_question_answers=kept)

    def _file_link(self, delivery: Delivery, ref: AttachmentRef, ttl_s: float) -> str | None:
        if self.deps.file_links is None:
            return None
        expires_at = self.deps.clock() + ttl_s
        delivery.keep_files_until = max(delivery.keep_files_until or 0.0, expires_at)
        return self.deps.file_links(delivery.id, ref.index, expires_at)

    def _plan(
        self, delivery: Delivery, connector: Connector[Any], sealed: bytes | None
    ) -> tuple[list[Step], StoredApplication | None, int]:
        """(steps, the application or None for an action, how many file keys it may have), from
        the payload as stored (`sealed`, read with the run's first write)."""
        if sealed is None:
            raise Refused("the stored payload is gone (purged or erased)", "PLATFORM.UNKNOWN_ERROR")
        try:
            raw = self.deps.store.open_payload(sealed)
        except SealError as exc:  # a data key missing from the environment: fixable, so not permanent
            raise TransientError(f"payload: {exc}") from None
        if delivery.kind == "action":
            payload = action_decoder.decode(raw)
            return (
                connector.action_plan(payload.action, payload.params, payload.attachments),
                None,
                planned_file_count(payload),
            )
        application = stored_decoder.decode(raw)
        return connector.plan(application), application, planned_file_count(application)

    @staticmethod
    def _track_attachments(delivery: Delivery, steps: list[Step]) -> None:
        known = {a.step for a in delivery.attachments}
        for step in steps:
            if step.attachment is not None and step.name not in known:
                ref = step.attachment
                extension = ref.name.rsplit(".", 1)[-1][:8] if "." in ref.name else ""
                delivery.attachments.append(
                    AttachmentState(
                        step=step.name,
                        name_hint=f"{ref.type.lower()}.{extension}".rstrip("."),
                        type=ref.type,
                        size=ref.size,
                        confirmed=step.name in delivery.checkpoints,
                    )
                )

    async def _run_steps(
        self, delivery: Delivery, steps: list[Step], ctx: StepContext, run: _RunState
    ) -> Literal["ok"] | BaseException | list[tuple[Step, BaseException]]:
        """Core steps stop the run at the first failure; the others each fail on their own.
        Returns "ok", an exception (core failure) or a list of (step, exception) for the rest."""
        for step in (s for s in steps if s.core):
            if step.name in delivery.checkpoints:
                continue
            error = await self._run_step(delivery, step, ctx, run)
            if error is not None:
                return error
        failures: list[tuple[Step, BaseException]] = []
        for step in (s for s in steps if not s.core):
            if step.name in delivery.checkpoints:
                continue
            error = await self._run_step(delivery, step, ctx, run)
            if error is not None:
                if isinstance(error, AuthError):
                    return error
                failures.append((step, error))
        return failures or "ok"

    async def _run_step(self, delivery: Delivery, step: Step, ctx: StepContext, run: _RunState) -> BaseException | None:
        deps = self.deps
        if run.unsaved_write:
            # The last step may have created something: its checkpoint is durable before this
            # step can write anything (DESIGN.md §4.3), together with any held-back read's.
            await deps.store.save(delivery)
            run.unsaved = run.unsaved_write = False
        run.step = step.name
        started = deps.clock()
        t0 = time.perf_counter()
        try:
            remote_id = await step.run(ctx)
        except ConnectorError as exc:
            exc.detail = scrub(exc.detail, run.personal)  # an ATS may echo what it was sent
            self._log_step(delivery, step, exc, t0)
            return exc
        except (RedisConnectionError, RedisTimeoutError):
            raise  # our own store is away, not the ATS: the worker re-runs the job, no attempt spent
        except (json.JSONDecodeError, UnicodeDecodeError, msgspec.DecodeError) as exc:  # the ATS's answer
            log.warning("delivery.step_unreadable_answer", delivery_id=delivery.id, step=step.name)
            return TransientError(f"step {step.name}: the ATS's answer could not be read ({type(exc).__name__})")
        except Exception as exc:  # a connector bug: keep it retryable, never let it kill the job
            log.exception(
                "delivery.step_crashed", delivery_id=delivery.id, step=step.name, error_type=type(exc).__name__
            )
            return TransientError(f"internal error in step {step.name}: {type(exc).__name__}")
        delivery.checkpoints[step.name] = str(remote_id)
        for state in delivery.attachments:
            if state.step == step.name:
                state.confirmed, state.last_error = True, None
        _record(
            delivery,
            Attempt(
                number=delivery.runs,
                started_at=started,
                finished_at=deps.clock(),
                outcome="ok",
                step=step.name,
                latency_ms=int((time.perf_counter() - t0) * 1000),
            ),
        )
        if step.attachment is None:
            # Held back: written before the next step runs if this one may have written (above),
            # else with a later checkpoint, and in any case by the run's outcome, which saves the
            # whole state. Consecutive steps cost one round trip, not one each (bench P2).
            run.unsaved = True
            run.unsaved_write = run.unsaved_write or step.writes
        else:
            await deps.store.save(delivery)  # a checkpoint (the status stays), before the file goes
            run.unsaved = run.unsaved_write = False
            links_live = (delivery.keep_files_until or 0) > deps.clock()  # a signed link serves the bytes
            if not deps.keep_files_after_delivery and not links_live:
                await deps.store.drop_file(delivery.id, step.attachment.index)  # the ATS holds it now
        self._log_step(delivery, step, None, t0)
        return None

    def _log_step(self, delivery: Delivery, step: Step, error: BaseException | None, t0: float) -> None:
        """A step that went through is a debug line (the delivery's outcome line, at info, sums up
        its run: docs/architecture.md, "One run of the engine"); a failed one stays at info."""
        (log.debug if error is None else log.info)(
            "delivery.step",
            delivery_id=delivery.id,
            connection=delivery.connection_id,
            connector=delivery.connector,
            step=step.name,
            attempt=delivery.runs,
            status="ok" if error is None else type(error).__name__,
            http_status=getattr(error, "status", None),
            latency_ms=int((time.perf_counter() - t0) * 1000),
        )

    # -- outcomes -----------------------------------------------------------------------------

    async def _finish(self, delivery: Delivery, outcome: RunOutcome, run: _RunState, policy: RetryPolicyConfig) -> str:
        deps, now = self.deps, self.deps.clock()
        if outcome == "ok":
            return await self._delivered(delivery, run.files if run.files is not None else FILE_SLACK, run)
        if outcome == "budget" and len(delivery.checkpoints) == run.done_before:
            # Not one step finished in a whole run: the ATS is too slow; a timeout, on the schedule.
            outcome = TransientError(f"step {run.step} did not finish within the run budget", timeout=True)
        if outcome == "budget":
            # Out of time for this run but progressing: continue at once, no attempt spent.
            _record(
                delivery,
                Attempt(
                    number=delivery.runs,
                    started_at=run.started,
                    finished_at=now,
                    outcome="transient",
                    step=run.step,
                    error="run budget used, continuing",
                ),
            )
            move = transitions.continue_later(delivery, now)
            await deps.store.save(delivery, move, run_at=now, run_seq=delivery.runs)
            return "queued"
        if isinstance(outcome, AuthError):
            return await self._pause(delivery, outcome, run)
        if isinstance(outcome, list):
            return await self._attachments_failed(delivery, outcome, run, policy)
        if isinstance(outcome, TransientError):
            delivery.failed_attempts += 1
            return await self._retry_or_give_up(delivery, outcome, run, policy, delivery.failed_attempts)
        return await self._dead_letter(delivery, _error_info("permanent", outcome, now, run.step), run=run)

    async def _delivered(self, delivery: Delivery, files: int, run: _RunState) -> str:
        now = self.deps.clock()
        move = transitions.deliver(delivery, now)
        _record(delivery, Attempt(number=delivery.runs, started_at=now, finished_at=now, outcome="ok"))
        links_live = (delivery.keep_files_until or 0) > now
        drop = 0
        if not self.deps.keep_files_after_delivery and not links_live and not delivery.files_purged:
            # The ATS holds the files now: deleted in the same transaction as the outcome.
            drop = files
            delivery.files_purged = True
        hold = run.hold
        if hold is None:
            await self.deps.store.save(delivery, move, drop_files=drop)
        else:  # the lease and the slot go back with the outcome: one round trip, not two
            await self.deps.store.save(delivery, move, drop_files=drop, release=(hold.token, hold.slot))
            hold.released = True
        log.info(  # the one line of a delivery that went through (its steps are debug lines)
            "delivery.delivered",
            delivery_id=delivery.id,
            connection=delivery.connection_id,
            connector=delivery.connector,
            attempt=delivery.runs,
            steps=len(delivery.checkpoints) - run.done_before,
            latency_ms=int((now - run.started) * 1000),
        )
        return "delivered"

    async def _retry_or_give_up(
        self, delivery: Delivery, error: TransientError, run: _RunState, policy: RetryPolicyConfig, failures: int
    ) -> str:
        now = self.deps.clock()
        decision = next_retry(policy, failures, error, self.deps.rng)
        info = _error_info("transient", error, now, run.step)
        if decision.delay_s is None:
            info.kind, info.message = "exhausted", f"{decision.reason}; last error: {info.message}"
            return await self._dead_letter(delivery, info, run=run)
        run_at = now + decision.delay_s
        _record(
            delivery,
            Attempt(
                number=delivery.runs,
                started_at=run.started,
                finished_at=now,
                outcome="transient",
                step=run.step,
                http_status=error.status,
                error=info.message,
                next_attempt_at=run_at,
                retry_reason=decision.reason,
            ),
        )
        move = transitions.schedule_retry(delivery, info, run_at)
        await self.deps.store.save(delivery, move, run_at=run_at, run_seq=delivery.runs)
        log.info(
            "delivery.retry_scheduled",
            delivery_id=delivery.id,
            connection=delivery.connection_id,
            connector=delivery.connector,
            step=run.step,
            attempt=delivery.runs,
            http_status=error.status,
            delay_s=round(decision.delay_s, 1),
            reason=decision.reason,
        )
        return "retry_scheduled"

    async def _attachments_failed(
        self,
        delivery: Delivery,
        failures: list[tuple[Step, BaseException]],
        run: _RunState,
        policy: RetryPolicyConfig,
    ) -> str:
        """The candidate and application are in; some files (or extras) are not."""
        now = self.deps.clock()
        permanent = [(s, e) for s, e in failures if not isinstance(e, TransientError)]
        for step, error in failures:
            for state in delivery.attachments:
                if state.step == step.name:
                    state.failures += 1
                    state.last_error = getattr(error, "detail", type(error).__name__)
        if permanent:
            step, error = permanent[0]
            kind = "attachment" if isinstance(error, AttachmentRejected) or step.attachment else "permanent"
            info = _error_info(kind, error, now, step.name)
            delivery.add_warning(
                "attachment_failed" if step.attachment else "step_failed", f"{step.name}: {info.message}"
            )
            return await self._dead_letter(delivery, info, run=run)
        step, error = failures[0]
        assert isinstance(error, TransientError)
        delivery.attachment_failures += 1
        run.step = step.name
        return await self._retry_or_give_up(delivery, error, run, policy, delivery.attachment_failures)

    async def _reload_connections(self) -> bool:
        """Have this worker's registry poll now (app/connections/registry.py) rather than within
        the second; False when the connections are fixed (a plain config, unit tests)."""
        refresh = getattr(self.deps.config.connections, "refresh", None)
        if refresh is None:
            return False
        await refresh()
        return True

    async def _stale_credentials(self, connection_id: str, run: _RunState) -> bool:
        """Whether the credentials the ATS refused were replaced since this run took them (a PATCH,
        a reconnect link: checked against the ATS when stored, docs/connections.md). This
        worker's registry polls once a second, so a delivery resumed at once after a rotation
        can start on the old key; its refusal is then no reason to pause again."""
        try:
            if not await self._reload_connections():
                return False
        except (OSError, RedisError):
            return False
        current = self.deps.config.connections.get(connection_id)
        return current is not None and current.revision != run.revision

    async def _pause(self, delivery: Delivery, error: AuthError, run: _RunState) -> str:
        now = self.deps.clock()
        info = _error_info("auth", error, now, run.step)
        stale = await self._stale_credentials(delivery.connection_id, run)
        _record(
            delivery,
            Attempt(
                number=delivery.runs,
                started_at=run.started,
                finished_at=now,
                outcome="transient" if stale else "auth",
                step=run.step,
                http_status=error.status,
                error=f"{info.message}; the credentials were replaced meanwhile, running again with the new ones"
                if stale
                else info.message,
            ),
        )
        if stale:
            move = transitions.continue_later(delivery, now)
            await self.deps.store.save(delivery, move, run_at=now, run_seq=delivery.runs)
            return "queued"
        await self.deps.store.pause_connection(delivery.connection_id, error.detail)
        await self.deps.store.save(delivery, transitions.pause(delivery, info))
        log.warning(
            "connection.paused",
            connection=delivery.connection_id,
            connector=delivery.connector,
            delivery_id=delivery.id,
            http_status=error.status,
        )
        return "paused"

    async def _dead_letter(self, delivery: Delivery, info: ErrorInfo, run: _RunState | None = None) -> str:
        now = self.deps.clock()
        _record(
            delivery,
            Attempt(
                number=delivery.runs,
                started_at=run.started if run else now,
                finished_at=now,
                outcome="permanent",
                step=info.step,
                http_status=info.http_status,
                error=info.message,
            ),
        )
        await self.deps.store.save(delivery, transitions.dead_letter(delivery, info))
        log.warning(
            "delivery.dead_lettered",
            delivery_id=delivery.id,
            connection=delivery.connection_id,
            connector=delivery.connector,
            step=info.step,
            http_status=info.http_status,
            kind=info.kind,
        )
        return "failed"


def checkpoints_view(delivery: Delivery) -> Mapping[str, str]:
    return dict(delivery.checkpoints)
