"""Every connection a process knows: the TOML file's, and those made through the API.

`Runtime.config.connections` is this registry, so every module that looks a connection up by id
sees both kinds. The file's are fixed for the process's life; the API's are reloaded whenever the
store's version counter moved (a GET a second, `watch`), and at once by `refresh` where a caller
cannot wait (a connection just created in this process). docs/connections.md says why polling a
counter beats pub/sub here: a missed message would leave a process stale for ever, a missed poll
only for a second.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Iterator, Mapping

import structlog
from redis.exceptions import AuthenticationError, AuthorizationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.config import ConfigError, Connection, InboundSecret, Limits, SealedSecrets, api_connection
from app.connections import credentials
from app.connections.store import ConnectionRecord, ConnectionStore, StoredSecrets
from app.privacy.crypto import SealError

log = structlog.get_logger("applyrelay.connections")

WATCH_INTERVAL_S = 1.0
LOAD_RETRY_MAX_S = 2.0  # the longest wait between two tries of the first load, while Redis is away


def redis_away(exc: BaseException) -> bool:
    """Whether `exc` says Redis is away for now (refused, reset, unresolved, timed out, still
    loading its AOF), rather than refusing us (a wrong password or ACL, a bad TLS certificate)."""
    if isinstance(exc, AuthenticationError | AuthorizationError | ssl.SSLError):
        return False
    if isinstance(exc.__cause__ or exc.__context__, ssl.SSLError):  # redis-py wraps it in its ConnectionError
        return False
    return isinstance(exc, OSError | RedisConnectionError | RedisTimeoutError)


def build(record: ConnectionRecord, secrets: StoredSecrets, limits: Limits) -> Connection:
    """A stored connection as the relay runs it (ConfigError if its settings no longer decode)."""
    creds = credentials.decode_credentials(record.connector, secrets.credentials)
    inbound = {
        kind: tuple(InboundSecret(s.id, s.value, s.created_at, s.expires_at) for s in items)
        for kind, items in secrets.inbound.items()
    }
    sealed = SealedSecrets(
        credentials=credentials.primary(creds),
        oauth_tokens=credentials.kind(creds) == "oauth",
        inbound=inbound,
        revision=record.revision,
    )
    return api_connection(record.id, record.connector, record.base_url, record.settings, sealed, limits)


class ConnectionRegistry(Mapping[str, Connection]):
    """The file's connections and the API's, looked up by id (the file's win a clash: the API
    refuses to create one of their ids, so a clash means the file gained it later)."""

    def __init__(self, file: Mapping[str, Connection], limits: Limits, store: ConnectionStore | None = None) -> None:
        self.file = dict(file)
        self.limits = limits
        self.store = store
        self._api: dict[str, Connection] = {}
        # Stored, but refused by this process's build (a newer relay's fields during a rolling
        # upgrade, a key this process lacks): id -> why. Its applications wait rather than being
        # refused as unknown (intake's 503, the engine's deferral; docs/connections.md).
        self.unloadable: dict[str, str] = {}
        self._version = -1
        self.loaded_at = 0.0

    def __getitem__(self, connection_id: str) -> Connection:
        found = self.file.get(connection_id)
        return found if found is not None else self._api[connection_id]

    def __iter__(self) -> Iterator[str]:
        yield from self.file
        yield from (cid for cid in self._api if cid not in self.file)

    def __len__(self) -> int:
        return len(self.file) + sum(1 for cid in self._api if cid not in self.file)

    def from_file(self, connection_id: str) -> bool:
        return connection_id in self.file

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload the API's connections if the store's version moved (or `force`); True if it did."""
        if self.store is None:
            return False
        version = await self.store.version()
        if version == self._version and not force:
            return False
        loaded: dict[str, Connection] = {}
        unloadable: dict[str, str] = {}
        for record, secrets in await self.store.load_all():
            previous = self._api.get(record.id)
            if previous is not None and previous.revision == record.revision:
                loaded[record.id] = previous  # unchanged: the same object (its connector is kept)
                continue
            try:
                loaded[record.id] = build(record, secrets, self.limits)
            except (ConfigError, credentials.CredentialsError) as exc:  # written valid; a newer relay's keys?
                unloadable[record.id] = str(exc)
                log.error("connection.unloadable", connection=record.id, reason=str(exc))
        self._api, self.unloadable, self._version, self.loaded_at = loaded, unloadable, version, time.time()
        return True

    async def load(self) -> None:
        """The first load, at start-up: waits for Redis rather than ending the process, as the
        worker's poll does (a worker started during a Redis restart used to die here, its
        deliveries left to the others; docs/operations.md). Without the API's connections a
        worker would take their deliveries for unknown ones, so nothing starts before this."""
        task, delay = asyncio.current_task(), 0.1
        while True:
            try:
                await self.refresh(force=True)
                return
            except (OSError, RedisError) as exc:
                if not redis_away(exc):
                    raise  # a wrong password or certificate: no wait mends it, so the start fails
                log.warning("connection.load_waiting", error=type(exc).__name__, retry_in_s=delay)
            if task is not None and task.cancelling():  # as in `watch`: a cancel the client swallowed
                raise asyncio.CancelledError
            await asyncio.sleep(delay)
            delay = min(delay * 2, LOAD_RETRY_MAX_S)

    async def watch(self, interval_s: float = WATCH_INTERVAL_S) -> None:
        """Poll the version for ever (a task of web and worker); a Redis outage only delays it.
        A cancel that lands inside a Redis call can be swallowed by the client (seen in CI: the
        task stayed `cancelling` and polled on, so shutdown waited for it for ever); the task's
        own count of cancel requests is checked after each poll, so a cancel always ends it."""
        task = asyncio.current_task()
        while True:
            try:
                await self.refresh()
            except (OSError, SealError, RedisError) as exc:  # kept alive: the next poll retries
                log.warning("connection.reload_failed", error=type(exc).__name__)
            if task is not None and task.cancelling():
                raise asyncio.CancelledError
            await asyncio.sleep(interval_s)
