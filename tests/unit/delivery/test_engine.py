"""The delivery engine (app/delivery/engine.py) alone, through its injected deps (`EngineDeps`): a
scripted connector whose steps succeed or raise what the script says, a real DeliveryStore on the
session's Redis (no encryption: the engine never sees it), a frozen clock and a seeded rng.

What a run decides is read back from the store: status, checkpoints, attempts, the next run's
time and its job in arq's queue, the paused connection, the files kept or dropped."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from redis.asyncio import Redis

from app.config import parse_config
from app.core.catalog import READ_JOBS, READ_SCREENING_QUESTIONS, Job, Option, QuestionFormat, ScreeningQuestion
from app.core.model import AttachmentRef, Candidate, JobRef, Origin, StoredAnswer, StoredApplication, stored_encoder
from app.delivery import queue
from app.delivery.engine import CHECK_STEP, MAX_CRASH_RERUNS, DeliveryEngine, EngineDeps, refusal_code
from app.delivery.limits import ConnectionLimiter
from app.delivery.record import Delivery
from app.delivery.retry_policy import next_retry
from app.delivery.store import DeliveryStore, PlainSealer, new_delivery_id
from app.log import configure
from app.redis.keys import lease_key, payload_key
from connectors.base import (
    AttachmentRejected,
    AuthError,
    Capabilities,
    ConnectionSpec,
    Connector,
    ConnectorSettings,
    PermanentError,
    Step,
    StepContext,
    TransientError,
    attachment_step_name,
)

CONFIG = parse_config(
    {"connections": {"acme": {"connector": "factorial", "base_url": "https://ats.example", "credentials_env": "K"}}},
    {"K": "secret"},
)
POLICY = CONFIG.connections["acme"].retry
SEED = 7
NOW = 1_800_000_000.0

CV = b"%PDF-1.4\n% the candidate's CV\n" + bytes(range(256))
LETTER = b"%PDF-1.4\n% a cover letter\n" + bytes(range(128))


class WorkerKilled(BaseException):
    """Stands for kill -9 in the middle of a step: nothing the engine can catch or record."""


Outcome = str | BaseException  # "ok", or the exception the step raises


class ScriptedConnector(Connector):
    """Plans `candidate` and `application` (core), then one step per attachment. Each step takes
    the next outcome of its script ("ok" when the script is used up) and logs the call; an
    attachment step reads its file through the engine first, as a real upload would."""

    name = "scripted"
    capabilities = Capabilities()
    settings_type = ConnectorSettings

    def __init__(self, script: Mapping[str, Sequence[Outcome]] | None = None, *, attachments_first: bool = False):
        super().__init__(
            ConnectionSpec("acme", "scripted", "https://ats.example", "secret", ConnectorSettings()), http=None
        )  # type: ignore[arg-type]
        self.script = {name: list(outcomes) for name, outcomes in (script or {}).items()}
        self.attachments_first = attachments_first
        self.calls: list[str] = []
        self.uploaded: dict[str, bytes] = {}

    def plan(self, application: StoredApplication) -> list[Step]:
        core = [Step("candidate", self._step("candidate")), Step("application", self._step("application"))]
        files = [
            Step(attachment_step_name(ref), self._step(attachment_step_name(ref), ref), attachment=ref, core=False)
            for ref in application.attachments
        ]
        return files + core if self.attachments_first else core + files

    def _step(self, name: str, ref: AttachmentRef | None = None) -> Any:
        async def run(ctx: StepContext) -> str:
            self.calls.append(name)
            if ref is not None:
                self.uploaded[name] = await ctx.load_attachment(ref)
            outcomes = self.script.get(name)
            outcome = outcomes.pop(0) if outcomes else "ok"
            if isinstance(outcome, BaseException):
                raise outcome
            return f"{name}#{self.calls.count(name)}"

        return run


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def ref(index: int, name: str, data: bytes, kind: str) -> AttachmentRef:
    return AttachmentRef(
        index=index,
        name=name,
        type=kind,
        content_type="application/pdf",
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


CV_REF, LETTER_REF = ref(0, "cv.pdf", CV, "CV"), ref(1, "letter.pdf", LETTER, "COVER_LETTER")
CV_STEP, LETTER_STEP = attachment_step_name(CV_REF), attachment_step_name(LETTER_REF)


def stored_application(
    *, files: bool = False, email: str = "ana.ruiz@example.org", answers: list[StoredAnswer] | None = None
) -> StoredApplication:
    return StoredApplication(
        connection_id="acme",
        candidate=Candidate(first_name="Ana", last_name="Ruiz", email_address=email, phone_number="+34 600 111 222"),
        application=JobRef(job_id="2001"),
        origin=Origin(channel="api", received_at=NOW),
        attachments=[CV_REF, LETTER_REF] if files else [],
        screening_question_answers=answers or [],
    )


@dataclass
class Rig:
    store: DeliveryStore
    clock: Clock
    connector: ScriptedConnector
    engine: DeliveryEngine

    async def delivery(
        self,
        *,
        files: bool = False,
        email: str = "ana.ruiz@example.org",
        answers: list[StoredAnswer] | None = None,
        unchecked: bool = False,
    ) -> Delivery:
        """A delivery as intake stores it: state, payload, files and its first job, in one call;
        `unchecked`: intake could not read the job's questions (the worker checks them)."""
        delivery = Delivery(
            id=new_delivery_id(),
            connection_id="acme",
            connector="scripted",
            status="queued",
            created_at=self.clock.now,
            updated_at=self.clock.now,
            idempotency_key_hash=uuid.uuid4().hex,
            channel="api",
            job_id="2001",
            next_attempt_at=self.clock.now,
            check_answers_before_write=unchecked,
        )
        payload = stored_encoder.encode(stored_application(files=files, email=email, answers=answers))
        result = await self.store.create(
            delivery, payload, [CV, LETTER] if files else [], delivery.idempotency_key_hash
        )
        assert result.created
        return await self.get(delivery.id)

    async def get(self, delivery_id: str) -> Delivery:
        delivery = await self.store.get(delivery_id)
        assert delivery is not None
        return delivery

    async def run(self, delivery: Delivery) -> str:
        """Run the delivery's pending job, as the worker would."""
        current = await self.get(delivery.id)
        return await self.engine.run(delivery.id, job_id=current.job)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def store(redis: Redis) -> DeliveryStore:
    return DeliveryStore(redis, sealer=PlainSealer())


def rig(store: DeliveryStore, connector: ScriptedConnector) -> Rig:
    clock = Clock()

    async def load_attachment(delivery: Delivery, attachment: AttachmentRef) -> bytes:
        data = await store.load_file(delivery.id, attachment.index)
        assert data is not None, f"file {attachment.index} of {delivery.id} is gone"
        return data

    deps = EngineDeps(
        store=store,
        config=CONFIG,
        connector_for=lambda connection_id: connector,
        load_attachment=load_attachment,
        clock=clock,
        rng=random.Random(SEED),
    )
    return Rig(store, clock, connector, DeliveryEngine(deps))


# -- checkpoints -------------------------------------------------------------------------------


async def test_a_delivery_runs_every_step_once_and_drops_the_files_the_ats_holds(store: DeliveryStore) -> None:
    r = rig(store, ScriptedConnector())
    delivery = await r.delivery(files=True)
    assert await r.run(delivery) == "delivered"
    done = await r.get(delivery.id)
    assert r.connector.calls == ["candidate", "application", CV_STEP, LETTER_STEP]
    assert r.connector.uploaded == {CV_STEP: CV, LETTER_STEP: LETTER}  # the bytes intake stored
    assert done.checkpoints == {
        "candidate": "candidate#1",
        "application": "application#1",
        CV_STEP: f"{CV_STEP}#1",
        LETTER_STEP: f"{LETTER_STEP}#1",
    }
    assert done.status == "delivered" and done.delivered_at == NOW and done.job is None and done.runs == 1
    assert [a.confirmed for a in done.attachments] == [True, True]
    assert await store.load_file(delivery.id, 0) is None and await store.load_file(delivery.id, 1) is None
    assert await store.list_ids("delivered") == [delivery.id]


async def test_checkpointed_steps_are_skipped_on_a_rerun(store: DeliveryStore) -> None:
    r = rig(store, ScriptedConnector({"application": [TransientError("ATS busy: HTTP 503", status=503)]}))
    delivery = await r.delivery()
    assert await r.run(delivery) == "retry_scheduled"
    assert (await r.get(delivery.id)).checkpoints == {"candidate": "candidate#1"}
    assert await r.run(delivery) == "delivered"
    assert r.connector.calls == ["candidate", "application", "application"]  # the candidate was not sent again
    done = await r.get(delivery.id)
    assert done.checkpoints == {"candidate": "candidate#1", "application": "application#2"}
    assert done.runs == 2 and done.failed_attempts == 1


async def test_a_delivery_checkpointed_elsewhere_runs_only_what_is_left(store: DeliveryStore) -> None:
    r = rig(store, ScriptedConnector())
    delivery = await r.delivery()
    delivery.checkpoints = {"candidate": "existing-42"}  # e.g. an operator retry of a half-done delivery
    await store.save(delivery)  # no status change
    assert await r.run(delivery) == "delivered"
    assert r.connector.calls == ["application"]
    assert (await r.get(delivery.id)).checkpoints == {"candidate": "existing-42", "application": "application#1"}


class ReadsFirstConnector(ScriptedConnector):
    """Two steps that only read (`writes=False`), then the two that write; each step notes the
    checkpoints Redis holds (not the engine's memory) as it starts."""

    def __init__(self, store: DeliveryStore, script: Mapping[str, Sequence[Outcome]] | None = None) -> None:
        super().__init__(script)
        self.store = store
        self.delivery_id = ""  # the delivery whose stored state the steps look at
        self.stored_at_start: dict[str, set[str]] = {}

    def plan(self, application: StoredApplication) -> list[Step]:
        names = [("company", False), ("source", False), ("candidate", True), ("application", True)]
        return [Step(name, self._noting(name), writes=writes) for name, writes in names]

    def _noting(self, name: str) -> Any:
        inner = self._step(name)

        async def run(ctx: StepContext) -> str:
            stored = await self.store.get(self.delivery_id)
            assert stored is not None
            self.stored_at_start[name] = set(stored.checkpoints)
            return str(await inner(ctx))

        return run


class CountingStore(DeliveryStore):
    """Counts the state writes (`save`) a run makes."""

    saves = 0

    async def save(self, delivery: Delivery, move: Any = None, **kwargs: Any) -> None:
        self.saves += 1
        await super().save(delivery, move, **kwargs)

    async def begin_run(self, delivery: Delivery, move: Any, limit: Any) -> tuple[int, Any]:
        self.saves += 1
        return await super().begin_run(delivery, move, limit)


async def test_a_writing_steps_checkpoint_is_stored_before_the_next_step_and_reads_ride_along(
    redis: Redis,
) -> None:
    """DESIGN.md §4.3: the remote id a write got is durable before the next step can write; a
    step that only reads has its checkpoint written with the next one (bench P2: 4 -> 1 round trips)."""
    store = CountingStore(redis, sealer=PlainSealer())
    connector = ReadsFirstConnector(store)
    r = rig(store, connector)
    delivery = await r.delivery()
    connector.delivery_id = delivery.id
    assert await r.run(delivery) == "delivered"
    assert connector.stored_at_start == {
        "company": set(),
        "source": set(),  # company's held back: it only read
        "candidate": set(),  # both reads still held back: nothing was written yet
        "application": {"company", "source", "candidate"},  # the candidate's id first, reads with it
    }
    done = await r.get(delivery.id)
    assert set(done.checkpoints) == {"company", "source", "candidate", "application"}  # the last with the outcome
    assert store.saves == 3  # start_run (with the payload's read), the one checkpoint write, delivered
    assert [a.step for a in done.attempts if a.step] == ["company", "source", "candidate", "application"]


async def test_held_back_checkpoints_are_stored_with_a_failed_runs_outcome(redis: Redis) -> None:
    store = DeliveryStore(redis, sealer=PlainSealer())
    connector = ReadsFirstConnector(store, {"candidate": [TransientError("ATS busy: HTTP 503", status=503)]})
    r = rig(store, connector)
    delivery = await r.delivery()
    connector.delivery_id = delivery.id
    assert await r.run(delivery) == "retry_scheduled"
    assert set((await r.get(delivery.id)).checkpoints) == {"company", "source"}
    assert await r.run(delivery) == "delivered"
    assert connector.calls == ["company", "source", "candidate", "candidate", "application"]


async def test_a_worker_killed_after_a_write_resumes_after_it(redis: Redis) -> None:
    store = DeliveryStore(redis, sealer=PlainSealer())
    connector = ReadsFirstConnector(store, {"application": [WorkerKilled()]})
    r = rig(store, connector)
    delivery = await r.delivery()
    connector.delivery_id = delivery.id
    with pytest.raises(WorkerKilled):
        await r.run(delivery)
    assert set((await r.get(delivery.id)).checkpoints) == {"company", "source", "candidate"}
    assert await r.run(delivery) == "delivered"
    assert connector.calls == ["company", "source", "candidate", "application", "application"]


async def test_a_delivery_logs_one_line_at_info_and_its_steps_at_debug(store: DeliveryStore) -> None:
    """The per-step JSON lines were a tenth of the worker's CPU in bench P2: at info, a delivery
    that went through is its outcome line only, which sums up the run."""
    for level, expected in (("INFO", []), ("DEBUG", ["candidate", "application"])):
        stream = io.StringIO()
        configure(level, stream=stream)
        try:
            r = rig(store, ScriptedConnector())
            delivery = await r.delivery()
            assert await r.run(delivery) == "delivered"
        finally:
            configure("WARNING")
        events = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [e["step"] for e in events if e["event"] == "delivery.step"] == expected
        assert all(e["level"] == "debug" for e in events if e["event"] == "delivery.step")
        (summary,) = [e for e in events if e["event"] == "delivery.delivered"]
        assert summary["level"] == "info" and summary["steps"] == 2 and summary["delivery_id"] == delivery.id
        assert {"connection", "connector", "attempt", "latency_ms"} <= summary.keys()


async def test_a_failed_step_still_logs_its_line_at_info(store: DeliveryStore) -> None:
    stream = io.StringIO()
    configure("INFO", stream=stream)
    try:
        r = rig(store, ScriptedConnector({"application": [TransientError("ATS busy: HTTP 503", status=503)]}))
        assert await r.run(await r.delivery()) == "retry_scheduled"
    finally:
        configure("WARNING")
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(e["step"], e["status"]) for e in events if e["event"] == "delivery.step"] == [
        ("application", "TransientError")
    ]
    assert [e["event"] for e in events if e["event"] != "delivery.step"] == ["delivery.retry_scheduled"]


async def test_a_run_reads_its_payload_with_its_first_write_and_a_gone_one_is_a_dead_letter(
    store: DeliveryStore, redis: Redis
) -> None:
    r = rig(store, ScriptedConnector())
    delivery = await r.delivery()
    await redis.delete(payload_key(delivery.id))
    await redis.script_flush()  # as after a Redis restart: the batch's script is loaded again
    assert await r.run(delivery) == "failed"
    state = await r.get(delivery.id)
    assert state.last_error is not None and state.last_error.message == "the stored payload is gone (purged or erased)"
    assert r.connector.calls == []


async def test_the_connections_slot_goes_back_with_the_lease_in_one_round_trip(
    store: DeliveryStore, redis: Redis
) -> None:
    r = rig(store, ScriptedConnector())
    limiter = r.engine.deps.limiter = ConnectionLimiter(redis, 50.0)
    for restarted in (False, True):
        delivery = await r.delivery()
        if restarted:
            await redis.script_flush()  # the lease's script is loaded again
        assert await r.run(delivery) == "delivered"
        assert await limiter.in_flight("acme") == 0
        assert not await redis.exists(lease_key(delivery.id))


class RoundTrips:
    """Counts the requests a client sends to Redis (a pipeline or a script is one)."""

    def __init__(self, redis: Redis) -> None:
        self.count = 0
        pool = redis.connection_pool
        make = pool.make_connection

        def counted() -> Any:
            connection = make()
            send = connection.send_packed_command

            async def send_counted(command: Any, check_health: bool = True) -> None:
                self.count += 1
                await send(command, check_health)

            connection.send_packed_command = send_counted  # type: ignore[method-assign]
            return connection

        pool.make_connection = counted  # type: ignore[method-assign]


async def test_a_delivered_run_takes_four_round_trips_with_the_limits_checked(redis: Redis) -> None:
    """bench P2: the lease with the state; the pause check, the limits, the run's start and the
    payload; the one checkpoint write (the candidate, before the application); the outcome with
    the lease and the slot given back. (Seven before the pause check and the limits rode along.)"""
    await redis.connection_pool.disconnect()
    trips = RoundTrips(redis)
    store = DeliveryStore(redis, sealer=PlainSealer())
    r = rig(store, ScriptedConnector())
    limiter = r.engine.deps.limiter = ConnectionLimiter(redis, 50.0)
    delivery = await r.delivery()
    job = (await r.get(delivery.id)).job
    before = trips.count
    assert await r.engine.run(delivery.id, job_id=job) == "delivered"
    assert trips.count - before == 4
    assert await limiter.in_flight("acme") == 0
    assert not await redis.exists(lease_key(delivery.id))


async def test_a_connection_at_its_limit_defers_the_run_and_writes_nothing_else(
    store: DeliveryStore, redis: Redis
) -> None:
    """The limits are checked inside the run's first write: a refused run leaves the state as it
    was read, no run counted and no slot taken, and comes back later with no attempt spent."""
    r = rig(store, ScriptedConnector())
    limiter = r.engine.deps.limiter = ConnectionLimiter(redis, 50.0)
    full = [await limiter.acquire(CONFIG.connections["acme"]) for _ in range(CONFIG.connections["acme"].concurrency)]
    delivery = await r.delivery()
    assert await r.run(delivery) == "deferred"
    state = await r.get(delivery.id)
    assert (state.status, state.runs, state.failed_attempts, state.attempts) == ("queued", 0, 0, [])
    assert state.job is not None and state.job != delivery.job and state.next_attempt_at is not None
    assert await limiter.in_flight("acme") == len(full)
    assert r.connector.calls == []
    assert not await redis.exists(lease_key(delivery.id))
    for lease in full:
        await limiter.release(lease)  # type: ignore[arg-type]
    assert await r.engine.run(delivery.id, job_id=state.job) == "delivered"


async def test_a_paused_connection_is_checked_before_its_limits(store: DeliveryStore, redis: Redis) -> None:
    r = rig(store, ScriptedConnector())
    limiter = r.engine.deps.limiter = ConnectionLimiter(redis, 50.0)
    await store.pause_connection("acme", "credentials refused: HTTP 401")
    delivery = await r.delivery()
    assert await r.run(delivery) == "paused"
    state = await r.get(delivery.id)
    assert (state.status, state.runs, state.attempts) == ("paused", 0, [])
    assert (
        state.last_error is not None and state.last_error.message == "connection paused: credentials refused: HTTP 401"
    )
    assert await limiter.in_flight("acme") == 0  # no slot taken (nor a rate token spent)
    assert r.connector.calls == []


async def test_a_crashed_run_on_a_paused_connection_is_paused_not_dead_lettered(store: DeliveryStore) -> None:
    """The pause comes first, as before the checks rode along with the run's start: a delivery
    whose runs died MAX_CRASH_RERUNS times waits paused (its crash not recorded) rather than fails."""
    r = rig(store, ScriptedConnector({"candidate": [WorkerKilled()] * MAX_CRASH_RERUNS}))
    delivery = await r.delivery()
    for _ in range(MAX_CRASH_RERUNS):
        with pytest.raises(WorkerKilled):
            await r.run(delivery)
    await store.pause_connection("acme", "credentials refused: HTTP 401")
    assert await r.run(delivery) == "paused"
    state = await r.get(delivery.id)
    assert [a.outcome for a in state.attempts].count("crash") == MAX_CRASH_RERUNS - 1


class UnloadableConnections(dict[str, Any]):
    """A registry (app/connections/registry.py) that holds `acme` stored but cannot build it."""

    unloadable = {"acme": "connections.acme.a_newer_setting: unknown key"}


async def test_a_crashed_run_whose_connection_became_unloadable_records_the_crash_and_waits(
    store: DeliveryStore,
) -> None:
    r = rig(store, ScriptedConnector({"candidate": [WorkerKilled()]}))
    delivery = await r.delivery()
    with pytest.raises(WorkerKilled):
        await r.run(delivery)  # left delivering, as a killed worker leaves it
    r.engine.deps.config = dataclasses.replace(CONFIG, connections=UnloadableConnections())
    assert await r.run(delivery) == "deferred"
    state = await r.get(delivery.id)
    assert state.status == "queued" and state.failed_attempts == 0
    assert [a.outcome for a in state.attempts] == ["crash"]  # the died run, on this path too
    assert state.last_error is not None and state.last_error.code == "PLATFORM.UNAVAILABLE"


# -- outcomes ----------------------------------------------------------------------------------


async def test_a_transient_failure_schedules_a_retry_at_the_time_the_policy_gives(store: DeliveryStore) -> None:
    error = TransientError("ATS busy: HTTP 503", status=503)
    r = rig(store, ScriptedConnector({"candidate": [error]}))
    delivery = await r.delivery()
    assert await r.run(delivery) == "retry_scheduled"
    expected = next_retry(POLICY, 1, error, random.Random(SEED))  # the engine's first draw from its rng
    assert expected.delay_s is not None and 15 * 0.8 <= expected.delay_s <= 15 * 1.2
    state = await r.get(delivery.id)
    assert state.status == "retry_scheduled" and state.failed_attempts == 1
    assert state.next_attempt_at == NOW + expected.delay_s  # exactly: same clock, same draw
    assert state.last_error is not None
    assert (state.last_error.kind, state.last_error.step, state.last_error.http_status) == (
        "transient",
        "candidate",
        503,
    )
    last = state.attempts[-1]
    assert (last.outcome, last.retry_reason, last.next_attempt_at) == (
        "transient",
        expected.reason,
        state.next_attempt_at,
    )
    # the next run is queued in arq for that time, under a new job id (the first one is now stale)
    assert state.job is not None and state.job != queue.job_id(delivery.id, 0)
    assert await store.redis.zscore(queue.QUEUE_NAME, state.job) == int(state.next_attempt_at * 1000)


@pytest.mark.parametrize(
    ("error", "delay", "reason"),
    [
        (TransientError("slow down: HTTP 429", status=429), 60.0, "floor 60s for 429/timeout"),
        (TransientError("read timeout", timeout=True), 60.0, "floor 60s for 429/timeout"),
        (TransientError("down: HTTP 503", status=503, retry_after=7200), 7200.0, "Retry-After 7200s"),
        (TransientError("down: HTTP 503", status=503, retry_after=30 * 3600), 6 * 3600.0, "Retry-After 21600s"),
    ],
)
async def test_429_timeouts_and_retry_after_set_the_next_attempt(
    store: DeliveryStore, error: TransientError, delay: float, reason: str
) -> None:
    r = rig(store, ScriptedConnector({"candidate": [error]}))
    delivery = await r.delivery()
    assert await r.run(delivery) == "retry_scheduled"
    state = await r.get(delivery.id)
    assert state.next_attempt_at == NOW + delay
    assert state.attempts[-1].retry_reason == reason


async def test_the_last_transient_failure_of_the_schedule_is_a_dead_letter(store: DeliveryStore) -> None:
    r = rig(store, ScriptedConnector({"candidate": [TransientError("ATS busy: HTTP 503", status=503)]}))
    delivery = await r.delivery()
    delivery.failed_attempts = POLICY.max_attempts - 1  # every retry of the schedule already spent
    await store.save(delivery)  # no status change
    assert await r.run(delivery) == "failed"
    state = await r.get(delivery.id)
    assert state.last_error is not None and state.last_error.kind == "exhausted"
    assert state.last_error.message.startswith(f"gave up after {POLICY.max_attempts} attempts")
    assert state.next_attempt_at is None and state.job is None


async def test_a_permanent_failure_is_dead_lettered_at_once_with_its_reason(store: DeliveryStore) -> None:
    r = rig(store, ScriptedConnector({"application": [PermanentError("job posting archived: HTTP 422", status=422)]}))
    delivery = await r.delivery()
    assert await r.run(delivery) == "failed"
    state = await r.get(delivery.id)
    assert state.status == "failed" and state.job is None and state.next_attempt_at is None
    assert state.last_error is not None
    assert (state.last_error.kind, state.last_error.step, state.last_error.http_status, state.last_error.at) == (
        "permanent",
        "application",
        422,
        NOW,
    )
    assert state.last_error.message == "job posting archived: HTTP 422"
    assert state.failed_attempts == 0  # no retry spent: there is none to come
    assert state.checkpoints == {"candidate": "candidate#1"}  # kept for an operator retry
    assert await store.list_ids("failed") == [delivery.id] and await store.list_ids("delivering") == []
    assert r.connector.calls == ["candidate", "application"]


async def test_recorded_errors_are_scrubbed_of_the_candidates_values(store: DeliveryStore) -> None:
    echo = PermanentError("candidate Ana Ruiz <ana.ruiz@example.org> +34 600 111 222 exists: HTTP 422", status=422)
    r = rig(store, ScriptedConnector({"candidate": [echo]}))
    delivery = await r.delivery()
    assert await r.run(delivery) == "failed"
    state = await r.get(delivery.id)
    assert state.last_error is not None
    message = state.last_error.message
    for value in ("Ana", "Ruiz", "ana.ruiz", "example.org", "600 111 222"):
        assert value not in message, message
    assert message.endswith("exists: HTTP 422") and "<email>" in message
    assert all("ana.ruiz" not in (a.error or "") for a in state.attempts)


async def test_an_auth_failure_pauses_the_delivery_and_its_connection(store: DeliveryStore) -> None:
    r = rig(store, ScriptedConnector({"candidate": [AuthError("credentials refused: HTTP 401", status=401)]}))
    first, second = await r.delivery(), await r.delivery(email="ben@example.org")
    assert await r.run(first) == "paused"
    state = await r.get(first.id)
    assert state.status == "paused" and state.job is None and state.failed_attempts == 0  # no attempt spent
    assert state.last_error is not None and (state.last_error.kind, state.last_error.http_status) == ("auth", 401)
    assert await store.paused_reason("acme") == "credentials refused: HTTP 401"
    # the connection is paused for every delivery: the next one is not even tried
    assert await r.run(second) == "paused"
    assert r.connector.calls == ["candidate"]
    assert sorted(await store.list_ids("paused")) == sorted([first.id, second.id])


async def test_a_failed_attachment_does_not_block_the_core_steps(store: DeliveryStore) -> None:
    rejected = AttachmentRejected("file type refused: HTTP 415", status=415)
    r = rig(store, ScriptedConnector({CV_STEP: [rejected]}, attachments_first=True))
    delivery = await r.delivery(files=True)
    assert await r.run(delivery) == "failed"
    # core steps first, whatever the plan's order; the other file still went
    assert r.connector.calls == ["candidate", "application", CV_STEP, LETTER_STEP]
    state = await r.get(delivery.id)
    assert set(state.checkpoints) == {"candidate", "application", LETTER_STEP}
    assert state.last_error is not None
    assert (state.last_error.kind, state.last_error.step) == ("attachment", CV_STEP)
    files = {a.step: a for a in state.attachments}
    cv, letter = files[CV_STEP], files[LETTER_STEP]
    assert (cv.type, cv.confirmed, cv.failures, cv.last_error) == ("CV", False, 1, "file type refused: HTTP 415")
    assert (letter.type, letter.confirmed, letter.failures) == ("COVER_LETTER", True, 0)
    assert [w.code for w in state.warnings] == ["attachment_failed"]
    assert await store.load_file(delivery.id, 0) == CV  # the refused file is kept for a retry
    assert await store.load_file(delivery.id, 1) is None  # the ATS holds the other one


async def test_a_transient_attachment_failure_retries_only_the_attachment(store: DeliveryStore) -> None:
    r = rig(store, ScriptedConnector({CV_STEP: [TransientError("upload timed out", timeout=True)]}))
    delivery = await r.delivery(files=True)
    assert await r.run(delivery) == "retry_scheduled"
    state = await r.get(delivery.id)
    assert state.attachment_failures == 1 and state.failed_attempts == 0  # its own schedule
    assert state.last_error is not None and state.last_error.step == CV_STEP
    assert state.next_attempt_at == NOW + POLICY.slow_floor_s
    assert await r.run(delivery) == "delivered"
    assert r.connector.calls == ["candidate", "application", CV_STEP, LETTER_STEP, CV_STEP]


# -- crashes and stale jobs ----------------------------------------------------------------------


async def test_a_crashed_run_is_counted_and_the_rerun_resumes(store: DeliveryStore) -> None:
    r = rig(store, ScriptedConnector({"application": [WorkerKilled()]}))
    delivery = await r.delivery()
    with pytest.raises(WorkerKilled):
        await r.run(delivery)
    assert (await r.get(delivery.id)).status == "delivering"  # what a dead worker leaves behind
    assert await r.run(delivery) == "delivered"  # arq runs the same job again
    state = await r.get(delivery.id)
    assert [a.outcome for a in state.attempts if a.outcome != "ok"] == ["crash"]
    assert state.runs == 2 and state.failed_attempts == 0
    assert r.connector.calls == ["candidate", "application", "application"]


async def test_consecutive_crashes_are_dead_lettered_after_max_crash_reruns(store: DeliveryStore) -> None:
    r = rig(store, ScriptedConnector({"candidate": [WorkerKilled()] * MAX_CRASH_RERUNS}))
    delivery = await r.delivery()
    for _ in range(MAX_CRASH_RERUNS):
        with pytest.raises(WorkerKilled):
            await r.run(delivery)
    assert await r.run(delivery) == "failed"
    assert r.connector.calls == ["candidate"] * MAX_CRASH_RERUNS  # the last run tried nothing
    state = await r.get(delivery.id)
    assert state.last_error is not None and state.last_error.kind == "crash"
    assert state.last_error.message == f"the worker died {MAX_CRASH_RERUNS} times in a row running this delivery"
    assert [a.outcome for a in state.attempts].count("crash") == MAX_CRASH_RERUNS


async def test_a_stale_or_busy_job_runs_nothing(store: DeliveryStore) -> None:
    r = rig(store, ScriptedConnector())
    delivery = await r.delivery()
    assert await r.engine.run(delivery.id, job_id=f"{delivery.id}:superseded") == "stale"
    token = await store.acquire_lease(delivery.id, 30)  # another worker holds the lease
    assert token is not None
    assert await r.run(delivery) == "busy"
    await store.release_lease(delivery.id, token)
    assert r.connector.calls == []
    untouched = await r.get(delivery.id)
    assert (untouched.status, untouched.runs, untouched.attempts) == ("queued", 0, [])
    job = untouched.job
    assert await r.engine.run(delivery.id, job_id=job) == "delivered"
    assert await r.engine.run(delivery.id, job_id=job) == "stale"  # a finished delivery has no pending job
    assert r.connector.calls == ["candidate", "application"]


# -- the answers' check before any write, and the codes of dead letters -------------------------

QUESTIONS = [
    ScreeningQuestion(
        id="q1",
        remote_id="q1",
        title="Region",
        required=True,
        format=QuestionFormat(type="SINGLE_SELECT", options=[Option(id="o1", remote_id="o1", name="North")]),
    ),
    ScreeningQuestion(id="q2", remote_id="q2", title="Years", format=QuestionFormat(type="NUMBER", min=0, max=40)),
]


class ReadingConnector(ScriptedConnector):
    """The scripted connector that also reads its job (open unless `status` says otherwise) and
    the job's questions, or raises what `read_error` says; it counts its reads."""

    capabilities = Capabilities(reads=frozenset({READ_JOBS, READ_SCREENING_QUESTIONS}))

    def __init__(self, *, status: str = "OPEN", read_error: BaseException | None = None) -> None:
        super().__init__()
        self.status, self.read_error, self.reads = status, read_error, 0

    async def get_job(self, job_id: str) -> Job | None:
        self.reads += 1
        if self.read_error is not None:
            raise self.read_error
        return Job(id=job_id, remote_id=job_id, name="Nurse", status=self.status)  # type: ignore[arg-type]

    async def job_questions(self, job_id: str) -> list[ScreeningQuestion]:
        return QUESTIONS


async def test_unchecked_answers_that_fail_are_a_dead_letter_naming_the_question_before_any_write(
    store: DeliveryStore,
) -> None:
    r = rig(store, ReadingConnector())
    delivery = await r.delivery(answers=[StoredAnswer("q1", "o9"), StoredAnswer("q2", 99)], unchecked=True)
    assert await r.run(delivery) == "failed"
    state = await r.get(delivery.id)
    assert state.last_error is not None and state.last_error.step == CHECK_STEP
    assert state.last_error.code == "PLATFORM.INPUT_INVALID"
    assert "question q1: is not one of the question's option ids" in state.last_error.message
    assert "question q2: must be at most 40" in state.last_error.message
    assert r.connector.calls == []  # nothing was written to the ATS


async def test_unchecked_answers_that_fit_are_sent_without_the_unknown_ones(store: DeliveryStore) -> None:
    sent: list[StoredApplication] = []
    connector = ReadingConnector()
    plan = connector.plan
    connector.plan = lambda application: (sent.append(application), plan(application))[1]  # type: ignore[method-assign]
    r = rig(store, connector)
    delivery = await r.delivery(answers=[StoredAnswer("q1", "o1"), StoredAnswer("zz", "x")], unchecked=True)
    assert await r.run(delivery) == "delivered"
    state = await r.get(delivery.id)
    assert [a.question_id for a in sent[-1].screening_question_answers] == ["q1"]
    assert [w.code for w in state.warnings] == ["answer_not_sent"] and "zz" in state.warnings[0].message
    assert state.check_answers_before_write is False and r.connector.calls == ["candidate", "application"]


async def test_a_checked_delivery_is_not_read_again(store: DeliveryStore) -> None:
    r = rig(store, ReadingConnector())
    delivery = await r.delivery(answers=[StoredAnswer("q1", "o9")])  # checked at intake
    assert await r.run(delivery) == "delivered"
    assert isinstance(r.connector, ReadingConnector) and r.connector.reads == 0


@pytest.mark.parametrize(
    ("connector", "status", "code"),
    [
        (ReadingConnector(status="CLOSED"), "failed", "ATS.JOB_CLOSED"),
        (ReadingConnector(read_error=TransientError("down: HTTP 503", status=503)), "retry_scheduled", None),
        (ReadingConnector(read_error=AuthError("refused: HTTP 401", status=401)), "paused", None),
    ],
)
async def test_the_check_before_write_meets_a_closed_job_or_an_unreachable_ats(
    store: DeliveryStore, connector: ReadingConnector, status: str, code: str | None
) -> None:
    r = rig(store, connector)
    delivery = await r.delivery(answers=[StoredAnswer("q1", "o1")], unchecked=True)
    assert await r.run(delivery) == status
    state = await r.get(delivery.id)
    assert state.last_error is not None and state.last_error.step == CHECK_STEP
    assert r.connector.calls == []
    if code is not None:
        assert state.last_error.code == code


@pytest.mark.parametrize(
    ("kind", "error", "code"),
    [
        ("permanent", PermanentError("bad field: HTTP 422", status=422), "REMOTE.INPUT_INVALID"),
        ("permanent", PermanentError("bad request: HTTP 400", status=400), "REMOTE.INPUT_INVALID"),
        ("permanent", PermanentError("Vacancy is closed", status=422), "ATS.JOB_CLOSED"),
        ("permanent", PermanentError("gone: HTTP 404", status=404), "REMOTE.UNKNOWN_HTTP_ERROR"),
        ("permanent", PermanentError("Laura takes no attachments"), "PLATFORM.INPUT_INVALID"),
        ("auth", AuthError("refused: HTTP 401", status=401), "INTEGRATION.AUTHENTICATION_INVALID"),
        ("exhausted", TransientError("down: HTTP 503", status=503), "REMOTE.SERVICE_UNAVAILABLE"),
        ("exhausted", TransientError("slow down: HTTP 429", status=429), "REMOTE.RATE_LIMIT_EXCEEDED"),
        ("crash", "worker died", "PLATFORM.UNKNOWN_ERROR"),
    ],
)
def test_refusals_map_to_kombos_codes(kind: str, error: BaseException | str, code: str) -> None:
    assert refusal_code(kind, error) == code


async def test_a_dead_letter_records_the_code_of_the_ats_refusal(store: DeliveryStore) -> None:
    r = rig(store, ScriptedConnector({"application": [PermanentError("field refused: HTTP 422", status=422)]}))
    delivery = await r.delivery()
    assert await r.run(delivery) == "failed"
    state = await r.get(delivery.id)
    assert state.last_error is not None and state.last_error.code == "REMOTE.INPUT_INVALID"
