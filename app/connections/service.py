"""Making a connection at runtime: validated like a TOML table, its credentials checked against the
ATS with one cheap read, then stored (docs/connections.md). Shared by the connections API, the
connect page and the OAuth callback, so all three refuse and accept alike.

Errors are Problems (problem+json): 422 naming the field for a bad request, 422
INTEGRATION.AUTHENTICATION_INVALID with the ATS's reason for refused credentials, 409 for an id
taken, 503 when the ATS cannot be asked (nothing is stored then: try again).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import httpx
import msgspec
import structlog
from msgspec import Meta
from redis.asyncio import Redis

from app.config import ConfigError, Connection, InboundKind
from app.connections import credentials, inbound_secrets
from app.connections.credentials import Secret
from app.connections.registry import ConnectionRegistry, build
from app.connections.store import ConnectionRecord, ConnectionStore, StoredInboundSecret, StoredSecrets
from app.core.problems import FieldError, Problem
from app.delivery import transitions
from app.delivery.record import TERMINAL, ErrorInfo
from app.delivery.store import DeliveryStore
from app.privacy.erasure import hold_lease
from app.redis.keys import (
    CATALOG_PREFIX,
    DEGRADED_SET,
    bucket_key,
    catalog_lock_key,
    connection_status_index,
    indeed_token_key,
    paused_key,
    semaphore_key,
)
from connectors import CONNECTORS, connector_class
from connectors.base import AuthError, ConnectorError, TokenSource, TransientError

log = structlog.get_logger("applyrelay.connections")

AUTHENTICATION_INVALID = "INTEGRATION.AUTHENTICATION_INVALID"
ConnectionId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


class NewConnection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`POST /v1/connections` (docs/connections.md)."""

    id: ConnectionId
    connector: str
    credentials: dict[str, Any]
    base_url: str | None = None
    settings: dict[str, Any] = {}
    inbound_secrets: dict[InboundKind, Secret] = {}


def invalid(field: str, message: str, code: str = "PLATFORM.INPUT_INVALID") -> Problem:
    return Problem(422, "Invalid connection", f"{field}: {message}", errors=[FieldError(field, message)], code=code)


_CONFIG_FIELD = re.compile(r"^(?P<field>[A-Za-z0-9_.\[\]]+): (?P<message>.*)$", re.S)


def config_problem(exc: ConfigError) -> Problem:
    """config's ``settings.concurrency: must be ...`` as a 422 naming `settings.concurrency`
    (`settings.base_url` is the request's own `base_url`)."""
    found = _CONFIG_FIELD.match(str(exc))
    field, message = (found["field"], found["message"]) if found else ("settings", str(exc))
    if field == "settings.base_url":
        field = "base_url"
    return invalid(field, message)


def new_secrets(creds: credentials.Credentials, inbound: dict[InboundKind, str], now: float) -> StoredSecrets:
    stored: dict[str, list[StoredInboundSecret]] = {
        kind: [StoredInboundSecret(id=f"{kind}_1", value=value, created_at=now)] for kind, value in inbound.items()
    }
    return StoredSecrets(credentials=credentials.to_builtins(creds), inbound=stored)


TokensFor = Callable[[Connection, credentials.Credentials], TokenSource | None]


class ConnectionService:
    """Create (and check) connections. `tokens_for` gives the token source a connector uses for
    OAuth credentials (app/connections/oauth.py); None where the credentials are a key."""

    def __init__(
        self,
        store: ConnectionStore,
        registry: ConnectionRegistry,
        http: httpx.AsyncClient,
        tokens_for: TokensFor | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.http = http
        self.tokens_for = tokens_for

    def prepare(self, new: NewConnection, actor: str) -> tuple[Connection, ConnectionRecord, StoredSecrets]:
        """Validate `new` as the relay will run it (Problem 422 naming the field otherwise)."""
        if new.connector not in CONNECTORS:
            raise invalid("connector", f"must be one of {', '.join(sorted(CONNECTORS))}")
        try:
            creds = credentials.decode_credentials(new.connector, new.credentials)
        except credentials.CredentialsError as exc:
            raise invalid(exc.field, exc.message) from None
        now = time.time()
        record = ConnectionRecord(
            id=new.id,
            connector=new.connector,
            base_url=new.base_url,
            settings=dict(new.settings),
            created_at=now,
            updated_at=now,
            created_by=actor,
            credential_kind=credentials.kind(creds),
            credentials_set_at=now,
        )
        for inbound_kind, value in new.inbound_secrets.items():  # as the secrets API checks them
            if reason := inbound_secrets.invalid_value(inbound_kind, value):
                raise invalid(f"inbound_secrets.{inbound_kind}", reason)
        secrets = new_secrets(creds, dict(new.inbound_secrets), now)
        try:
            connection = build(record, secrets, self.registry.limits)
        except ConfigError as exc:
            raise config_problem(exc) from None
        return connection, record, secrets

    async def verify(self, connection: Connection, creds: credentials.Credentials) -> TokenSource | None:
        """One cheap authenticated read (Connector.verify_credentials): 422 with the ATS's reason
        when it refuses the credentials, 503 when it cannot be asked. Returns the token source the
        check used (OAuth), which the caller persists once the connection is stored."""
        spec = connection.spec()
        tokens = self.tokens_for(connection, creds) if self.tokens_for else None
        if tokens is not None:
            from dataclasses import replace

            spec = replace(spec, tokens=tokens)
        connector = connector_class(connection.connector)(spec, self.http)
        try:
            await connector.verify_credentials()
        except AuthError as exc:
            raise invalid("credentials", f"the ATS refused them: {exc}", AUTHENTICATION_INVALID) from None
        except TransientError as exc:
            raise Problem(
                503,
                "ATS unavailable",
                f"the credentials could not be checked, the ATS did not answer: {exc}. Nothing was stored; try again",
                code="REMOTE.SERVICE_UNAVAILABLE",
                headers={"Retry-After": "10"},
            ) from None
        except ConnectorError as exc:  # a permanent refusal of the read itself (wrong tenant URL, ...)
            raise invalid("base_url", f"the ATS refused the check: {exc}", AUTHENTICATION_INVALID) from None
        finally:
            await connector.close()
        return tokens

    async def create(self, new: NewConnection, actor: str) -> Connection:
        if new.id in self.registry.file:
            raise file_connection(new.id)
        connection, record, secrets = self.prepare(new, actor)
        creds = credentials.decode_credentials(new.connector, new.credentials)
        tokens = await self.verify(connection, creds)
        if not await self.store.create(record, secrets):
            raise Problem(
                409,
                "Connection exists",
                f"connection {new.id!r} exists already (PATCH it, or DELETE it first)",
                errors=[FieldError("id", "taken")],
                code="PLATFORM.CONFLICT",
            )
        await persist(tokens)
        await self.registry.refresh()  # this process sees it at once; the others within a second
        log.info("connection.created", connection=new.id, connector=new.connector, actor=actor)
        return self.registry[new.id]

    async def replace_credentials(self, connection_id: str, raw: dict[str, Any], actor: str) -> Connection:
        """New credentials for a connection made through the API (rotation, or a reconnect after
        a refusal): checked against the ATS like a new connection's, then stored."""
        if connection_id in self.registry.file:
            raise file_connection(connection_id)
        record = await self.store.get(connection_id)
        secrets = await self.store.secrets(connection_id)
        if record is None or secrets is None:
            raise Problem(
                404, "Unknown connection", f"connection {connection_id!r} does not exist", code="PLATFORM.NOT_FOUND"
            )
        try:
            creds = credentials.decode_credentials(record.connector, raw)
        except credentials.CredentialsError as exc:
            raise invalid(exc.field, exc.message) from None
        now = time.time()
        record.credential_kind, record.credentials_set_at = credentials.kind(creds), now
        secrets.credentials = credentials.to_builtins(creds)
        try:
            connection = build(record, secrets, self.registry.limits)
        except ConfigError as exc:
            raise config_problem(exc) from None
        tokens = await self.verify(connection, creds)
        kind, set_at, stored = record.credential_kind, record.credentials_set_at, secrets.credentials

        def rotate(fresh: ConnectionRecord, fresh_secrets: StoredSecrets) -> None:
            fresh.credential_kind, fresh.credentials_set_at = kind, set_at
            fresh_secrets.credentials = stored

        await self.commit(connection_id, record.revision, rotate, rebased=True)
        await persist(tokens)
        await self.registry.refresh()
        log.info("connection.credentials_replaced", connection=connection_id, kind=record.credential_kind, actor=actor)
        return self.registry[connection_id]

    async def commit(
        self,
        connection_id: str,
        read_revision: int,
        change: Callable[[ConnectionRecord, StoredSecrets], None],
        *,
        rebased: bool,
    ) -> None:
        """Write a change worked out from a read at `read_revision` (the ATS asked meanwhile,
        without a lock held): under the connection's write lock the record and secrets are read
        again and `change` applied to them, so an inbound secret added meanwhile is kept.
        `rebased` False (a settings change, which depends on the record as read): refused with
        409 when anything changed since."""
        async with inbound_secrets.write_lock(self.store, connection_id):
            record = await self.store.get(connection_id)
            secrets = await self.store.secrets(connection_id)
            if record is None or secrets is None:
                raise unknown(connection_id)  # deleted while the ATS was asked: not written back
            if not rebased and record.revision != read_revision:
                raise Problem(
                    409,
                    "Connection changed meanwhile",
                    f"connection {connection_id!r} was changed while this change was checked; send it again",
                    code="PLATFORM.CONFLICT",
                )
            change(record, secrets)
            await self.store.update(record, secrets)


@runtime_checkable
class Persistable(Protocol):
    """A token source holding tokens not yet stored (app/connections/oauth.py PendingTokens)."""

    async def persist(self) -> None: ...


async def persist(tokens: TokenSource | None) -> None:
    """Store the OAuth tokens a check used (maybe refreshed), once the connection is written: a
    refused check leaves none behind."""
    if isinstance(tokens, Persistable):
        await tokens.persist()


def file_connection(connection_id: str) -> Problem:
    return Problem(
        409,
        "Connection from the file",
        f"connection {connection_id!r} is configured in the TOML file; change it there (the API cannot)",
        code="PLATFORM.CONFLICT",
    )


# -- changing and deleting (the connections API: docs/connections.md, "The connections API") ------


class ConnectionPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`PATCH /v1/connections/{id}`: `settings` is a JSON merge patch (RFC 7386: a null removes a
    key), `credentials` replaces them whole (checked against the ATS first), `base_url` null
    goes back to the connector's one API host."""

    settings: dict[str, Any] | None = None
    credentials: dict[str, Any] | None = None
    base_url: str | msgspec.UnsetType | None = msgspec.UNSET


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, a null removes the key, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


#: A delivery of a connection in one of these is not finished: a DELETE is refused while any is.
PENDING_STATUSES = ("queued", "retry_scheduled", "delivering", "paused")
DELETED_CODE = "PLATFORM.INTEGRATION_NOT_FOUND"


class ConnectionEditor:
    """PATCH and DELETE of a connection made through the API, beside ConnectionService's create
    (the same validation and check against the ATS); kept apart so the service stays the one
    shared by the API, the connect page and OAuth."""

    def __init__(self, service: ConnectionService) -> None:
        self.service = service

    async def _load(self, connection_id: str) -> tuple[ConnectionRecord, StoredSecrets]:
        if connection_id in self.service.registry.file:
            raise file_connection(connection_id)
        record = await self.service.store.get(connection_id)
        secrets = await self.service.store.secrets(connection_id)
        if record is None or secrets is None:
            raise unknown(connection_id)
        return record, secrets

    async def update(self, connection_id: str, patch: ConnectionPatch, actor: str) -> tuple[Connection, list[str]]:
        """Apply `patch`, validated like a creation; new credentials or a new base URL are
        checked against the ATS before anything is stored. Returns the connection and what changed."""
        record, secrets = await self._load(connection_id)
        if patch.credentials is not None and patch.settings is None and isinstance(patch.base_url, msgspec.UnsetType):
            # a rotation alone: the service's own path, shared with the connect page's reconnect
            return await self.service.replace_credentials(connection_id, patch.credentials, actor), ["credentials"]
        changed: list[str] = []
        if patch.settings is not None:
            record.settings = merge_patch(record.settings, patch.settings)
            changed.append("settings")
        if not isinstance(patch.base_url, msgspec.UnsetType):
            record.base_url = patch.base_url
            changed.append("base_url")
        try:
            raw = patch.credentials if patch.credentials is not None else secrets.credentials
            creds = credentials.decode_credentials(record.connector, raw)
        except credentials.CredentialsError as exc:
            raise invalid(exc.field, exc.message) from None
        if patch.credentials is not None:
            record.credential_kind, record.credentials_set_at = credentials.kind(creds), time.time()
            secrets.credentials = credentials.to_builtins(creds)
            changed.append("credentials")
        try:
            connection = build(record, secrets, self.service.registry.limits)
        except ConfigError as exc:
            raise config_problem(exc) from None
        tokens = None
        if "credentials" in changed or "base_url" in changed:
            tokens = await self.service.verify(connection, creds)
        if changed:
            patched = record

            def apply(fresh: ConnectionRecord, fresh_secrets: StoredSecrets) -> None:
                fresh.settings, fresh.base_url = patched.settings, patched.base_url
                fresh.credential_kind, fresh.credentials_set_at = patched.credential_kind, patched.credentials_set_at
                if "credentials" in changed:
                    fresh_secrets.credentials = secrets.credentials

            await self.service.commit(connection_id, record.revision, apply, rebased=False)
            await persist(tokens)
            await self.service.registry.refresh()
        log.info("connection.updated", connection=connection_id, changed=changed, actor=actor)
        return self.service.registry.get(connection_id, connection), changed

    async def pending(self, deliveries: DeliveryStore, connection_id: str) -> dict[str, int]:
        """Its deliveries not yet finished, by status (from the per-connection status indexes)."""
        pipe = deliveries.redis.pipeline(transaction=False)
        for status in PENDING_STATUSES:
            pipe.zcard(connection_status_index(connection_id, status))
        return dict(zip(PENDING_STATUSES, [int(n) for n in await pipe.execute()], strict=True))

    async def delete(
        self, deliveries: DeliveryStore, connection_id: str, actor: str, *, force: bool, lease_wait_s: float
    ) -> DeletedConnection:
        """Delete it: refused (409, with the counts) while deliveries are pending, unless `force`,
        which dead-letters them first (each under its lease: a running one ends its run first),
        then again after the delete for any accepted meanwhile. Delivered ones keep their history."""
        await self._load(connection_id)
        counts = await self.pending(deliveries, connection_id)
        if sum(counts.values()) and not force:
            raise PendingDeliveries(
                409,
                "Connection has pending deliveries",
                f"connection {connection_id!r} has deliveries not yet delivered ("
                + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
                + "); let them finish, or DELETE with ?force=true to dead-letter them",
                code="PLATFORM.CONFLICT",
                pending=counts,
            )
        reason = f"connection {connection_id!r} was deleted through the API by {actor}; not delivered"
        stopped, in_flight = await self._dead_letter_pending(deliveries, connection_id, reason, lease_wait_s)
        await self.service.store.delete(connection_id)
        await _forget(deliveries.redis, connection_id)
        await self.service.registry.refresh()
        late, late_in_flight = await self._dead_letter_pending(deliveries, connection_id, reason, lease_wait_s)
        log.info(
            "connection.deleted",
            connection=connection_id,
            dead_lettered=len(stopped) + len(late),
            in_flight=len(in_flight) + len(late_in_flight),
            actor=actor,
        )
        return DeletedConnection(connection_id, counts, [*stopped, *late], [*in_flight, *late_in_flight])

    async def _dead_letter_pending(
        self, deliveries: DeliveryStore, connection_id: str, reason: str, lease_wait_s: float
    ) -> tuple[list[str], list[str]]:
        """Each pending delivery once (an id left in an index without its record is skipped, not
        looped on), until a pass finds none it has not seen: (dead-lettered, still running)."""
        stopped: list[str] = []
        in_flight: list[str] = []
        seen: set[str] = set()
        while True:
            fresh: list[str] = []
            for status in PENDING_STATUSES:
                members = await deliveries.redis.zrange(connection_status_index(connection_id, status), 0, -1)
                fresh.extend(i.decode() for i in members if i.decode() not in seen)
            if not fresh:
                return stopped, in_flight
            for delivery_id in dict.fromkeys(fresh):
                seen.add(delivery_id)
                outcome = await _dead_letter_one(deliveries, delivery_id, reason, lease_wait_s)
                if outcome == "stopped":
                    stopped.append(delivery_id)
                elif outcome == "in_flight":
                    in_flight.append(delivery_id)


@dataclass
class PendingDeliveries(Problem):
    """The 409 of a DELETE refused while deliveries are pending; its body carries the counts."""

    pending: dict[str, int] = field(default_factory=dict)


@dataclass
class DeletedConnection:
    id: str
    pending: dict[str, int]
    dead_lettered: list[str]
    in_flight: list[str]  # its run outlasted the wait: the worker finds the connection gone and dead-letters it


async def _dead_letter_one(
    deliveries: DeliveryStore, delivery_id: str, reason: str, wait_s: float
) -> Literal["stopped", "finished", "in_flight"]:
    """Dead-letter one pending delivery under its lease ("in_flight": a run still holds it;
    "finished": it ended, or has no record, meanwhile)."""
    token = await hold_lease(deliveries, delivery_id, wait_s)
    if token is None:
        return "in_flight"
    try:
        delivery = await deliveries.get(delivery_id)
        if delivery is None or delivery.status in TERMINAL:
            return "finished"
        info = ErrorInfo(kind="permanent", message=reason, at=time.time(), code=DELETED_CODE)
        await deliveries.save(delivery, transitions.dead_letter(delivery, info))
        return "stopped"
    finally:
        await deliveries.release_lease(delivery_id, token)


async def _forget(redis: Redis, connection_id: str) -> None:
    """What the relay kept for a connection besides its deliveries: pause, limits, caches, the
    degraded mark, the Indeed token (the history of its deliveries stays)."""
    keys = [paused_key(connection_id), semaphore_key(connection_id), bucket_key(connection_id)]
    keys.append(indeed_token_key(connection_id))
    for pattern in (f"{CATALOG_PREFIX}{connection_id}:*", catalog_lock_key(connection_id, "*").rsplit(":", 1)[0]):
        keys.extend([key async for key in redis.scan_iter(match=pattern, count=500)])
    pipe = redis.pipeline(transaction=True)
    pipe.delete(*keys)
    pipe.srem(DEGRADED_SET, connection_id)
    await pipe.execute()


def unknown(connection_id: str) -> Problem:
    return Problem(404, "Unknown connection", f"connection {connection_id!r} does not exist", code="PLATFORM.NOT_FOUND")
