"""Connect links: a single-use, expiring URL an operator sends an employer, whose page asks for
the ATS credentials and makes the connection (docs/connections.md).

The token is 32 random bytes in the URL; Redis holds only its SHA-256, so a dump of Redis gives
no working link. `consume` is one GETDEL: of two submissions racing with one link, one wins. A refusal gives the
link back (`restore`) and counts (`refused`): past MAX_REFUSALS the page stops giving it back, so
a link is no oracle for guessing a key.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import msgspec
from redis.asyncio import Redis

from app.redis.keys import connect_failures_key, connect_link_key

MAX_TTL_S = 30 * 86400
DEFAULT_TTL_S = 7 * 86400
MAX_REFUSALS = 10  # refused credentials per link, then it is spent


class ConnectLink(msgspec.Struct, kw_only=True):
    connection_id: str
    connector: str
    created_at: float
    expires_at: float
    created_by: str
    base_url: str | None = None  # given by the operator (Laura's tenant URL), else asked on the page
    settings: dict[str, Any] = {}  # the connection's settings, as for POST /v1/connections
    reconnect: bool = False  # for a connection that exists: its credentials are replaced


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(ConnectLink)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(redis: Redis, link: ConnectLink) -> str:
    """Store `link`; returns its token (shown once, in the link's URL)."""
    token = secrets.token_urlsafe(32)
    ttl = max(1, int(link.expires_at - time.time()))
    await redis.set(connect_link_key(token_hash(token)), _encode(link), ex=ttl)
    return token


async def peek(redis: Redis, token: str) -> ConnectLink | None:
    """The link, if it is still unused and unexpired (the page shows it; nothing is spent)."""
    if not token or len(token) > 200:
        return None
    raw = await redis.get(connect_link_key(token_hash(token)))
    return _decode.decode(raw) if raw is not None else None


async def consume(redis: Redis, token: str) -> ConnectLink | None:
    """Spend the link: the first caller gets it, every later one None."""
    if not token or len(token) > 200:
        return None
    raw = await redis.getdel(connect_link_key(token_hash(token)))
    return _decode.decode(raw) if raw is not None else None


async def restore(redis: Redis, token: str, link: ConnectLink) -> None:
    """Give a consumed link back (the credentials it brought were refused: the employer may try
    again with the same link until it expires)."""
    ttl = int(link.expires_at - time.time())
    if ttl > 0:
        await redis.set(connect_link_key(token_hash(token)), _encode(link), ex=ttl, nx=True)


async def refused(redis: Redis, token: str, link: ConnectLink) -> int:
    """Count one refusal of the credentials a link brought; the count so far (it lives as long as
    the link)."""
    key = connect_failures_key(token_hash(token))
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expireat(key, int(link.expires_at) + 1)
        count, _ = await pipe.execute()
    return int(count)
