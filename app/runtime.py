"""What the web and worker processes share: one Redis client, the store, the connectors."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable

import httpx
from redis.asyncio import Redis

from app.blobs.capacity import Capacity, refuse_evicting_policy
from app.blobs.store import BlobUnavailable, open_store
from app.catalog import Catalog
from app.config import Config, Connection
from app.connections import credentials, oauth
from app.connections.registry import ConnectionRegistry
from app.connections.service import ConnectionService
from app.connections.store import ConnectionStore
from app.core import files
from app.core.model import AttachmentRef
from app.delivery.record import Delivery
from app.delivery.store import DeliveryStore
from app.net import ssrf
from app.net.ats_http import ats_client
from app.privacy.crypto import AesGcmSealer, Pseudonyms
from app.redis import client
from app.settings import Settings
from connectors import connector_class
from connectors.base import AttachmentRejected, Connector, PermanentError, TokenSource, TransientError


def redis_client(url: str) -> Redis:
    """REDIS_URL, or the master the Sentinels name when REDIS_SENTINELS is set (app/client.py)."""
    return client.async_client(url)


TokensFor = Callable[[Connection], TokenSource | None]


class ConnectorPool:
    """One connector instance per connection, reused across deliveries (tokens, sessions), and
    made anew when the connection changed (a connection made through the API was edited: the
    registry then holds a new Connection object). `tokens_for`: the shared OAuth token source of
    a connection whose tokens the relay keeps (app/connections/oauth.py)."""

    def __init__(self, config: Config, http: httpx.AsyncClient, tokens_for: TokensFor | None = None) -> None:
        self.config = config
        self.http = http
        self.tokens_for = tokens_for
        self._connectors: dict[str, tuple[Connection, Connector]] = {}
        self._retired: list[Connector] = []

    def get(self, connection_id: str) -> Connector:
        connection = self.config.connections[connection_id]
        cached = self._connectors.get(connection_id)
        if cached is not None and cached[0] is connection:
            return cached[1]
        spec = connection.spec()
        tokens = self.tokens_for(connection) if self.tokens_for is not None else None
        if tokens is not None:
            spec = dataclasses.replace(spec, tokens=tokens)
        connector = connector_class(connection.connector)(spec, self.http)
        self._connectors[connection_id] = (connection, connector)
        if cached is not None:  # the old one's sessions end with it (closed when the pool closes)
            self._retired.append(cached[1])
        return connector

    async def close(self) -> None:
        for _, connector in self._connectors.values():
            await connector.close()
        for connector in self._retired:
            await connector.close()


class Runtime:
    def __init__(self, settings: Settings, redis: Redis | None = None) -> None:
        self.settings = settings
        self.redis = redis or redis_client(settings.redis_url)
        if not settings.data_keys:
            raise ValueError("Settings.data_keys is empty: candidate data is only stored encrypted")
        self.sealer = AesGcmSealer(settings.data_keys)
        # the file's connections and those made through the API (app/connections/, docs/connections.md)
        self.connection_store = ConnectionStore(self.redis, self.sealer)
        self.registry = ConnectionRegistry(settings.config.connections, settings.config.limits, self.connection_store)
        self.config = dataclasses.replace(settings.config, connections=self.registry)
        self._watch: asyncio.Task[None] | None = None
        self.blobs = open_store(settings.blobs)  # attachment bytes (app/blobs): local files or S3
        self.capacity = Capacity(self.redis, self.blobs)  # Redis headroom, the blob store: intake's 503s
        self.store = DeliveryStore(self.redis, sealer=self.sealer, blobs=self.blobs, capacity=self.capacity)
        self.pseudonyms = Pseudonyms(self.redis, self.sealer)
        self.http = httpx.AsyncClient(limits=httpx.Limits(max_connections=200, max_keepalive_connections=50))
        self.ats_http = ats_client()  # the connectors' client (app/net/ats_http.py says why it differs)
        # Factorial OAuth: one token chain per connection, shared by every process (app/connections/oauth.py)
        self.oauth_app = oauth.OAuthApp.from_env(public_url=settings.public_url)
        self.oauth_tokens = oauth.TokenStore(self.redis, self.sealer)
        self.connectors = ConnectorPool(self.config, self.ats_http, tokens_for=self.token_chain)
        self.connections = ConnectionService(
            self.connection_store, self.registry, self.ats_http, tokens_for=self.pending_tokens
        )
        self.catalog = Catalog(self.redis, self.config, self.connectors.get)  # ATS reads, cached (docs/catalog.md)

    def _refresher(self, connection: Connection, app: oauth.OAuthApp | None) -> oauth.Refresher:
        return oauth.Refresher(self.ats_http, connection.base_url, app, connection.timeout_s)

    def token_chain(self, connection: Connection) -> TokenSource | None:
        """The shared chain of a connection whose OAuth tokens the relay keeps, or of a file
        connection with Factorial's env-based OAuth (seeded from its environment)."""
        if connection.oauth_tokens:
            return oauth.TokenChain(self.oauth_tokens, connection.id, self._refresher(connection, self.oauth_app))
        found = oauth.file_chain_seed(connection)
        if found is None:
            return None
        app, seed = found
        return oauth.TokenChain(self.oauth_tokens, connection.id, self._refresher(connection, app), seed)

    def pending_tokens(self, connection: Connection, creds: credentials.Credentials) -> TokenSource | None:
        """The tokens a new (or reconnected) connection brings, checked before anything is stored."""
        if not isinstance(creds, credentials.FactorialCredentials) or not (creds.access_token and creds.refresh_token):
            return None
        tokens = oauth.Tokens(access_token=creds.access_token, refresh_token=creds.refresh_token)
        return oauth.PendingTokens(
            self.oauth_tokens, connection.id, self._refresher(connection, self.oauth_app), tokens
        )

    async def load_attachment(self, delivery: Delivery, ref: AttachmentRef) -> bytes:
        """A file's bytes: stored at intake, or fetched (once) from its data_url behind the guard."""
        try:
            data = await self.store.load_file(delivery.id, ref.index)
        except BlobUnavailable as exc:  # our store, not the ATS: retried on the schedule, no crash
            raise TransientError(f"attachment #{ref.index}: {exc}") from None
        if data:
            return data
        if not ref.data_url:
            raise PermanentError(f"attachment #{ref.index}: its bytes are no longer stored")
        connection = self.config.connections[delivery.connection_id]
        try:
            data, _declared = await ssrf.fetch(
                ref.data_url,
                self.http,
                max_bytes=connection.limits.max_file_bytes,
                allow_hosts=connection.fetch_allow_hosts,
                allow_http=connection.fetch_allow_http,
                timeout_s=connection.timeout_s,
            )
            files.check_allowed(files.sniff(data), connection.allowed_attachment_types)
        except (ssrf.UnsafeURL, files.FileRejected) as exc:
            raise AttachmentRejected(f"attachment #{ref.index}: {exc}") from None
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            if status in (408, 425, 429) or status >= 500:
                raise TransientError(f"attachment #{ref.index}: download HTTP {status}", status=status) from None
            raise AttachmentRejected(f"attachment #{ref.index}: download HTTP {status}") from None
        except (httpx.HTTPError, OSError) as exc:
            raise TransientError(f"attachment #{ref.index}: download failed ({type(exc).__name__})") from None
        try:
            await self.store.store_file(delivery.id, ref.index, data)
        except BlobUnavailable as exc:
            raise TransientError(f"attachment #{ref.index}: {exc}") from None
        return data

    async def start(self) -> None:
        """Load the API's connections, then follow their changes (web and worker start-up).
        Redis's eviction policy is checked once the load found Redis: a process started while it
        was away must not skip the check (an evicted delivery is a lost application)."""
        await self.registry.load()
        await refuse_evicting_policy(self.redis)
        if self._watch is None:
            self._watch = asyncio.create_task(self.registry.watch(), name="connections.watch")

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            # bounded: a shutdown must never hang on the poll (app/connections/registry.py watch)
            await asyncio.wait({self._watch}, timeout=5)
        await self.connectors.close()
        await self.http.aclose()
        await self.ats_http.aclose()
        await self.redis.aclose()

    def __repr__(self) -> str:  # pragma: no cover
        return f"Runtime(connections={list(self.config.connections)})"
