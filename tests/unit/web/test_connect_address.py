"""The connect page's check of the address an employer types (app/web/connect/pages.py): the name
it resolves is the one the relay's client would then connect to, never another domain."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from app.web.connect import pages


@pytest.fixture
async def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The loop's resolver replaced by a table (there is no DNS here); records what it is asked."""
    table = {"xn--fa-hia.de": "93.184.215.14", "fass.de": "10.0.0.7", "intranet.example.com": "10.1.2.3"}
    asked: dict[str, str] = {}

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        asked[host] = table.get(host, "")
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "no such name")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    return asked


async def test_a_unicode_name_is_resolved_as_the_a_label_the_client_sends(resolver: dict[str, str]) -> None:
    """faß.de is xn--fa-hia.de to httpx (IDNA 2008) but fass.de to getaddrinfo's own codec (IDNA
    2003): the check must ask for the first, or it vouches for a domain nobody calls."""
    assert await pages._unsafe_address("https://faß.de/api") is None
    assert list(resolver) == ["xn--fa-hia.de"]


async def test_a_name_resolving_inside_the_network_is_refused(resolver: dict[str, str]) -> None:
    reason = await pages._unsafe_address("https://intranet.example.com/api")
    assert reason is not None and "private, loopback or link-local" in reason


async def test_a_name_that_does_not_resolve_is_refused_saying_so(resolver: dict[str, str]) -> None:
    reason = await pages._unsafe_address("https://nowhere.example.com/api")
    assert reason is not None and reason.endswith("(it does not resolve)")
