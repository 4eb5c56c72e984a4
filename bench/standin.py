"""An ATS stand-in that is never the bottleneck: canned Factorial answers for the calls a
delivery makes (issue 21; bench/RESULTS.md, "2026-12-01 (issue 21)").

Two servers answer the same table (`ROUTES`):

* `Nginx`: Debian's nginx (`apt-get install -y nginx-light`) on loopback, with its own prefix,
  config and logs in a temp directory (no root, no /etc/nginx), one process (`master_process off`)
  so its CPU is one /proc entry. `return` answers from memory: ~20-40 us of CPU a call.
* `Sleeper`: the same answers after `delay_s` (P2 latency-bound). nginx cannot wait before it
  answers (no echo_sleep in nginx-light, and a proxy to a delayed upstream would need the delayed
  upstream anyway), so this is a uvloop `asyncio.Protocol` that parses just the request line and
  Content-Length and answers from a `call_later` timer: no coroutine or task per request, a few
  per cent of a core at the few hundred calls a second a latency-bound drain makes.

The answers: the credentials' company, one candidate source (LinkedIn), "no candidate with that
email", a created candidate, a created application (without a source: the relay then PUTs it,
as against the emulator), the PUT's answer; and for intake's check of the job, an open posting
with no questions and no phases. A fixed id for each: the stand-in keeps no state.

    python -m bench.standin nginx|sleeper PORT [DELAY_S]    # serve until killed
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

PREFIX = "/api/2026-07-01/resources/"
COMPANY_ID = "1"
SOURCE_ID = "4001"
CANDIDATE_ID = "5001"
APPLICATION_ID = "6001"
MESSAGE_ID = "8001"
JOB_ID = "2001"  # the bench's applications' (bench/procs.py)


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # under PREFIX; a trailing "*" matches any rest (the PUT's application id)
    status: int
    body: str


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


_PAGE_META: dict[str, object] = {"has_previous_page": False, "has_next_page": False, "limit": 100}
ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        "api_public/credentials",
        200,
        _json({"data": [{"id": "1", "company_id": COMPANY_ID, "employee_id": "1", "name": "Stand-in S.L."}]}),
    ),
    Route(
        "GET",
        "ats/candidate_sources",
        200,
        _json(
            {
                "data": [{"id": SOURCE_ID, "name": "linkedin", "label": "LinkedIn", "category": "social_media"}],
                "meta": _PAGE_META | {"total": 1},
            }
        ),
    ),
    Route("GET", "ats/candidates", 200, _json({"data": [], "meta": _PAGE_META | {"total": 0}})),
    Route(
        "POST",
        "ats/candidates",
        201,
        _json({"id": CANDIDATE_ID, "company_id": COMPANY_ID, "first_name": "x", "last_name": "y", "email": "z"}),
    ),
    Route(
        "POST",
        "ats/applications",
        201,
        _json(
            {
                "id": APPLICATION_ID,
                "company_id": COMPANY_ID,
                "ats_job_posting_id": "2001",
                "ats_candidate_id": CANDIDATE_ID,
                "qualified": True,
                "ats_conversation_id": "7001",
                "source_id": None,
            }
        ),
    ),
    Route("PUT", "ats/applications/*", 200, _json({"id": APPLICATION_ID, "source_id": SOURCE_ID})),
    # A CV, uploaded as a message on the application (bench p2lat --cv-bytes: a slot's memory).
    Route("POST", "ats/messages", 201, _json({"id": MESSAGE_ID})),
    # What intake reads of the job before it accepts (app/intake/screening.py: an open job, its
    # questions and phases); the catalog caches it, so a drain's enqueue asks once.
    Route(
        "GET",
        f"ats/job_postings/{JOB_ID}",
        200,
        _json({"id": int(JOB_ID), "title": "Stand-in job", "status": "published", "company_id": int(COMPANY_ID)}),
    ),
    Route("GET", "ats/questions", 200, _json({"data": [], "meta": _PAGE_META | {"total": 0}})),
    Route("GET", "ats/application_phases", 200, _json({"data": [], "meta": _PAGE_META | {"total": 0}})),
)
# The calls of one delivery once the company and the sources are cached (the first delivery of
# a worker process also reads those two): lookup, candidate, application, its source.
CALLS_PER_DELIVERY = 4


def _nginx_conf(port: int, root: Path) -> str:
    locations = []
    by_path: dict[str, list[Route]] = {}
    for route in ROUTES:
        by_path.setdefault(route.path, []).append(route)
    for path, routes in by_path.items():
        match = f"^~ {PREFIX}{path[:-1]}" if path.endswith("*") else f"= {PREFIX}{path}"
        lines = [f"    location {match} {{"]
        for route in routes:
            body = route.body.replace("'", "\\'")
            lines.append(f"      if ($request_method = {route.method}) {{ return {route.status} '{body}'; }}")
        lines.append("      return 405;")
        lines.append("    }")
        locations.append("\n".join(lines))
    temp = {name: root / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {root / "nginx.pid"};
error_log {root / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_body_temp_path {temp["body"]};
  proxy_temp_path {temp["proxy"]};
  fastcgi_temp_path {temp["fastcgi"]};
  uwsgi_temp_path {temp["uwsgi"]};
  scgi_temp_path {temp["scgi"]};
  client_body_buffer_size 64k;
  server {{
    listen 127.0.0.1:{port} reuseport backlog=4096;
{chr(10).join(locations)}
    location / {{ return 404 '{{"message":"not in the stand-in"}}'; }}
  }}
}}
"""


class Nginx:
    """nginx serving `ROUTES` on 127.0.0.1:`port`, in its own temp prefix; `stop()` removes it."""

    def __init__(self, port: int, cmd_prefix: list[str] | None = None) -> None:
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(binary):
            raise RuntimeError("nginx not found: apt-get install -y nginx-light")
        self.root = Path(tempfile.mkdtemp(prefix="applyrelay-bench-nginx-"))
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi", "logs"):
            (self.root / name).mkdir()
        conf = self.root / "nginx.conf"
        conf.write_text(_nginx_conf(port, self.root))
        self.port = port
        self.log = open(self.root / "stderr.log", "wb")
        args = [binary, "-p", str(self.root), "-c", str(conf), "-e", str(self.root / "error.log")]
        self.popen = subprocess.Popen([*(cmd_prefix or []), *args], stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGQUIT)  # graceful: nginx closes its keep-alive connections
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


# -- the sleeper -----------------------------------------------------------------------------------

_REQUEST_LINE = re.compile(rb"^([A-Z]+) ([^ ?]+)")
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.I)


def _answers() -> tuple[dict[tuple[bytes, bytes], bytes], list[tuple[bytes, bytes, bytes]]]:
    exact: dict[tuple[bytes, bytes], bytes] = {}
    prefixed: list[tuple[bytes, bytes, bytes]] = []
    reasons = {200: "OK", 201: "Created"}
    for route in ROUTES:
        body = route.body.encode()
        raw = (
            f"HTTP/1.1 {route.status} {reasons[route.status]}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode() + body
        path = (PREFIX + route.path).encode()
        if path.endswith(b"*"):
            prefixed.append((route.method.encode(), path[:-1], raw))
        else:
            exact[(route.method.encode(), path)] = raw
    return exact, prefixed


_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"


class _SleeperProtocol(asyncio.Protocol):
    def __init__(
        self, delay_s: float, exact: dict[tuple[bytes, bytes], bytes], prefixed: list[tuple[bytes, bytes, bytes]]
    ) -> None:
        self.delay_s, self.exact, self.prefixed = delay_s, exact, prefixed
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = _CONTENT_LENGTH.search(head)
            total = end + 4 + (int(length.group(1)) if length else 0)
            if len(self.buffer) < total:
                return
            self.buffer = self.buffer[total:]
            line = _REQUEST_LINE.match(head)
            answer = _NOT_FOUND
            if line is not None:
                method, path = line.group(1), line.group(2)
                found = self.exact.get((method, path))
                if found is None:
                    found = next((raw for m, p, raw in self.prefixed if m == method and path.startswith(p)), None)
                answer = found or _NOT_FOUND
            asyncio.get_running_loop().call_later(self.delay_s, self._send, answer)

    def _send(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)


async def serve_sleeper(port: int, delay_s: float) -> None:
    exact, prefixed = _answers()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _SleeperProtocol(delay_s, exact, prefixed), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    if kind == "nginx":
        nginx = Nginx(port)
        signal.signal(signal.SIGTERM, lambda *_: nginx.stop())
        nginx.popen.wait()
        return
    import uvloop

    uvloop.run(serve_sleeper(port, float(argv[2]) if len(argv) > 2 else 0.1))


if __name__ == "__main__":
    main(sys.argv[1:])
