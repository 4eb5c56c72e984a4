"""What the REST connectors share over HTTP: a small TTL cache for the ATS's slow-changing reads
(questions, stages, sources) and the API passthrough.

A connector lives for the worker's lifetime, so what it reads about a tenant (a job's questions,
the pipeline's stage names) is kept for a short while instead of being asked for every delivery;
`TtlCache` is that memory, with a clock a test can move. `rest_passthrough` is the admin API's
raw call to the ATS (``POST /v1/connections/{id}/passthrough``): confined under the API base,
sent by the connector's own transport (its credentials, its refresh), answered as the ATS
answered.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

import httpx

from connectors.base import PassthroughResult, PermanentError, confined_url

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# ---------------------------------------------------------------------------------------------
# TTL cache


class TtlCache(Generic[K, V]):
    """Values kept `ttl_s` seconds after they were stored. Past `max_entries` keys the cache
    starts again empty (a tenant with thousands of jobs must not grow a worker without bound;
    an emptied cache only costs a re-read). No lock: two concurrent misses both read, as before."""

    def __init__(self, ttl_s: float, *, max_entries: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        """The value stored under `key` less than `ttl_s` ago, else None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.clock() - entry[0] >= self.ttl_s:
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: V) -> V:
        if key not in self._entries and len(self._entries) >= self.max_entries:
            self._entries.clear()
        self._entries[key] = (self.clock(), value)
        return value

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]], *, fresh: bool = False) -> V:
        """The cached value, or `load()`'s (then cached); `fresh` reads again whatever is cached."""
        if not fresh:
            cached = self.get(key)
            if cached is not None:
                return cached
        return self.put(key, await load())

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


# ---------------------------------------------------------------------------------------------
# REST passthrough

PASSTHROUGH_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
PASSTHROUGH_HEADERS = frozenset({"content-type", "retry-after", "x-request-id"})
ANY_STATUS = tuple(range(100, 600))  # the passthrough relays the ATS's answer, errors included

Send = Callable[..., Awaitable[httpx.Response]]
"""``send(method, url, params=..., json=...)``: the connector's authenticated call. It must
return every HTTP answer (pass ``expect=ANY_STATUS`` to `Connector.request`-like helpers) and
raise only for transport failures (`error_for_transport`)."""


async def rest_passthrough(
    send: Send, base_url: str, method: str, path: str, query: Mapping[str, str] | None, body: Any
) -> PassthroughResult:
    """One call under `base_url` (`confined_url` refuses anything that could leave it) with the
    connector's credentials; the ATS's status, a few headers (never its cookies or auth) and its
    body (JSON, else text) come back as they are. A GET carries no body."""
    method = method.upper()
    if method not in PASSTHROUGH_METHODS:
        raise PermanentError(f"passthrough method {method} is not allowed")
    url = confined_url(base_url, path)
    kwargs: dict[str, Any] = {"params": dict(query or {})}
    if body is not None and method != "GET":
        kwargs["json"] = body
    response = await send(method, url, **kwargs)
    try:
        content: Any = response.json()
    except ValueError:
        content = response.text
    headers = {k.lower(): v for k, v in response.headers.items() if k.lower() in PASSTHROUGH_HEADERS}
    return PassthroughResult(status=response.status_code, headers=headers, body=content)
