"""The connectors' HTTP client reports every network failure as the httpx error that says whether
the request left: that decides between a plain retry and an unknown outcome (find before create)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from app.net.ats_http import ats_client
from connectors.base import UnknownOutcome, error_for_transport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def drop_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.close()


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await asyncio.sleep(5)


def answer(raw: bytes) -> Handler:
    """A server that reads the request, writes `raw` and hangs up."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(raw)
        await writer.drain()
        writer.close()

    return handler


half_a_body = answer(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\nContent-Type: application/json\r\n\r\n{"id":')
garbage = answer(b"this is not HTTP\r\n\r\n")
fine = answer(b'HTTP/1.1 201 Created\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n{"id": 42}\n')


async def slow_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
    await writer.drain()
    await asyncio.sleep(5)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: Handler) -> str:
        async def closing(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                await handler(reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(closing, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for writer in writers:  # the handlers that still sleep: their sockets are closed, not left to the GC
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    for server in servers:
        server.close()
        await server.wait_closed()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_answer_comes_back_as_an_httpx_response(serve: Callable[[Handler], Awaitable[str]]) -> None:
    url = await serve(fine)
    async with ats_client() as http:
        response = await http.post(f"{url}/candidates", json={"a": 1}, timeout=2)
    assert response.status_code == 201
    assert response.json() == {"id": 42}


async def test_a_refused_connection_was_not_sent() -> None:
    async with ats_client() as http:
        with pytest.raises(httpx.ConnectError) as caught:
            await http.post(f"http://127.0.0.1:{_closed_port()}/candidates", json={}, timeout=2)
    assert not isinstance(error_for_transport(caught.value, "create", sent=True), UnknownOutcome)


@pytest.mark.parametrize(
    ("handler", "expected"),
    [
        (drop_after_request, httpx.RemoteProtocolError),
        (never_answer, httpx.ReadTimeout),
        (half_a_body, httpx.ReadError),
        (garbage, httpx.RemoteProtocolError),
        (slow_body, httpx.ReadTimeout),
    ],
)
async def test_a_failure_after_the_request_left_is_an_unknown_outcome(
    serve: Callable[[Handler], Awaitable[str]], handler: Handler, expected: type[Exception]
) -> None:
    url = await serve(handler)
    async with ats_client() as http:
        with pytest.raises(httpx.TransportError) as caught:
            response = await http.post(f"{url}/candidates", json={"a": 1}, timeout=0.5)
            response.json()
    assert isinstance(caught.value, expected), repr(caught.value)
    assert isinstance(error_for_transport(caught.value, "create", sent=True), UnknownOutcome)


async def test_no_cookie_set_by_one_answer_rides_on_the_next_request(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """Two connections can be two tenants of one ATS host: nothing may carry over between them."""
    seen: list[bytes] = []

    async def sets_cookie(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            seen.append(head)
            writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=tenant-a; Path=/\r\nContent-Length: 2\r\n\r\n{}")
            await writer.drain()

    url = await serve(sets_cookie)
    async with ats_client() as http:
        await http.get(f"{url}/a", timeout=2)
        await http.get(f"{url}/b", timeout=2)
        assert not http.cookies
        http.cookies = {"set": "by-code"}  # nor by assignment: the jar takes nothing, ever
        http.cookies["set"] = "by-item"
        await http.get(f"{url}/c", timeout=2)
        assert not http.cookies
    assert len(seen) == 3
    assert all(b"cookie" not in head.lower().replace(b"set-cookie", b"") for head in seen[1:])


async def test_an_egress_proxy_from_the_environment_carries_the_ats_calls(
    serve: Callable[[Handler], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    request_lines: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_lines.append(head.split(b"\r\n", 1)[0])
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    monkeypatch.setenv("HTTP_PROXY", await serve(proxy))
    async with ats_client() as http:
        response = await http.get("http://ats.example.invalid/v1/candidates", timeout=2)
    assert response.status_code == 200
    assert request_lines == [b"GET http://ats.example.invalid/v1/candidates HTTP/1.1"]


async def test_no_proxy_hosts_are_reached_directly(
    serve: Callable[[Handler], Awaitable[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A developer behind a corporate proxy (NO_PROXY=127.0.0.1) still reaches the local emulators."""

    async def unreachable_proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    monkeypatch.setenv("HTTP_PROXY", await serve(unreachable_proxy))
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    url = await serve(fine)
    async with ats_client() as http:
        response = await http.post(f"{url}/candidates", json={}, timeout=2)
    assert response.json() == {"id": 42}


async def test_a_url_that_is_not_http_is_refused_as_httpx_would() -> None:
    async with ats_client() as http:
        with pytest.raises(httpx.UnsupportedProtocol):
            await http.get("ftp://ats.example.org/candidates", timeout=2)
