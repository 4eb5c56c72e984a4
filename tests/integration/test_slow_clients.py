"""Slow clients cut off (issue 22, point 6): a client that sends its headers or its body too
slowly is answered 408 and closed within the timeout, one address cannot hold more than its
share of connections, and /health keeps answering throughout. Raw sockets, against the web server
as `applyrelay web` configures it (app/web/server.py), and once against that command itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.redis.embedded import free_port
from app.runtime import Runtime
from app.web import server
from app.web.app import create_app
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import ADMIN_TOKEN, DATA_KEY, REPO, Relay, config_toml

LIMITS = server.ClientLimits(
    header_timeout_s=1.0, body_timeout_s=1.0, body_deadline_s=2.5, max_connections_per_client=6
)


class GuardedServer:
    """The relay's app under uvicorn with the relay's client limits, on a loopback port."""

    def __init__(self, app: Any, limits: server.ClientLimits) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = server.config(app, limits, log_level="critical", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> GuardedServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


@pytest.fixture
def web(make_relay: Any, factorial: Emulator) -> Iterator[GuardedServer]:
    relay: Relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    with GuardedServer(create_app(Runtime(relay.settings)), LIMITS) as guarded:
        yield guarded


def connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    sock.settimeout(5)
    return sock


def read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed (monotonic)."""
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data, time.monotonic()
        data += chunk


def health_ms(port: int) -> float:
    started = time.perf_counter()
    response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    assert response.status_code == 200
    return (time.perf_counter() - started) * 1000


def test_a_client_that_never_finishes_its_headers_is_closed_with_a_408(web: GuardedServer) -> None:
    partial, silent = connect(web.port), connect(web.port)
    started = time.monotonic()
    partial.sendall(b"POST /v1/applications HTTP/1.1\r\nHost: relay\r\nContent-Type: appl")
    assert health_ms(web.port) < 500  # others are served meanwhile
    for sock in (partial, silent):
        data, closed = read_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 408 "), data
        assert b'"code":"PLATFORM.REQUEST_TIMEOUT"' in data
        assert LIMITS.header_timeout_s - 0.2 < closed - started < LIMITS.header_timeout_s + 1.5
        sock.close()


def test_headers_past_the_cap_are_a_431_and_a_large_body_is_not(web: GuardedServer) -> None:
    """httptools keeps a header whole until it ends: a 10 MB one was taken (a probe)."""
    sock = connect(web.port)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: relay\r\nX-Pad: ")
    for _ in range(5):  # 70 KB of one header, unfinished, in pieces: refused once past 64 KiB
        sock.sendall(b"a" * 14_000)
        time.sleep(0.05)
    data, _ = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 431 "), data
    assert b'"code":"PLATFORM.PAYLOAD_TOO_LARGE"' in data
    sock.close()
    within = httpx.get(f"http://127.0.0.1:{web.port}/health", headers={"x-pad": "a" * 30_000}, timeout=5)
    assert within.status_code == 200
    body = b'{"pad": "' + b"b" * 200_000 + b'"}'  # in the same packets as the headers: a body, not a head
    posted = httpx.post(
        f"http://127.0.0.1:{web.port}/v1/applications",
        content=body,
        headers={"authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"},
        timeout=5,
    )
    assert posted.status_code == 422, posted.text
    again = connect(web.port)  # keep-alive: the cap counts each request's head afresh
    request = b"GET /health HTTP/1.1\r\nHost: relay\r\nX-Pad: " + b"c" * 40_000 + b"\r\n\r\n"
    again.sendall(request + request)  # pipelined: 80 KB of heads, each within the cap
    received = b""
    while received.count(b"HTTP/1.1 200") < 2:
        chunk = again.recv(65536)
        assert chunk, received
        received += chunk
    again.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /v1/applications HTTP/1.1\r\nHost: relay\r\nContent-Length: -5\r\n\r\n",
        b"POST /v1/applications HTTP/1.1\r\nHost: relay\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"POST /v1/applications HTTP/1.1\r\nHost: relay\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /health HTTP/1.1\r\nHost: re\x7flay\r\n\r\n",
    ],
    ids=["negative length", "two lengths", "bad chunk size", "DEL in a header"],
)
def test_broken_framing_is_a_problem_json_400(web: GuardedServer, request_bytes: bytes) -> None:
    """uvicorn answered these with text/plain; every refusal of the relay is problem+json."""
    sock = connect(web.port)
    sock.sendall(request_bytes)
    data, _ = read_until_closed(sock)
    sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 "), data
    assert b"content-type: application/problem+json" in head
    assert json.loads(body)["code"] == "PLATFORM.INPUT_INVALID"


def test_head_is_answered_wherever_get_is(web: GuardedServer) -> None:
    """Litestar answered HEAD with a 405 on every GET route (a probe); health checks send it."""
    base = f"http://127.0.0.1:{web.port}"
    get, head = httpx.get(f"{base}/health", timeout=5), httpx.head(f"{base}/health", timeout=5)
    assert head.status_code == get.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["content-type"] == get.headers["content-type"]
    auth = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    assert httpx.head(f"{base}/v1/deliveries", headers=auth, timeout=5).status_code == 200
    assert httpx.head(f"{base}/v1/deliveries", timeout=5).status_code == 401  # the same guards as GET
    assert httpx.head(f"{base}/v1/applications", timeout=5).status_code == 405  # no GET there either
    sock = connect(web.port)  # keep-alive after a HEAD: no body was sent for the next to trip on
    sock.sendall(b"HEAD /health HTTP/1.1\r\nHost: relay\r\n\r\nGET /health HTTP/1.1\r\nHost: relay\r\n\r\n")
    received = b""
    while b'{"status":"ok"}' not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    assert received.count(b"HTTP/1.1 200") == 2
    sock.close()


def test_a_body_one_byte_short_is_closed_with_a_408(web: GuardedServer) -> None:
    sock = connect(web.port)
    body = b'{"connection_id": "acme"}'
    sock.sendall(
        b"POST /v1/applications HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {len(body) + 1}\r\n\r\n".encode()
        + body
    )
    started = time.monotonic()
    for _ in range(3):
        assert health_ms(web.port) < 500
    data, closed = read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert closed - started < LIMITS.body_timeout_s + 1.5
    sock.close()


def test_a_body_that_keeps_coming_is_not_cut_and_keep_alive_still_works(web: GuardedServer) -> None:
    """Pauses shorter than the body timeout are fine, however long the whole body takes; and a
    connection that is used again within the keep-alive time serves its next request."""
    sock = connect(web.port)
    body = b'{"connection_id": "acme", "candidate": {}}'
    sock.sendall(
        b"POST /v1/applications HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    )
    for i in range(0, len(body), 15):  # 3 reads, 0.6 s apart: ~1.8 s in all, under the body deadline
        time.sleep(0.6)
        sock.sendall(body[i : i + 15])
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 422 "), answer  # the app read it all and refused the content
    time.sleep(0.5)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: relay\r\n\r\n")
    assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
    sock.close()


def test_a_body_trickling_in_is_cut_at_the_body_deadline(web: GuardedServer) -> None:
    """A byte every 0.3 s never pauses for the body timeout: the whole body's deadline cuts it."""
    sock = connect(web.port)
    sock.sendall(
        b"POST /v1/applications HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 1000\r\n\r\n".encode()
    )
    started = time.monotonic()
    sock.settimeout(0.3)
    data = b""
    while time.monotonic() - started < LIMITS.body_deadline_s + 2:
        try:
            sock.sendall(b" ")
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    closed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408 "), data
    assert LIMITS.body_deadline_s - 0.3 < closed < LIMITS.body_deadline_s + 1.0, closed
    sock.close()


def test_one_client_cannot_hold_every_connection(web: GuardedServer) -> None:
    """From 127.0.0.2 (one client), past its share: 429 and closed at once; another address
    (127.0.0.1, the /health probe) is served all along, and the slots come back once cut."""
    held = [connect(web.port, source="127.0.0.2") for _ in range(LIMITS.max_connections_per_client)]
    time.sleep(0.1)
    started = time.monotonic()
    extra = connect(web.port, source="127.0.0.2")
    data, closed = read_until_closed(extra)
    assert data.startswith(b"HTTP/1.1 429 ") and closed - started < 0.5, data
    assert b'"code":"PLATFORM.CONCURRENCY_LIMIT_EXCEEDED"' in data
    assert health_ms(web.port) < 500
    for sock in held:  # cut at the header timeout, which frees the slots
        read_until_closed(sock)
        sock.close()
    again = connect(web.port, source="127.0.0.2")
    again.sendall(b"GET /health HTTP/1.1\r\nHost: relay\r\n\r\n")
    assert again.recv(65536).startswith(b"HTTP/1.1 200 ")
    again.close()


@pytest.mark.slow
def test_applyrelay_web_cuts_a_slow_client(tmp_path: Path, redis_url: str, factorial: Emulator) -> None:
    """The command operators run, not only its configuration."""
    config = tmp_path / "applyrelay.toml"
    config.write_text(config_toml({"acme": connection_table("factorial", factorial.url)}))
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "APPLYRELAY_CONFIG": str(config),
        "APPLYRELAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "APPLYRELAY_DATA_KEY": DATA_KEY,
        "TEST_FACTORIAL_KEY": "sandbox",
        "APPLYRELAY_HEADER_TIMEOUT_S": "1",
        "PYTHONPATH": str(REPO),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "web", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                health_ms(port)
                break
            except (httpx.HTTPError, AssertionError):
                assert time.monotonic() < deadline and process.poll() is None, "applyrelay web did not start"
                time.sleep(0.2)
        sock = connect(port)
        sock.sendall(b"GET /health HTTP/1.1\r\nHo")
        started = time.monotonic()
        data, closed = read_until_closed(sock)
        assert data.startswith(b"HTTP/1.1 408 ") and closed - started < 2.5, data
        sock.close()
    finally:
        process.terminate()
        process.wait(timeout=15)
