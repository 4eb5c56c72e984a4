"""P1 counted in instructions: each intake server under valgrind's callgrind, the same posts.

CPU seconds on this shared box move 20-30 % between rounds of the same code (bench/RESULTS.md), so
a change worth 2 % of intake cannot be seen in P1's req/s or CPU a request. Callgrind counts the
instructions a process executes, which no neighbour's load changes: the same code and posts give
the same count to a few parts in ten thousand. What it does not see: system time (socket reads,
the blob's fsync, thread hand-offs) and how fast the instructions run (cache misses, memory
copies), so it complements P1's wall-clock figures and does not replace them.

One more caveat: valgrind does not emulate the SHA extensions, so OpenSSL's SHA-256 runs its
portable code under it, about 28 instructions a byte where the hardware spends ~1 cycle. The
count of SHA-256 is therefore given apart, and the comparison is made without it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
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


def _number(match: re.Match[str] | None) -> int:
    return int(match.group(1).replace(",", "")) if match else 0


def _counts(dump: Path) -> tuple[int, int]:
    """(all instructions, those under OpenSSL's SHA256_Update) of one callgrind dump."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return _number(_TOTAL.search(text)), _number(_SHA256.search(text))


def count(stack: Stack, name: str, app: str | None, tree: Path = REPO) -> dict[str, float]:
    """Instructions a request of the server (`app`: a uvicorn app path; None: the relay's web),
    counted over COUNTED_REQUESTS sequential posts after WARM_REQUESTS uncounted ones."""
    port = free_port()
    out = stack.dir / f"callgrind.{name}.out"
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    if app is None:
        server = [sys.executable, "-m", "app.cli", "web", "--port", str(port)]
    else:
        server = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning"]
    proc = stack.start(f"callgrind-{name}", [*valgrind, *server], None, None, tree)
    try:
        wait_port(port, timeout=600)  # valgrind runs the imports ~50x slower
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
            subprocess.run(["callgrind_control", "--instr=on", str(proc.pid)], check=True, capture_output=True)
            post(COUNTED_REQUESTS, f"{name}-counted-")
            subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, capture_output=True)
    finally:
        proc.stop()
    total = sha256 = 0
    for dump in sorted(stack.dir.glob(f"callgrind.{name}.out*")):
        whole, hashing = _counts(dump)
        total, sha256 = total + whole, sha256 + hashing
    return {"instructions": total / COUNTED_REQUESTS, "sha256": sha256 / COUNTED_REQUESTS}


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
