"""What every ATS emulator shares: fault injection, the records endpoint, and a server runner.

An emulator is a Litestar app built by `sandbox_app(...)`: its own ATS routes plus

* ``POST /_sandbox/faults``  set fault injection (JSON body, see `Faults`); ``DELETE`` clears it.
* ``GET  /_sandbox/records`` everything the emulator holds, as JSON (seed data and what it got),
  plus ``max_in_flight``: the most ATS requests it was handling at once since the last reset,
  and ``calls``: the ATS requests received since the last reset, per ``"<METHOD> <path>"``
  (query strings left out), so tests can count what a read cost the ATS. The same counts are
  also under ``requests``; an emulator whose records have their own ``calls`` keeps them (OTYS:
  per JSON-RPC method, as every call shares one path).
* ``POST /_sandbox/reset``   back to the seed.

Faults are applied by an ASGI middleware in front of the ATS routes (never the ``/_sandbox``
ones). Modes, each chosen per request with its own probability, or forced for the next N
requests with ``script`` (a list of actions consumed in order):

* ``error``        answer `error_status` (default 503) without touching state
* ``rate_limit``   answer 429 with ``Retry-After: retry_after``
* ``drop``         close the connection before the request is processed (nothing stored)
* ``drop_after``   process the request (state changes!), then close the connection mid-answer
* ``timeout_after`` process the request, then stall `stall_s` seconds before answering
* ``latency_ms``   added to every request

``path_regex`` confines the faults to matching paths (e.g. ``/applications$``).
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import uvicorn
from litestar import Litestar, Request, Router, delete, get, post
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    Scope,
    Send,
)

SANDBOX_PREFIX = "/_sandbox"


class Faults(msgspec.Struct, forbid_unknown_fields=True):
    error_rate: float = 0.0
    error_status: int = 503
    rate_limit_rate: float = 0.0
    retry_after: int = 1
    drop_rate: float = 0.0
    drop_after_rate: float = 0.0
    timeout_after_rate: float = 0.0
    stall_s: float = 30.0
    latency_ms: int = 0
    path_regex: str | None = None
    methods: list[str] | None = None  # e.g. ["POST"]; None = all
    script: list[str] = []  # forced actions for the next requests: error|rate_limit|drop|...|ok
    seed: int | None = None


@dataclass
class FaultState:
    faults: Faults = field(default_factory=Faults)
    rng: random.Random = field(default_factory=random.Random)
    injected: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0  # ATS requests being handled now, and the most seen at once since reset
    max_in_flight: int = 0
    calls: dict[str, int] = field(default_factory=dict)  # "<METHOD> <path>" -> requests since reset

    def set(self, faults: Faults) -> None:
        self.faults = faults
        self.rng = random.Random(faults.seed)

    def matches(self, method: str, path: str) -> bool:
        f = self.faults
        if f.path_regex and not re.search(f.path_regex, path):
            return False
        return not (f.methods and method.upper() not in f.methods)

    def choose(self, method: str, path: str) -> str:
        f = self.faults
        if not self.matches(method, path):
            return "ok"
        if f.script:
            return f.script.pop(0)
        roll = self.rng.random()
        for action, rate in (
            ("error", f.error_rate),
            ("rate_limit", f.rate_limit_rate),
            ("drop", f.drop_rate),
            ("drop_after", f.drop_after_rate),
            ("timeout_after", f.timeout_after_rate),
        ):
            if roll < rate:
                return action
            roll -= rate
        return "ok"


class _DropConnection(Exception):
    """Raised after the response has started: the server closes the socket mid-answer."""


class FaultMiddleware:
    """ASGI middleware that injects the configured faults in front of the ATS routes."""

    def __init__(self, app: ASGIApp, state: FaultState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or scope["path"].startswith(SANDBOX_PREFIX):
            await self.app(scope, receive, send)
            return
        key = f"{scope['method']} {scope['path']}"
        self.state.calls[key] = self.state.calls.get(key, 0) + 1
        self.state.in_flight += 1
        self.state.max_in_flight = max(self.state.max_in_flight, self.state.in_flight)
        try:
            await self._handle(scope, receive, send)
        finally:
            self.state.in_flight -= 1

    async def _handle(self, scope: HTTPScope, receive: Receive, send: Send) -> None:
        faults = self.state.faults
        if faults.latency_ms and self.state.matches(scope["method"], scope["path"]):
            await asyncio.sleep(faults.latency_ms / 1000)
        action = self.state.choose(scope["method"], scope["path"])
        if action != "ok":
            self.state.injected[action] = self.state.injected.get(action, 0) + 1
        if action == "error":
            await _plain(send, faults.error_status, b'{"error":"injected fault"}')
            return
        if action == "rate_limit":
            await _plain(send, 429, b'{"error":"rate limited"}', [(b"retry-after", str(faults.retry_after).encode())])
            return
        if action == "drop":
            await _start_then_drop(send)
            return
        if action in ("drop_after", "timeout_after"):
            held: list[Message] = []

            async def hold(message: Message) -> None:
                held.append(message)

            await self.app(scope, receive, hold)
            if action == "timeout_after":
                await asyncio.sleep(faults.stall_s)
                for message in held:
                    await send(message)
                return
            await _start_then_drop(send)
            return
        await self.app(scope, receive, send)


async def _plain(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    start: HTTPResponseStartEvent = {
        "type": "http.response.start",
        "status": status,
        "headers": headers + (extra or []),
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)


async def _start_then_drop(send: Send) -> None:
    """Promise a body, send none, and fail: uvicorn then closes the connection, so the client sees
    a broken response (httpx.RemoteProtocolError), as with a dropped connection."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1000")]})
    raise _DropConnection


def sandbox_app(
    *,
    name: str,
    routes: list[Any],
    records: Callable[[], dict[str, Any]],
    reset: Callable[[], None],
    dependencies: dict[str, Any] | None = None,
    exception_handlers: dict[Any, Any] | None = None,
    request_max_body_size: int = 60_000_000,
) -> Litestar:
    """Build an emulator: its ATS routes behind fault injection, plus the /_sandbox endpoints."""
    faults = FaultState()

    @post(f"{SANDBOX_PREFIX}/faults", status_code=200, sync_to_thread=False)
    def set_faults(data: Faults) -> dict[str, Any]:
        faults.set(data)
        return {"faults": msgspec.to_builtins(data)}

    @delete(f"{SANDBOX_PREFIX}/faults", status_code=204, sync_to_thread=False)
    def clear_faults() -> None:
        faults.set(Faults())

    @get(f"{SANDBOX_PREFIX}/records", sync_to_thread=False)
    def get_records() -> dict[str, Any]:
        data = records()
        data["faults_injected"] = dict(faults.injected)
        data["max_in_flight"] = faults.max_in_flight
        data.setdefault("calls", dict(faults.calls))
        data["requests"] = dict(faults.calls)
        return data

    @post(f"{SANDBOX_PREFIX}/reset", status_code=200, sync_to_thread=False)
    def do_reset() -> dict[str, str]:
        reset()
        faults.set(Faults())
        faults.injected.clear()
        faults.max_in_flight = faults.in_flight
        faults.calls.clear()
        return {"reset": name}

    def wrap(app: ASGIApp) -> ASGIApp:
        return FaultMiddleware(app, faults)

    return Litestar(
        route_handlers=[Router(path="/", route_handlers=routes), set_faults, clear_faults, get_records, do_reset],
        middleware=[wrap],
        dependencies=dependencies,
        exception_handlers=exception_handlers or {},
        request_max_body_size=request_max_body_size,
        debug=False,
        logging_config=None,
    )


def new_id() -> str:
    """A Factorial-style opaque string id (string ids since API 2026-07-01)."""
    return str(time.time_ns() // 1000 + random.randint(0, 999))


def request_path(request: Request[Any, Any, Any]) -> str:
    return request.url.path


# ---------------------------------------------------------------------------------------------
# Running an emulator (CLI and tests)


def serve(app: ASGIApp, host: str = "127.0.0.1", port: int = 8090) -> None:
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)


class BackgroundServer:
    """An ASGI app served by uvicorn on a free loopback port in a daemon thread: real HTTP."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Without it, small answers wait for the delayed ACK: ~40 ms per request on loopback.
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        config = uvicorn.Config(app, log_level="critical", access_log=False, lifespan="on", timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
