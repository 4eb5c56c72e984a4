"""The helpers the REST connectors share (connectors/http.py): the TTL cache on a test clock and
the API passthrough on a canned transport."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx
import pytest

from connectors.base import PermanentError, error_for_transport
from connectors.http import ANY_STATUS, TtlCache, rest_passthrough


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_their_ttl() -> None:
    clock = Clock()
    cache: TtlCache[str, list[int]] = TtlCache(60, clock=clock)
    assert cache.get("job") is None
    cache.put("job", [1])
    clock.now += 59.9
    assert cache.get("job") == [1]
    clock.now += 0.1
    assert cache.get("job") is None and len(cache) == 0


def test_a_full_cache_starts_again_empty() -> None:
    cache: TtlCache[int, int] = TtlCache(60, max_entries=2, clock=Clock())
    cache.put(1, 1)
    cache.put(2, 2)
    cache.put(2, 20)  # replacing a key keeps the others
    assert (cache.get(1), cache.get(2)) == (1, 20)
    cache.put(3, 3)
    assert (cache.get(1), cache.get(2), cache.get(3)) == (None, None, 3)


async def test_get_or_load_reads_once_per_ttl_and_fresh_reads_again() -> None:
    clock, calls = Clock(), []
    cache: TtlCache[str, list[str]] = TtlCache(60, clock=clock)

    async def load() -> list[str]:
        calls.append(clock.now)
        return []  # an empty answer is cached too

    for _ in range(3):
        assert await cache.get_or_load("k", load) == []
    assert len(calls) == 1
    await cache.get_or_load("k", load, fresh=True)
    clock.now += 61
    await cache.get_or_load("k", load)
    assert len(calls) == 3


def _client(seen: list[httpx.Request]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/text"):
            return httpx.Response(503, text="down", headers={"retry-after": "7", "set-cookie": "s=1"})
        return httpx.Response(404, json={"error": "nope"}, headers={"x-request-id": "r1", "set-cookie": "s=1"})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


async def _send(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return await http.request(method, url, headers={"authorization": "Bearer k"}, **kwargs)
    except httpx.HTTPError as exc:
        raise error_for_transport(exc, "passthrough", sent=True) from None


async def test_passthrough_relays_the_ats_answer_and_a_few_headers() -> None:
    seen: list[httpx.Request] = []
    async with _client(seen) as http:
        send = functools.partial(_send, http)
        result = await rest_passthrough(send, "https://ats.example/api", "post", "/jobs/1", {"a": "b"}, {"x": 1})
        assert (result.status, result.body) == (404, {"error": "nope"})
        assert result.headers == {"content-type": "application/json", "x-request-id": "r1"}
        assert str(seen[-1].url) == "https://ats.example/api/jobs/1?a=b" and json.loads(seen[-1].content) == {"x": 1}
        text = await rest_passthrough(send, "https://ats.example/api", "GET", "text", None, {"ignored": True})
        assert (text.status, text.body, text.headers["retry-after"]) == (503, "down", "7")
        assert seen[-1].content == b""  # a GET carries no body
        for method, path in (("TRACE", "jobs"), ("GET", "../admin"), ("GET", "https://evil.example/x")):
            with pytest.raises(PermanentError):
                await rest_passthrough(send, "https://ats.example/api", method, path, None, None)
    assert len(seen) == 2
    assert 599 in ANY_STATUS and 200 in ANY_STATUS
