"""Connections made through the API, kept in Redis (docs/connections.md).

A connection is two keys: its record (connector, base URL, settings, times, which credential kind
is set: nothing secret, msgpack) and its secrets (the credentials and the inbound routes' secrets,
sealed with the data key like candidate data, so `applyrelay keys rotate` re-seals them). Every
change bumps one version counter in the same transaction; each process's registry (registry.py)
polls it and reloads, so a change is seen by web and every worker within a second or two, with
no restart. OAuth tokens change on every refresh and live apart (oauth.py): no reload for them.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from redis.asyncio import Redis

from app.connections.credentials import CredentialKind
from app.privacy.crypto import AesGcmSealer
from app.redis.keys import (
    CONNECTION_IDS,
    CONNECTIONS_VERSION,
    connection_record_key,
    connection_secrets_key,
    oauth_tokens_key,
)


class ConnectionRecord(msgspec.Struct, kw_only=True):
    """What the relay knows of a connection made through the API, nothing secret."""

    id: str
    connector: str
    base_url: str | None = None  # None: the connector's one API host
    settings: dict[str, Any] = {}  # the keys of a [connections.<id>] table (config.api_connection)
    created_at: float
    updated_at: float
    created_by: str
    credential_kind: CredentialKind
    credentials_set_at: float
    revision: int = 1


class StoredInboundSecret(msgspec.Struct, kw_only=True):
    id: str
    value: str
    created_at: float
    expires_at: float | None = None  # set when a newer one replaced it: the end of its grace period


class StoredSecrets(msgspec.Struct, kw_only=True):
    credentials: dict[str, str]  # as decoded by credentials.decode_credentials
    inbound: dict[str, list[StoredInboundSecret]] = {}  # kind (config.INBOUND_SETTING) -> newest first


_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[3])
redis.call('INCR', KEYS[4])
return 1
"""

_encode = msgspec.msgpack.Encoder().encode
_record = msgspec.msgpack.Decoder(ConnectionRecord)
_secrets = msgspec.msgpack.Decoder(StoredSecrets)


class ConnectionStore:
    def __init__(self, redis: Redis, sealer: AesGcmSealer) -> None:
        self.redis = redis
        self.sealer = sealer
        self._create = redis.register_script(_CREATE)

    async def version(self) -> int:
        return int(await self.redis.get(CONNECTIONS_VERSION) or 0)

    async def create(self, record: ConnectionRecord, secrets: StoredSecrets) -> bool:
        """False when a connection of that id exists already (nothing written)."""
        keys = [
            connection_record_key(record.id),
            connection_secrets_key(record.id),
            CONNECTION_IDS,
            CONNECTIONS_VERSION,
        ]
        sealed = self.sealer.seal(_encode(secrets))
        return bool(await self._create(keys=keys, args=[_encode(record), sealed, record.id]))

    async def get(self, connection_id: str) -> ConnectionRecord | None:
        raw = await self.redis.get(connection_record_key(connection_id))
        return _record.decode(raw) if raw is not None else None

    async def secrets(self, connection_id: str) -> StoredSecrets | None:
        raw = await self.redis.get(connection_secrets_key(connection_id))
        return _secrets.decode(self.sealer.open(raw)) if raw is not None else None

    async def ids(self) -> list[str]:
        return sorted(m.decode() for m in await self.redis.smembers(CONNECTION_IDS))  # type: ignore[misc]

    async def load_all(self) -> list[tuple[ConnectionRecord, StoredSecrets]]:
        """Every connection with its secrets (a record whose keys vanished meanwhile is skipped)."""
        ids = await self.ids()
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.get(connection_record_key(cid))
            pipe.get(connection_secrets_key(cid))
        raw = await pipe.execute()
        found = []
        for i in range(0, len(raw), 2):
            if raw[i] is not None and raw[i + 1] is not None:
                found.append((_record.decode(raw[i]), _secrets.decode(self.sealer.open(raw[i + 1]))))
        return found

    async def update(self, record: ConnectionRecord, secrets: StoredSecrets | None = None) -> None:
        """Write `record` (its revision bumped, updated_at now) and, when given, its secrets."""
        record.revision += 1
        record.updated_at = time.time()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(connection_record_key(record.id), _encode(record))
            if secrets is not None:
                pipe.set(connection_secrets_key(record.id), self.sealer.seal(_encode(secrets)))
            pipe.incr(CONNECTIONS_VERSION)
            await pipe.execute()

    async def delete(self, connection_id: str) -> bool:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(connection_record_key(connection_id))
            pipe.delete(connection_secrets_key(connection_id), oauth_tokens_key(connection_id))
            pipe.srem(CONNECTION_IDS, connection_id)
            pipe.incr(CONNECTIONS_VERSION)
            removed, *_ = await pipe.execute()
        return bool(removed)
