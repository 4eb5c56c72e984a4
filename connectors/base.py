"""The connector contract: what the delivery engine may ask of an ATS connector.

A connector speaks one ATS's API and nothing else. It never sleeps, retries, queues or touches
Redis: it turns the canonical application into a *plan* of named steps, and each step either
returns the remote id it produced or raises one of the errors below. The engine stores each
returned id (a checkpoint) before running the next step and skips steps already checkpointed, so a
re-run after a crash or a retry resumes where the last one stopped. A connector imports nothing of
the relay but `app.core` (the canonical model, PII scrubbing, plugin loading).

Error hierarchy (the engine maps these to the retry policy: docs/operations.md, "Retry policy"):

    ConnectorError
     ├── TransientError     retry later (network, timeout, 408/425/429/5xx); may carry retry_after
     │    └── UnknownOutcome   the request may have been applied (timeout or drop after sending):
     │                         the step must look the result up before re-sending
     ├── PermanentError     dead-letter now (400/404/410/413/422 ...), with the ATS's reason
     │    └── AttachmentRejected  a file was refused: the engine completes the rest and runs the
     │                            full-attachment retry
     └── AuthError          credentials refused after one refresh: pause the connection

One ATS is one file, ``connectors/<ats>.py``, documented in ``docs/connectors/<ats>.md``, with
these section banners (``# -- <Name> ---``), in this order, present even when a section is short:

    # -- Settings           the `<Ats>Settings` Struct (a `ConnectorSettings`) and its defaults
    # -- Wire format        pure: the ATS's request and answer shapes, error decoding (no I/O)
    # -- Answer encoding    pure: canonical screening answers -> the ATS's values (or checks)
    # -- Connector          the `Connector` subclass (name, capabilities, settings_type,
                            __init__), inside it, indented:
        # -- Transport        auth, sending one call, pagination or sessions, close()
        # -- Intake check     check(), check_answers()
        # -- Plan             plan()
        # -- Steps            the delivery's step functions, in plan order
        # -- Actions          action_plan() and the steps only actions use
        # -- Reads            list_jobs, get_job, job_questions, list_stages, list_sources (Kombo's
                              shapes, app/core/catalog.py), application_status,
                              candidate_attachments, passthrough
    # -- Helpers            small private functions

Shared HTTP helpers (the TTL cache for slow-changing reads, the REST passthrough) are in
connectors/http.py.
"""

from __future__ import annotations

import email.utils
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar
from urllib.parse import unquote, urlsplit

import httpx
import msgspec

from app.core.catalog import Job, JobPage, JobQuery, ScreeningQuestion, Source, Stage
from app.core.model import AttachmentRef, StoredApplication

# -- Errors ----------------------------------------------------------------------------------------


class ConnectorError(Exception):
    """Base of every error a connector raises; `detail` must never contain PII."""

    def __init__(self, detail: str, *, status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail[:500]
        self.status = status


class TransientError(ConnectorError):
    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        timeout: bool = False,
    ) -> None:
        super().__init__(detail, status=status)
        self.retry_after = retry_after
        self.timeout = timeout


class UnknownOutcome(TransientError):
    """Sent, but no answer: the ATS may or may not have applied it."""


class PermanentError(ConnectorError):
    pass


class AttachmentRejected(PermanentError):
    pass


class AuthError(ConnectorError):
    pass


ACTION_ADD_ATTACHMENT_TO_APPLICATION = "add_attachment_to_application"
ACTION_ADD_ATTACHMENT_TO_CANDIDATE = "add_attachment_to_candidate"
ACTION_ADD_RESULT_LINK_TO_APPLICATION = "add_result_link_to_application"
ACTION_ADD_RESULT_LINK_TO_CANDIDATE = "add_result_link_to_candidate"
ACTION_MOVE_APPLICATION_TO_STAGE = "move_application_to_stage"

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # delta-seconds are ASCII digits ("²".isdigit() too)
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def error_for_response(response: httpx.Response, detail: str) -> ConnectorError:
    """Classify a non-2xx answer into the error the retry policy understands."""
    status = response.status_code
    text = f"{detail}: HTTP {status}"
    if status in RETRYABLE_STATUSES or status >= 500:
        return TransientError(text, status=status, retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status in AUTH_STATUSES:
        return AuthError(text, status=status)
    return PermanentError(text, status=status)


def answer_json(response: httpx.Response, what: str, *, wrote: bool) -> Any:
    """A 2xx answer's JSON. A body that is none (an HTML page, cut short) is no answer: after a
    write its outcome is unknown (the retry's lookup decides), and a read is safe to repeat."""
    try:
        return response.json()
    except ValueError:
        detail = f"{what}: the ATS answered HTTP {response.status_code} with a body that is not JSON"
        raise (UnknownOutcome(detail) if wrote else TransientError(detail)) from None


def record_id(value: Any, what: str) -> str:
    """A record's id as an ATS answer gives it: a non-empty printable string or a positive
    integer. Anything else (null, "", an object, true) is no id: saved, it would send the next
    steps to a record that does not exist; after a create the outcome is unknown instead, and
    the retry's lookup finds the record if it was made (docs/connectors/)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.strip() and len(value) <= 200 and value.isprintable():
        return value.strip()
    raise UnknownOutcome(f"{what}: the ATS answered without a usable id")


def error_for_transport(exc: httpx.HTTPError, detail: str, *, sent: bool) -> TransientError:
    """Network failures are transient; a failure after the request left is an unknown outcome."""
    name = type(exc).__name__
    is_timeout = isinstance(exc, httpx.TimeoutException)
    if sent and not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return UnknownOutcome(f"{detail}: {name}", timeout=is_timeout)
    return TransientError(f"{detail}: {name}", timeout=is_timeout)


def confined_url(base_url: str, path: str) -> str:
    """`path` joined under `base_url`, or PermanentError if it could leave it: no scheme or host,
    no ``.``/``..`` segments (also percent-encoded, once or twice), no backslash, control
    characters, query or fragment (the query travels apart). The API passthrough uses it."""
    if not isinstance(path, str) or not path.strip():
        raise PermanentError("passthrough path must be a relative API path")
    decoded = unquote(unquote(path))
    if "\\" in decoded or "?" in path or "#" in path or any(ord(ch) <= 32 for ch in decoded):
        raise PermanentError("passthrough path must be a plain relative API path")
    split = urlsplit(decoded)
    if split.scheme or split.netloc or decoded.startswith("//"):
        raise PermanentError("passthrough path must be relative to the API base, not a URL")
    if any(segment in ("..", ".") for segment in decoded.split("/")):
        raise PermanentError("passthrough path must not contain '.' or '..' segments")
    base = base_url.rstrip("/")
    url = f"{base}/{path.lstrip('/')}"
    origin, target = urlsplit(base), urlsplit(url)
    if (target.scheme, target.netloc) != (origin.scheme, origin.netloc) or not target.path.startswith(
        origin.path.rstrip("/") + "/"
    ):
        raise PermanentError("passthrough path leaves the API base")
    return url


# -- Settings, capabilities and steps --------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What the relay's API checks before it queues an action (app/web/api/actions.py): the
    actions a connector runs and the attachment types they take, and the read models it serves
    (`reads`: app.core.catalog.READ_*; the catalog routes answer 404 for the others). Everything
    else an ATS can or cannot take is the connector's `check()` (warnings and refusals at intake)
    and is listed per ATS in docs/connectors/<ats>.md."""

    attachment_types: frozenset[str] = frozenset()
    actions: frozenset[str] = frozenset()
    reads: frozenset[str] = frozenset()


@dataclass(frozen=True)
class StepWarning:
    """Something the ATS could not take, recorded at intake (`check`) or by a step
    (`StepContext.warn`) and shown on the delivery; `message` never carries PII."""

    code: str
    message: str


@dataclass
class StepContext:
    """What a running step may see. `checkpoints` maps step name → remote id of finished steps."""

    application: StoredApplication | None  # None for action deliveries
    checkpoints: Mapping[str, str]
    load_attachment: Callable[[AttachmentRef], Awaitable[bytes]]
    warnings: list[StepWarning] = field(default_factory=list)
    # A signed download link to a stored file, valid `ttl_s` (the relay keeps the file that long);
    # None when the relay has no public URL configured.
    file_link: Callable[[AttachmentRef, float], str | None] = lambda ref, ttl_s: None
    # Steps whose remote record this very run created (it was looked for and not found). A later
    # step may then skip looking for a record that could only hang off that new one: nothing can
    # exist under it yet. A new run starts empty, so a re-run after a crash looks again.
    created_here: set[str] = field(default_factory=set)

    def remote_id(self, step: str) -> str:
        try:
            return self.checkpoints[step]
        except KeyError:
            raise PermanentError(f"step {step!r} has not run before a step that needs it") from None

    def warn(self, code: str, message: str) -> None:
        """Record something the ATS could not take; shown on the delivery, never PII."""
        self.warnings.append(StepWarning(code, message))


StepFn = Callable[[StepContext], Awaitable[str]]


@dataclass(frozen=True)
class Step:
    """One resumable unit of a delivery. `name` must be stable across runs of the same delivery:
    it is the checkpoint key. Attachment steps carry their file (`attachment`) and are named
    ``attachment:<sha256>``; the engine runs them after the core steps and retries them apart."""

    name: str
    run: StepFn
    attachment: AttachmentRef | None = None
    core: bool = True
    # False: the step only reads (or answers from a cache), so a re-run may simply repeat it, and the
    # engine writes its checkpoint with the next one instead of on its own (docs/architecture.md,
    # "One run of the engine"). True, the default, for anything that may create or change a record.
    writes: bool = True


def attachment_step_name(ref: AttachmentRef) -> str:
    return f"attachment:{ref.sha256 or ref.index}"


@dataclass(frozen=True)
class PassthroughResult:
    status: int
    headers: dict[str, str]
    body: Any


class ConnectorSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A connector's own keys of a ``[connections.<id>]`` table; the relay's keys (base_url,
    concurrency, the inbound secrets...) are app/config.py's. Each connector declares its
    subclass as `Connector.settings_type`: the config decodes the table's other keys into it at
    start (an unknown key or a bad value stops the service, naming the key), and the connector
    reads typed attributes, never a raw dict."""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> Self:
        """The settings from TOML-like values, without coercing strings to other types; a
        `msgspec.ValidationError` names the key at fault (``... - at `$.cv_upload```)."""
        return msgspec.convert(dict(raw), cls, strict=True)


S = TypeVar("S", bound=ConnectorSettings)


class TokenSource(Protocol):
    """Where an OAuth connection's access token lives when it is shared by every process
    (app/connections/oauth.py, docs/connections.md): the connector asks for the current token, and
    for a fresh one when the ATS refused `stale`. The source refreshes at most once per stale token
    across workers (a Redis lock), and raises AuthError when the ATS refuses the refresh for good."""

    async def access_token(self) -> str: ...

    async def refreshed(self, stale: str) -> str: ...


@dataclass(frozen=True)
class ConnectionSpec(Generic[S]):
    """The parts of a connection a connector may read (no queue, no Redis). `tokens`: set for
    a connection whose OAuth tokens the relay keeps (then `credentials` is unused)."""

    id: str
    connector: str
    base_url: str
    credentials: str
    settings: S
    timeout_s: float = 20.0
    tokens: TokenSource | None = None


# -- The connector ---------------------------------------------------------------------------------


class Connector(ABC, Generic[S]):
    """One ATS. Instances live for the worker's lifetime (one per connection) so that tokens and
    sessions are reused; `http` is shared and owned by the caller."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    settings_type: ClassVar[type[ConnectorSettings]]
    default_base_url: ClassVar[str | None] = None  # the ATS's one API host, when it has one

    def __init__(self, connection: ConnectionSpec[S], http: httpx.AsyncClient) -> None:
        if not isinstance(connection.settings, self.settings_type):
            raise TypeError(
                f"{self.name} takes {self.settings_type.__name__}, not {type(connection.settings).__name__}"
                " (decode the table with app.config or <Settings>.from_mapping)"
            )
        self.connection = connection
        self.http = http
        self.settings: S = connection.settings

    async def verify_credentials(self) -> None:
        """One cheap authenticated read, made when a connection is created or its credentials
        change (app/connections/service.py): AuthError with the ATS's reason when it refuses them,
        TransientError when it cannot be asked. Connectors override it with their cheapest read."""
        await self.list_jobs(JobQuery(page_size=1))

    # -- Writing -----------------------------------------------------------------------------------

    @abstractmethod
    def plan(self, application: StoredApplication) -> list[Step]:
        """The ordered steps that write `application` into the ATS."""

    def check(self, application: StoredApplication) -> tuple[list[str], list[StepWarning]]:
        """Intake-time check: (errors that make the application unacceptable, warnings)."""
        return [], []

    async def check_answers(self, application: StoredApplication) -> list[str]:
        """Intake-time check of screening answers against the job's questions (may read the ATS,
        cached); errors as "<field>: <reason>"; [] when the ATS cannot be asked right now (the
        delivery then validates again and dead-letters with the reason)."""
        return []

    def action_plan(self, action: str, params: Mapping[str, Any], attachments: list[AttachmentRef]) -> list[Step]:
        """Steps for an extra action, queued and retried like a delivery. Names (ACTION_*):
        add_attachment_to_application {application_id, candidate_id?} + attachments[0];
        add_attachment_to_candidate {candidate_id} + attachments[0];
        add_result_link_to_application / _to_candidate {application_id | candidate_id, label, url,
        details: {custom_field_name_prefix, attributes: {k: v}}};
        move_application_to_stage {application_id, stage_id}."""
        raise PermanentError(f"action {action!r} is not supported by {self.name}")

    # -- Reading -----------------------------------------------------------------------------------

    async def passthrough(
        self, method: str, path: str, query: Mapping[str, str] | None, body: Any
    ) -> PassthroughResult:
        raise PermanentError(f"passthrough is not supported by {self.name}")

    async def application_status(self, application_id: str, job_id: str | None = None) -> dict[str, Any] | None:
        """The current stage and outcome of an application the relay created, for status sync:
        ``{"stage_id", "stage_name", "outcome": "PENDING" | "HIRED" | "DECLINED", ...}`` (ids and
        labels only, no PII); `job_id` is the job the relay applied to (some ATSs find an
        application only within its job). None: this ATS cannot be asked (the default; the relay
        stops asking).
        A deleted application raises PermanentError with status 404."""
        return None

    async def list_jobs(self, query: JobQuery) -> JobPage:
        """One page of the ATS's jobs, through the ATS's own pagination (`query.cursor` is this
        connector's opaque cursor). Jobs in a listing may leave `stages`/`screening_questions`
        empty; `remote_data` is always filled (the catalog strips it unless asked)."""
        raise PermanentError(f"reading jobs is not supported by {self.name}")

    async def get_job(self, job_id: str) -> Job | None:
        """One job with its `screening_questions` and `stages`; None when the ATS has no such job."""
        raise PermanentError(f"reading jobs is not supported by {self.name}")

    async def job_questions(self, job_id: str) -> list[ScreeningQuestion]:
        """The job's screening questions in Kombo's shape, ordered by `index`; [] when it has none.
        Raises PermanentError(status=404) when the ATS has no such job."""
        return []

    async def list_stages(self, job_id: str | None = None) -> list[Stage]:
        """The ATS's application stages (for `job_id` where the ATS scopes them by job)."""
        raise PermanentError(f"reading stages is not supported by {self.name}")

    async def list_sources(self) -> list[Source]:
        """The candidate sources (or publication portals) an application may name."""
        raise PermanentError(f"reading sources is not supported by {self.name}")

    async def screening_questions(self, job_id: str) -> list[dict[str, Any]]:
        """The job's questions in a connector-neutral shape:
        ``{"id", "type", "required", "options": [{"id", "label"}], "label"}``."""
        return []

    async def job_status(self, job_id: str) -> str | None:
        """Whether the ATS has the job and takes applications: "open", "closed" or "missing"; None
        when this connector cannot tell. Inbound boards answer 404 (missing) or 410 (closed)."""
        return None

    async def candidate_attachments(self, candidate_id: str) -> list[dict[str, Any]]:
        """The candidate's files in the ATS: [{"id", "name", "content_type", "size", "type"}]."""
        raise PermanentError(f"reading candidate attachments is not supported by {self.name}")

    async def close(self) -> None:
        """Release sessions (log out) when the worker stops."""

    # -- Helpers for subclasses --------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        expect: tuple[int, ...] = (200, 201),
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request and classify failures. `what` names the call in errors (no PII)."""
        kwargs.setdefault("timeout", self.connection.timeout_s)
        try:
            response = await self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise error_for_transport(exc, what, sent=True) from None
        if response.status_code not in expect:
            raise error_for_response(response, what)
        return response
