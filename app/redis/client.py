"""Where Redis is: `REDIS_URL`, or Redis Sentinel for high availability.

    REDIS_URL=redis://:<password>@redis:6379/0                 one Redis (AOF on)
    REDIS_SENTINELS=sentinel-0:26379,sentinel-1:26379,...       + the Sentinels to ask for the master
    REDIS_SENTINEL_MASTER=mymaster                              + the monitored master's name

With Sentinels set, REDIS_URL still gives the password and database; its host is not used: web
and worker ask the Sentinels for the current master and follow a failover. (arq supports
Sentinel, not Redis Cluster: the relay's transactions span keys, so scale beyond one master by
running one Redis per group of connections, see docs/operations.md.)
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Mapping
from typing import TypedDict, TypeVar, cast
from urllib.parse import unquote, urlsplit

from arq.connections import RedisSettings
from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

from app.config import ConfigError

T = TypeVar("T")


def awaited(value: Awaitable[T] | T) -> Awaitable[T]:
    """The awaitable of an asyncio client's command: redis-py types its command methods once for
    the sync and the asyncio clients (`Awaitable[T] | T`), so mypy needs telling which one this is.
    No runtime effect: `await awaited(redis.hlen(key))` awaits what `hlen` returned."""
    return cast("Awaitable[T]", value)


class _Options(TypedDict):
    socket_connect_timeout: float
    socket_timeout: float
    retry_on_timeout: bool
    health_check_interval: int


def sentinels(env: Mapping[str, str] | None = None) -> tuple[list[tuple[str, int]], str] | None:
    env = os.environ if env is None else env
    raw = env.get("REDIS_SENTINELS", "").strip()
    if not raw:
        return None
    hosts = []
    for item in (h.strip() for h in raw.split(",") if h.strip()):
        host, _, port = item.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"REDIS_SENTINELS: expected host:port[,host:port...], got {item!r}")
        hosts.append((host, int(port)))
    return hosts, env.get("REDIS_SENTINEL_MASTER", "mymaster")


def _auth(url: str) -> tuple[str | None, str | None, int]:
    parts = urlsplit(url)
    db = parts.path.strip("/")
    return (
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
        int(db) if db.isdigit() else 0,
    )


def async_client(url: str, env: Mapping[str, str] | None = None) -> Redis:
    options = _Options(socket_connect_timeout=2, socket_timeout=10, retry_on_timeout=True, health_check_interval=15)
    found = sentinels(env)
    if found is None:
        return Redis.from_url(url, **options)
    hosts, master = found
    username, password, db = _auth(url)
    sentinel = Sentinel(hosts, socket_connect_timeout=2, socket_timeout=2)
    return sentinel.master_for(master, username=username, password=password, db=db, **options)


def arq_settings(url: str, env: Mapping[str, str] | None = None) -> RedisSettings:
    found = sentinels(env)
    if found is None:
        settings = RedisSettings.from_dsn(url)
    else:
        hosts, master = found
        username, password, db = _auth(url)
        settings = RedisSettings(
            host=hosts,
            sentinel=True,
            sentinel_master=master,
            username=username,
            password=password,
            database=db,
        )
    settings.retry_on_timeout = True
    settings.conn_retries = 30
    settings.conn_retry_delay = 1
    return settings
