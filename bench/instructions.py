"""P1 counted in instructions: each intake server under valgrind's callgrind, the same posts.

CPU seconds on this shared box move 20-30 % between rounds of the same code (bench/RESULTS.md), so
a change worth 2 % of intake cannot be seen in P1's req/s or CPU a request. Callgrind counts the
instructions a process executes, which a neighbour's load does not change: the posts are sent one
at a time (P1 keeps 16 in flight), and what the server runs on its own meanwhile (timers, the
relay's registry poll), which does grow with the wall time a slow box takes, is measured in an
idle window as long as the posts and subtracted. Two passes of the same code agree to 0.2 %
(bench/RESULTS.md). What it does not see: system time (socket reads, the blob's fsync, thread
hand-offs) and how fast the instructions run (cache misses, memory copies), so it complements
P1's wall-clock figures and does not replace them.

One more caveat: valgrind hides the CPU's SHA extensions, so OpenSSL's SHA-256 takes its code
without them under valgrind, about 28 instructions a byte, where this box's hardware hashes the
CV's 100 KB in ~84 us. The SHA-256 share is therefore printed apart, and the ratio to FastAPI is
given with it and without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from app.redis.embedded import free_port
from bench.procs import REPO, TOKEN, Stack, canonical, wait_port

WARM_REQUESTS = 30  # imports, caches, the catalog's job: what the first requests pay once
COUNTED_REQUESTS = 200
_TOTAL = re.compile(r"^\s*([\d,]+) \(100\.0+%\)\s+PROGRAM TOTALS", re.M)
_SHA256 = re.compile(r"^\s*([\d,]+) \([\d.]+%\)\s+\S*SHA256_Update\b", re.M)


def available() -> bool:
    return all(shutil.which(tool) for tool in ("valgrind", "callgrind_control", "callgrind_annotate"))


def _counts(dump: Path) -> tuple[int, int]:
    """(all instructions, those under OpenSSL's SHA256_Update) of one callgrind dump; raises if
    the dump has no total (a figure of 0 would pass for a measurement)."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    total = _TOTAL.search(text)
    if total is None:
        raise RuntimeError(f"{dump}: callgrind_annotate printed no PROGRAM TOTALS")
    sha256 = _SHA256.search(text)
    return int(total.group(1).replace(",", "")), int(sha256.group(1).replace(",", "")) if sha256 else 0


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


def count(stack: Stack, name: str, app: str | None, tree: Path = REPO) -> dict[str, float]:
    """Instructions a request of the server (`app`: a uvicorn app path; None: the relay's web):
    COUNTED_REQUESTS sequential posts after WARM_REQUESTS uncounted ones, less what the server
    runs on its own (timers, a registry's poll) in an idle window as long as the posts took:
    under valgrind that background grows with the box's slowness, the posts' count does not."""
    port = free_port()
    out = stack.dir / f"callgrind.{name}.out"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    if app is None:
        server = [sys.executable, "-m", "app.cli", "web", "--port", str(port)]
    else:  # the same command as P1's (Stack.uvicorn)
        server = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    proc = stack.start(f"callgrind-{name}", [*valgrind, *server], None, None, tree)
    try:
        wait_port(port, timeout=600, popen=proc.popen)  # valgrind runs the imports ~50x slower
        body = msgspec.json.encode(canonical(0))
        headers = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:

            def post(n: int, prefix: str) -> None:
                for i in range(n):
                    response = client.post(
                        "/v1/applications", content=body, headers={**headers, "idempotency-key": f"{prefix}{i}"}
                    )
                    if response.status_code != 202:
                        raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")

            # Keys of this server's own: on the shared Redis, another server's would make these
            # duplicates (a cheaper path, not the one measured).
            post(WARM_REQUESTS, f"{name}-warm-")
            _control(proc.pid, "--instr=on")
            started = time.monotonic()
            post(COUNTED_REQUESTS, f"{name}-counted-")
            window = time.monotonic() - started
            _control(proc.pid, "--dump")  # .1: the posts; a dump zeroes the counters
            time.sleep(window)
            _control(proc.pid, "--dump")  # .2: the same time idle
            _control(proc.pid, "--instr=off")  # the shutdown is not counted
    finally:
        proc.stop()
    (busy, busy_sha), (idle, _) = _counts(Path(f"{out}.1")), _counts(Path(f"{out}.2"))
    return {
        "instructions": (busy - idle) / COUNTED_REQUESTS,
        "sha256": busy_sha / COUNTED_REQUESTS,
        "idle": idle / COUNTED_REQUESTS,
    }


def p1_instructions(trees: dict[str, Path], baselines: dict[str, str], connection: dict[str, Any]) -> dict[str, Any]:
    """Each baseline (name -> uvicorn app) and the relay at each tree, once: the counts repeat."""
    stack = Stack(connection=connection)
    try:
        counts = {name: count(stack, name, app) for name, app in baselines.items()}
        for label, tree in trees.items():
            counts[f"relay@{label}"] = count(stack, f"relay-{label.replace('/', '_')}", None, tree)
        return counts
    finally:
        stack.close()
