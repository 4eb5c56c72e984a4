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
from typing import Annotated, Any, Protocol, runtime_checkable

import httpx
import msgspec
import structlog
from msgspec import Meta

from app.config import ConfigError, Connection, InboundKind
from app.connections import credentials, inbound_secrets
from app.connections.credentials import Secret
from app.connections.registry import ConnectionRegistry, build
from app.connections.store import ConnectionRecord, ConnectionStore, StoredInboundSecret, StoredSecrets
from app.core.problems import FieldError, Problem
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
        await self.store.update(record, secrets)
        await persist(tokens)
        await self.registry.refresh()
        log.info("connection.credentials_replaced", connection=connection_id, kind=record.credential_kind, actor=actor)
        return self.registry[connection_id]


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
