"""What the dashboard's connections page shows and does (docs/dashboard.md, "Connections page").

One row per connection the registry knows (the TOML file's and the API's): where it comes from,
when it was made, its health (app/operator/connection_health.py), its pause, the deliveries it
still owes, and which kind of credential it has and since when, never the credential. Its two
actions are audited like the API's: resume (the pause lifted, the paused deliveries re-queued) and
a fresh connect link for an API connection (app/connections/links.py, `reconnect`), whose token
is returned once and never stored, logged or audited.

Every pause is a refusal of the connection's credentials (the engine pauses on AuthError only,
`INTEGRATION.AUTHENTICATION_INVALID`), so a paused connection is one that lost its ATS
authorisation: the dashboard's banner lists them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis

from app.config import Config
from app.connections import links
from app.connections.store import ConnectionStore
from app.core.problems import Problem
from app.delivery.store import DeliveryStore
from app.operator import connection_health
from app.operator.connection_health import ConnectionStatus
from app.privacy import audit
from app.redis.keys import paused_key

log = structlog.get_logger("applyrelay.connections")

PAUSE_CODE = "INTEGRATION.AUTHENTICATION_INVALID"  # what every pause is (app/delivery/engine.py, _pause)
PENDING_STATUSES = ("queued", "retry_scheduled", "delivering", "paused")  # owed to the ATS, not dead letters


@dataclass(frozen=True)
class ConnectionRow:
    id: str
    connector: str
    origin: str  # "file" | "api"
    status: ConnectionStatus
    created_at: float | None = None  # API connections: the record's
    created_by: str | None = None
    credential_kind: str | None = None  # API: api_key | oauth | token; file: from its environment variable
    credentials_set_at: float | None = None
    credentials_env: str | None = None  # file connections: the variable's name (not its value)

    @property
    def pending(self) -> int:
        return sum(self.status.counts.get(s, 0) for s in PENDING_STATUSES)

    @property
    def from_file(self) -> bool:
        return self.origin == "file"


@dataclass(frozen=True)
class LostAuthorisation:
    """A connection paused because the ATS refused its credentials: the banner's line."""

    id: str
    reason: str
    code: str = PAUSE_CODE


async def connection_rows(
    store: DeliveryStore, connection_store: ConnectionStore, config: Config, *, threshold_s: float
) -> list[ConnectionRow]:
    """Every connection of the registry, file ones first, in the registry's order."""
    statuses = await connection_health.connection_statuses(store, config, threshold_s=threshold_s)
    api_ids = [s.id for s in statuses if config.connections[s.id].origin == "api"]
    records = dict(zip(api_ids, await asyncio.gather(*(connection_store.get(cid) for cid in api_ids)), strict=True))
    rows = []
    for status in statuses:
        connection = config.connections[status.id]
        record = records.get(status.id)
        if connection.origin == "file":
            rows.append(
                ConnectionRow(
                    status.id,
                    status.connector,
                    connection.origin,
                    status,
                    credentials_env=connection.credentials_env or None,
                )
            )
            continue
        if record is None:  # deleted since this process's last reload (a second ago at most): gone
            continue
        rows.append(
            ConnectionRow(
                status.id,
                status.connector,
                "api",
                status,
                created_at=record.created_at,
                created_by=record.created_by,
                credential_kind=record.credential_kind,
                credentials_set_at=record.credentials_set_at,
            )
        )
    return rows


async def lost_authorisations(redis: Redis, connection_ids: Iterable[str]) -> list[LostAuthorisation]:
    """The paused connections among `connection_ids` (one pipelined GET each: cheap enough for the
    main dashboard page)."""
    ids = list(connection_ids)
    if not ids:
        return []
    pipe = redis.pipeline(transaction=False)
    for cid in ids:
        pipe.get(paused_key(cid))
    reasons = await pipe.execute()
    return [LostAuthorisation(cid, raw.decode()) for cid, raw in zip(ids, reasons, strict=True) if raw is not None]


async def resume(store: DeliveryStore, connection_id: str, actor: str, via: str) -> int:
    """Lift the pause and re-queue the paused deliveries, audited as the API's resume is."""
    was_paused = await store.paused_reason(connection_id) is not None
    resumed = await connection_health.resume(store, connection_id)
    await audit.record(
        store.redis,
        actor,
        "resume_connection",
        connection_id,
        {"resumed_deliveries": resumed, "was_paused": was_paused, "via": via},
    )
    log.info("connection.resumed", connection=connection_id, resumed_deliveries=resumed, actor=actor, via=via)
    return resumed


async def reconnect_link(
    connection_store: ConnectionStore,
    config: Config,
    connection_id: str,
    actor: str,
    via: str,
    *,
    ttl_s: float = links.DEFAULT_TTL_S,
) -> tuple[str, links.ConnectLink]:
    """A single-use link (its token, returned once) through which the employer enters new
    credentials for an API connection. A file connection's credentials are the file's: 409."""
    connection = config.connections.get(connection_id)
    if connection is None:
        raise Problem(
            404, "Unknown connection", f"connection {connection_id!r} does not exist", code="PLATFORM.NOT_FOUND"
        )
    if connection.origin != "api":
        raise Problem(
            409,
            "Connection from the file",
            f"connection {connection_id!r} is configured in the file; its credentials are changed there",
            code="PLATFORM.CONFLICT",
        )
    record = await connection_store.get(connection_id)
    if record is None:  # deleted since this process's last reload
        raise Problem(404, "Unknown connection", f"connection {connection_id!r} was deleted", code="PLATFORM.NOT_FOUND")
    now = time.time()
    link = links.ConnectLink(
        connection_id=connection_id,
        connector=record.connector,
        created_at=now,
        expires_at=now + ttl_s,
        created_by=actor,
        base_url=record.base_url,
        settings=dict(record.settings),
        reconnect=True,
    )
    token = await links.create(connection_store.redis, link)
    await audit.record(
        connection_store.redis,
        actor,
        "connect_link",
        connection_id,
        {"reconnect": True, "expires_at": round(link.expires_at), "via": via},
    )
    log.info("connection.connect_link_created", connection=connection_id, reconnect=True, actor=actor, via=via)
    return token, link
