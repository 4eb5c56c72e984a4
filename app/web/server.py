"""The web server: uvicorn, with the client limits it lacks (docs/operations.md, "Slow clients").

uvicorn bounds how long an idle keep-alive connection stays (`timeout_keep_alive`, armed only
after a response) and how many connections the process holds (`limit_concurrency`, answered
503 for everyone once reached), but not how long a client may take to send its headers or its
body: a connection that sends half a request line, or a body one byte short, is held for ever,
and a few hundred of them exhaust the process's file descriptors. `GuardedHttpToolsProtocol`
adds, per connection:

- a header deadline (`header_timeout_s`): from the connection's start, or the end of the last
  response, to the end of the request's headers; past it, 408 and the connection is closed;
- a body idle timeout (`body_timeout_s`): the longest pause between two reads of a body (what
  nginx's `client_body_timeout` means), and a deadline for the whole body (`body_deadline_s`), so
  that a byte every few seconds cannot hold it either; while the app itself stops reading (flow
  control), the client is not blamed;
- a limit on concurrent connections per client address (`max_connections_per_client`): the
  connection past it is answered 429 and closed at once, so one client cannot take every slot;
- a cap on a request's line and headers (`max_header_bytes`, 64 KiB): past it, 431 and closed.

It is the relay's own, rather than a front proxy's, because `applyrelay run` is also deployed
alone (the embedded default); behind a proxy, set the proxy's equivalents too and raise
`max_connections_per_client` (every client is then the proxy's address).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.settings import Settings


@dataclass(frozen=True)
class ClientLimits:
    header_timeout_s: float = 10.0
    body_timeout_s: float = 15.0
    body_deadline_s: float = 300.0  # a whole body, however steadily it trickles in (25 MB at ~1 Mbit/s)
    max_connections_per_client: int = 64  # 0: no limit
    # A request's line and headers together (nginx's default is 32 KB, h11's 16 KB): httptools
    # keeps a header whole until it ends, so without a cap one request could hold any memory.
    max_header_bytes: int = 65_536


def _raw_problem(status: int, reason: str, code: str, detail: str) -> bytes:
    body = (
        f'{{"type":"about:blank","title":"{reason}","status":{status},"detail":"{detail}","code":"{code}"}}'
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    return head + body


TIMED_OUT = _raw_problem(
    408, "Request Timeout", "PLATFORM.REQUEST_TIMEOUT", "the request was not received in time; nothing was stored"
)
HEADERS_TOO_LARGE = _raw_problem(
    431,
    "Request Header Fields Too Large",
    "PLATFORM.PAYLOAD_TOO_LARGE",
    "the request line and headers are larger than the server takes; nothing was stored",
)
MALFORMED = _raw_problem(
    400, "Bad Request", "PLATFORM.INPUT_INVALID", "the request is not valid HTTP/1.1; nothing was stored"
)
TOO_MANY = _raw_problem(
    429, "Too Many Requests", "PLATFORM.CONCURRENCY_LIMIT_EXCEEDED", "too many connections from this client at once"
)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body read timeouts and a per-client
    connection limit. A subclass per server (`guarded_protocol`) holds its limits and counts."""

    limits: ClassVar[ClientLimits] = ClientLimits()
    per_client: ClassVar[dict[str, int]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_timer: asyncio.TimerHandle | None = None
        self._address: str | None = None
        self._in_body = False
        self._body_due = 0.0  # loop time by which the body must be complete
        self._header_bytes: int | None = 0  # read of the next request's head; None once it is complete

    # -- connections ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else ""
        cap = self.limits.max_connections_per_client
        if cap and self.per_client.get(address, 0) >= cap:
            transport.write(TOO_MANY)
            transport.close()
            return
        self._address = address
        self.per_client[address] = self.per_client.get(address, 0) + 1
        self._arm(self.limits.header_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._address is not None:
            left = self.per_client.get(self._address, 1) - 1
            if left > 0:
                self.per_client[self._address] = left
            else:
                self.per_client.pop(self._address, None)
            self._address = None
        super().connection_lost(exc)

    # -- the timers -----------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._read_timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self._in_body and self.flow is not None and self.flow.read_paused:
            self._body_due += self.limits.body_timeout_s
            self._arm(self.limits.body_timeout_s)  # the app is not reading: not the client's fault
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(TIMED_OUT)
        self.transport.close()

    # -- the parser's events --------------------------------------------------------------------

    def _arm_body(self) -> None:
        self._arm(max(min(self.limits.body_timeout_s, self._body_due - self.loop.time()), 0.0))

    def data_received(self, data: bytes) -> None:
        if self._in_body:
            self._arm_body()
        elif self._header_bytes is not None:
            self._header_bytes += len(data)  # a chunk may also hold the body's start: checked after parsing
        super().data_received(data)
        if self._header_bytes is not None and self._header_bytes > self.limits.max_header_bytes:
            if not self.transport.is_closing():
                self.transport.write(HEADERS_TOO_LARGE)
                self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """httptools refused the bytes (a bad chunk size, a negative or doubled Content-Length,
        a control character in a header): problem+json like every other refusal, not uvicorn's
        text/plain, then closed as uvicorn does."""
        if not self.transport.is_closing():
            self.transport.write(MALFORMED)
            self.transport.close()

    def on_headers_complete(self) -> None:
        self._header_bytes = None
        self._disarm()
        self._in_body = True  # until the message is complete (at once for a request without a body)
        self._body_due = self.loop.time() + self.limits.body_deadline_s
        self._arm_body()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._header_bytes = 0  # what follows is the next request's head (pipelined, or keep-alive)
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # the next request, already read, starts now
        super().on_response_complete()
        if not pipelined and not self.transport.is_closing() and self._address is not None:
            self._arm(self.limits.header_timeout_s)  # the next request's headers, on this connection


def limits_of(settings: Settings) -> ClientLimits:
    return ClientLimits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        body_deadline_s=settings.body_deadline_s,
        max_connections_per_client=settings.max_connections_per_client,
    )


def guarded_protocol(limits: ClientLimits) -> type[GuardedHttpToolsProtocol]:
    """A protocol class of its own for one server: its limits and its per-client counts."""
    return type("GuardedHttpTools", (GuardedHttpToolsProtocol,), {"limits": limits, "per_client": {}})


class HeadAsGet:
    """HEAD served as GET without the body (RFC 9110 §9.3.2: a server SHOULD answer HEAD wherever
    it answers GET; health checks and link checkers send it). Litestar routes HEAD only to
    `@head` handlers, which may not return a body, so the app is asked for GET; uvicorn, whose
    own scope still says HEAD, sends the headers (Content-Length included) and drops the body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


def config(app: Any, limits: ClientLimits, **options: Any) -> uvicorn.Config:
    """The uvicorn configuration `applyrelay web` runs (and the tests of these limits)."""
    return uvicorn.Config(HeadAsGet(app), http=guarded_protocol(limits), **options)
