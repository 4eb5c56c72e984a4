"""`python -m bench [BENCH ...]` — run the benchmarks (`--help` lists them); all of them (the
default) rewrite the top of bench/RESULTS.md.

Every figure is printed with its ratio to a baseline measured in the same run on the same
machine. Needs wrk, nginx (the ATS stand-in) and valgrind (p1instr) from Debian
(apt-get install -y wrk nginx-light valgrind) and the `bench` extra (fastapi, pydantic).
Never part of the test suite: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.procs import REPO, TOKEN, Stack, canonical, pinned, relay_tree

RESULTS = Path(__file__).with_name("RESULTS.md")
WEB_CORE, LOAD_CORE = 0, 1
CORES = os.cpu_count() or 1
LUA = """
local f = io.open(os.getenv("BENCH_BODY"), "rb"); local body = f:read("*a"); f:close()
local prefix = os.getenv("BENCH_PREFIX")
local n = 0
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
request = function()
  n = n + 1
  wrk.headers["Idempotency-Key"] = prefix .. n
  return wrk.format(nil, "/v1/applications")
end
"""


def log(line: str) -> None:
    print(line, flush=True)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


# -- P1 intake --------------------------------------------------------------------------------

# The "Latency Distribution" rows, from the start of a line: "99%" alone also matches the end of a
# stdev column such as "69.99%" and read the next line's first word as a latency.
_PERCENTILE = {q: re.compile(rf"^\s+{q}%\s+([\d.]+\w+)", re.M) for q in (50, 99)}


def _ms(text: str) -> float:
    """wrk's latency ("812.00us", "4.40ms", "1.20s"); NaN for what it prints when it measured
    too little to say (a warm-up against a cold server), instead of a crash of the whole run."""
    match = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if match is None:
        return float("nan")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(url: str, body_path: Path, prefix: str, seconds: int, connections: int = 16) -> dict[str, Any]:
    lua = body_path.with_suffix(".lua")
    lua.write_text(LUA)
    env = {**os.environ, "BENCH_BODY": str(body_path), "BENCH_PREFIX": prefix, "BENCH_TOKEN": TOKEN}
    for _ in range(2):  # once more if a run measured nothing (a stalled server under outside load)
        out = subprocess.run(
            pinned(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua), url], LOAD_CORE),
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if _PERCENTILE[50].search(out):
            break
    if not _PERCENTILE[50].search(out):
        raise RuntimeError(f"wrk against {url} measured nothing:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50": _ms(_PERCENTILE[50].search(out).group(1)),  # type: ignore[union-attr]
        "p99": _ms(_PERCENTILE[99].search(out).group(1)),  # type: ignore[union-attr]
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


P1_APPS = {
    "bare": "bench.baseline_litestar:app",
    "durable": "bench.baseline_durable:app",
    "fastapi": "bench.baseline_fastapi:app",
}
P1_TARGETS = {
    "bare": "bare Litestar (validate, 202, no Redis)",
    "durable": "durable limit (Litestar, raw body, one SET, AOF)",
    "relay": "applyrelay web (durable + enqueued)",
    "fastapi": "FastAPI + Pydantic + arq",
}


def p1(seconds: int = 6, rounds: int = 3, trees: Trees | None = None) -> dict[str, Any]:
    """Every server once per round, the order rotated each round; each round's ratios, then their
    median: the shared machine's speed moves between rounds, much less within one. The relay's
    connection points at the nginx stand-in: intake reads the job (catalog, cached in Redis), as
    against a live ATS; with none, each intake tried the ATS and flagged its answers unchecked."""
    stand_in = _StandIn(LOAD_CORE)
    stack = Stack(connection={"base_url": stand_in.url})
    try:
        subprocess.run(
            ["taskset", "-pc", str(LOAD_CORE), str(stack.redis.process.pid)],  # type: ignore[union-attr]
            capture_output=True,
            check=False,
        )
        body = stack.dir / "body.json"
        body.write_bytes(msgspec.json.encode(canonical(0)))
        # With `trees` (--relay), the relay at each revision runs in every round: "relay@<rev>",
        # each with its own ratios; without, the working tree's, as "relay".
        relays = {"relay": None} if not trees else {f"relay@{label}": tree for label, tree in trees.items()}
        starts: dict[str, Callable[[], tuple[Any, str]]] = {
            "bare": lambda: stack.uvicorn(P1_APPS["bare"], WEB_CORE),
            "durable": lambda: stack.uvicorn(P1_APPS["durable"], WEB_CORE),
            **{name: functools.partial(stack.web, WEB_CORE, tree) for name, tree in relays.items()},
            "fastapi": lambda: stack.uvicorn(P1_APPS["fastapi"], WEB_CORE),
        }
        per_round: list[dict[str, dict[str, float]]] = []
        order = list(starts)
        for round_no in range(rounds):
            this: dict[str, dict[str, float]] = {}
            for name in order[round_no % len(order) :] + order[: round_no % len(order)]:
                proc, url = starts[name]()
                wrk(url, body, f"warm-{proc.pid}-", 2)
                stack.redis_client().flushall()
                cpu_before = proc.cpu_s()
                result = wrk(url, body, f"run-{proc.pid}-", seconds)
                # The server's own CPU per request: its cost whether or not core 1 (wrk, Redis and
                # Redis's AOF rewrites) is what limits req/s in a run.
                result["cpu_ms"] = (proc.cpu_s() - cpu_before) * 1000 / max(result["rps"] * seconds, 1)
                log(
                    f"P1 round {round_no + 1} {P1_TARGETS.get(name, name)}: {result['rps']:.0f} req/s, "
                    f"p50 {result['p50']:.1f} ms, "
                    f"p99 {result['p99']:.1f} ms, non-2xx {result['non2xx']}, {result['cpu_ms']:.2f} ms CPU/req"
                )
                this[name] = result
                proc.stop()
            ratios = {
                f"{by}_vs_{other}" + ("" if relay == "relay" else relay[5:]): (
                    this[relay]["rps"] / this[other]["rps"]
                    if by == "rps"
                    else this[other]["cpu_ms"] / this[relay]["cpu_ms"]
                )
                for relay in relays
                for by in ("rps", "cpu")
                for other in ("bare", "durable", "fastapi")
            }
            this["ratios"] = ratios
            log(f"P1 round {round_no + 1} ratios: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
            per_round.append(this)
        results: dict[str, Any] = {"body_bytes": body.stat().st_size, "rounds": per_round, "seconds": seconds}
        results["median"] = {
            name: {k: median(r[name][k] for r in per_round) for k in ("rps", "p50", "p99", "cpu_ms", "non2xx")}
            for name in starts
        }
        results["ratios"] = {k: median(r["ratios"][k] for r in per_round) for k in per_round[0]["ratios"]}
        m = results["ratios"]
        for relay in relays:
            at = "" if relay == "relay" else relay[5:]
            log(
                f"P1 median of per-round ratios{' ' + relay if at else ''}: {m['rps_vs_fastapi' + at]:.2f}x FastAPI "
                f"(target >= 1.5), {m['rps_vs_durable' + at]:.2f}x the durable limit (target >= 0.6), "
                f"{m['rps_vs_bare' + at]:.2f}x bare; by server CPU per request: {m['cpu_vs_fastapi' + at]:.2f}x, "
                f"{m['cpu_vs_durable' + at]:.2f}x, {m['cpu_vs_bare' + at]:.2f}x"
            )
        return results
    finally:
        stack.close()
        stand_in.stop()


def p1instr(trees: Trees | None = None) -> dict[str, Any]:
    """P1 counted in instructions a request under callgrind (bench/instructions.py): repeatable on
    this noisy box, so it shows what a small change to intake does; one pass, the counts repeat."""
    from bench import instructions

    if not instructions.available():
        raise SystemExit("p1instr needs valgrind (Debian: apt-get install -y valgrind)")
    stand_in = _StandIn(LOAD_CORE)
    try:
        counts = instructions.p1_instructions(trees or {".": REPO}, P1_APPS, {"base_url": stand_in.url})
    finally:
        stand_in.stop()
    for name, v in counts.items():
        log(
            f"P1 instructions {P1_TARGETS.get(name, name)}: {v['instructions'] / 1e6:.2f} M a request "
            f"({v['sha256'] / 1e6:.2f} M of them SHA-256; {v['idle'] / 1e6:.2f} M idle, subtracted)"
        )
    fastapi = counts["fastapi"]
    ratios = {
        name: {
            "with_sha256": fastapi["instructions"] / v["instructions"],
            "without_sha256": (fastapi["instructions"] - fastapi["sha256"]) / (v["instructions"] - v["sha256"]),
        }
        for name, v in counts.items()
        if name.startswith("relay")
    }
    for name, ratio in ratios.items():
        log(
            f"P1 instructions, {name}: FastAPI's / the relay's {ratio['with_sha256']:.2f}x as counted, "
            f"{ratio['without_sha256']:.2f}x SHA-256 aside (valgrind runs it without the SHA extensions)"
        )
    return {"counts": counts, "vs_fastapi": ratios, "requests": 200}


def median(values: Any) -> float:
    return float(statistics.median(list(values)))


# -- helpers for the worker benchmarks --------------------------------------------------------------


async def post_many(url: str, bodies: list[tuple[str, dict[str, Any]]], concurrency: int = 16) -> list[str]:
    ids: list[str] = []
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, headers={"authorization": f"Bearer {TOKEN}"}) as client:

        async def one(key: str, body: dict[str, Any]) -> None:
            async with gate:
                response = await client.post(
                    "/v1/applications",
                    content=msgspec.json.encode(body),
                    headers={"idempotency-key": key, "content-type": "application/json"},
                )
                response.raise_for_status()
                ids.append(response.json()["id"])

        await asyncio.gather(*(one(k, b) for k, b in bodies))
    return ids


def wait_count(stack: Stack, target: int, timeout: float, *, key: str = "ar:ix:st:delivered") -> tuple[float, float]:
    """Wait until `key` counts `target`; returns (time of the first one, time of the last one)."""
    client = stack.redis_client()
    first = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            count = int(client.zcard(key))
            if count and first is None:
                first = time.perf_counter()
            if count >= target:
                return first or time.perf_counter(), time.perf_counter()
            time.sleep(0.01)
        raise RuntimeError(f"{key}: {client.zcard(key)} of {target} after {timeout} s")
    finally:
        client.close()


# -- P2 relay ---------------------------------------------------------------------------------------


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _runq_wait_s(pid: int) -> float:
    """Seconds the process has waited runnable for a CPU (/proc/<pid>/schedstat): how much of a
    drain's wall time the shared machine took from it."""
    with open(f"/proc/{pid}/schedstat") as stat:
        return int(stat.read().split()[1]) / 1e9


def _commands(client: Any) -> int:
    return sum(int(v["calls"]) for v in client.info("commandstats").values())


class _StandIn:
    """The nginx stand-in (bench/standin.py) or, with `delay_s`, the sleeper, on its own port."""

    def __init__(self, core: int | None, delay_s: float = 0.0) -> None:
        from app.redis.embedded import free_port
        from bench.procs import wait_port
        from bench.standin import Nginx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.nginx: Nginx | None = None
        self.popen: subprocess.Popen[bytes] | None = None
        if delay_s:
            self.popen = subprocess.Popen(
                pinned([sys.executable, "-m", "bench.standin", "sleeper", str(self.port), str(delay_s)], core), cwd=REPO
            )
            self.pid = self.popen.pid
        else:
            self.nginx = Nginx(self.port, pinned([], core) if core is not None else None)
            self.pid = self.nginx.pid
        wait_port(self.port)

    def cpu_s(self) -> float:
        return _proc_cpu_s(self.pid)

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop()
        if self.popen is not None:
            self.popen.terminate()
            self.popen.wait()


# The relay's worker with another max_jobs (any tree: `python -m app.cli worker` takes no option).
_WORKER_AT = """
import sys
from app.log import configure
from app.net.event_loop import use_uvloop
from app.settings import load_settings
from app.worker import create_worker
configure()
settings = load_settings()
use_uvloop()
create_worker(settings, max_jobs=int(sys.argv[1])).run()
"""


def _drain(
    count: int,
    *,
    workers: int = 1,
    worker_cores: tuple[int | None, ...] = (WEB_CORE,),
    side_core: int | None = LOAD_CORE,
    delay_s: float = 0.0,
    max_jobs: int | None = None,
    tree: Path = REPO,
    cv_bytes: int = 0,
) -> dict[str, float]:
    """`workers` relay worker processes draining `count` queued applications (no files) into the
    stand-in. Rate and CPU are measured from the first delivered to the last (not the start-up)."""
    # The connection's limit (a Redis semaphore across workers, default 10) would measure the
    # limiter's deferrals, not the workers: allow what they run.
    stand_in = _StandIn(side_core, delay_s)
    stack = Stack(connection={"concurrency": 50 * workers * 4, "base_url": stand_in.url}, tree=tree)
    try:
        if side_core is not None:
            subprocess.run(
                ["taskset", "-pc", str(side_core), str(stack.redis.process.pid)],  # type: ignore[union-attr]
                capture_output=True,
                check=False,
            )
        asyncio.run(_enqueue(stack, count, prefix="p2", cv_bytes=cv_bytes))
        client = stack.redis_client()
        commands_before = _commands(client)
        procs = [
            stack.start(
                f"worker{n}",
                [sys.executable, "-m", "app.cli", "worker"]
                if max_jobs is None
                else [sys.executable, "-c", _WORKER_AT, str(max_jobs)],
                worker_cores[n % len(worker_cores)],
            )
            for n in range(workers)
        ]
        redis_pid = stack.redis.process.pid  # type: ignore[union-attr]
        polls, first, deadline = 0, None, time.monotonic() + 600
        while True:
            done = int(client.zcard("ar:ix:st:delivered"))
            polls += 1
            now = time.perf_counter()
            if done and first is None:
                first = (now, done, sum(p.cpu_s() for p in procs), stand_in.cpu_s(), _proc_cpu_s(redis_pid))
                waited0 = sum(_runq_wait_s(p.pid) for p in procs)
            if done >= count:
                last = (now, done, sum(p.cpu_s() for p in procs), stand_in.cpu_s(), _proc_cpu_s(redis_pid))
                waited1 = sum(_runq_wait_s(p.pid) for p in procs)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{done} of {count} delivered after 600 s")
            time.sleep(0.01)
        commands = _commands(client) - commands_before - polls - 1  # less the bench's own ZCARDs and INFO
        rss = max(p.peak_rss_mb() for p in procs)
        client.close()
        assert first is not None
        n = last[1] - first[1]
        return {
            "rate": n / (last[0] - first[0]),
            "cpu_ms": (last[2] - first[2]) * 1000 / n,
            "standin_cpu_ms": (last[3] - first[3]) * 1000 / n,
            "redis_cpu_ms": (last[4] - first[4]) * 1000 / n,
            "redis_cmds": commands / count,
            "worker_rss_mb": rss,
            # the share of the drain the worker(s) waited for a CPU while runnable
            "runq_share": (waited1 - waited0) / (workers * (last[0] - first[0])),
        }
    finally:
        stack.close()
        stand_in.stop()


def _naive(count: int, transport: str = "httpx") -> dict[str, float]:
    stand_in = _StandIn(LOAD_CORE)
    stack = Stack()
    try:
        subprocess.run(
            ["taskset", "-pc", str(LOAD_CORE), str(stack.redis.process.pid)],  # type: ignore[union-attr]
            capture_output=True,
            check=False,
        )
        proc = subprocess.Popen(
            pinned([sys.executable, "-m", "bench.naive", str(count), stand_in.url, transport], WEB_CORE),
            env=stack.env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        cpu0 = None
        while proc.poll() is None:  # the stand-in's CPU: sampled from the first seconds to the end
            cpu0 = cpu0 if cpu0 is not None else (time.perf_counter(), stand_in.cpu_s())
            time.sleep(0.05)
        out = (proc.stdout.read() if proc.stdout else "").split()
        jobs, rate, cpu = int(out[0]), float(out[1]), float(out[2])
        if jobs != count:
            raise RuntimeError(f"the naive baseline did {jobs} of {count}")
        return {
            "rate": rate,
            "cpu_ms": cpu,
            "standin_cpu_ms": (stand_in.cpu_s() - cpu0[1]) * 1000 / count if cpu0 else 0.0,
        }
    finally:
        stack.close()
        stand_in.stop()


def _arq_noop(count: int) -> float:
    stack = Stack()
    try:
        out = subprocess.run(
            pinned([sys.executable, "-m", "bench.arq_noop", str(count)], WEB_CORE),
            env=stack.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    finally:
        stack.close()
    return int(out[0]) / float(out[1])


Trees = dict[str, Path]  # label (a git revision, "." for the working tree) -> the relay's code


def p2(count: int = 2000, rounds: int = 3, trees: Trees | None = None) -> dict[str, Any]:
    """P2 fair: one relay worker and the naive baseline (bench/naive.py) each draining `count`
    applications into the nginx stand-in, interleaved, who goes first rotating; arq's no-op rate as
    context. With several `trees`, each version's relay runs in every round (before/after in one run)."""
    trees = trees or {".": REPO}
    per_round: list[dict[str, Any]] = []
    for round_no in range(rounds):
        runs: dict[str, Callable[[], dict[str, float]]] = {
            **{f"relay@{label}": functools.partial(_drain, count, tree=tree) for label, tree in trees.items()},
            "naive": lambda: _naive(count),
            "naive_aiohttp": lambda: _naive(count, "aiohttp"),
        }
        names = list(runs)
        order = names[round_no % len(names) :] + names[: round_no % len(names)]
        this: dict[str, Any] = {name: runs[name]() for name in order}
        this["noop"] = _arq_noop(count * 5)
        line = [f"P2 round {round_no + 1}:"]
        for label in trees:
            relay = this[f"relay@{label}"]
            for base in ("naive", "naive_aiohttp"):
                this[f"rate_vs_{base}@{label}"] = relay["rate"] / this[base]["rate"]
                this[f"cpu_vs_{base}@{label}"] = relay["cpu_ms"] / this[base]["cpu_ms"]
            line.append(
                f"relay@{label} {relay['rate']:.0f}/s {relay['cpu_ms']:.2f} ms CPU/delivery (stand-in "
                f"{relay['standin_cpu_ms']:.2f}, Redis {relay['redis_cpu_ms']:.2f} ms, {relay['redis_cmds']:.1f} cmds; "
                f"{this[f'cpu_vs_naive@{label}']:.2f}x / {this[f'cpu_vs_naive_aiohttp@{label}']:.2f}x the naive's CPU);"
            )
        naive, naive_a = this["naive"], this["naive_aiohttp"]
        line.append(
            f"naive httpx {naive['rate']:.0f}/s {naive['cpu_ms']:.2f} ms (stand-in {naive['standin_cpu_ms']:.2f}); "
            f"naive on aiohttp {naive_a['rate']:.0f}/s {naive_a['cpu_ms']:.2f} ms; arq no-op {this['noop']:.0f}/s"
        )
        log(" ".join(line))
        per_round.append(this)
    result: dict[str, Any] = {"count": count, "rounds": per_round, "trees": list(trees)}
    ratio_keys = [k for k in per_round[0] if k.startswith(("rate_vs_", "cpu_vs_"))]
    for key in [*ratio_keys, "noop"]:
        result[key] = median(r[key] for r in per_round)
    for who in [*(f"relay@{label}" for label in trees), "naive", "naive_aiohttp"]:
        for key in ("rate", "cpu_ms", "standin_cpu_ms", "redis_cmds", "redis_cpu_ms"):
            if key in per_round[0][who]:
                result[f"{who}_{key}"] = median(r[who][key] for r in per_round)
    for label in trees:
        log(
            f"P2 fair, medians, relay@{label}: {result[f'relay@{label}_rate']:.0f}/s at "
            f"{result[f'relay@{label}_cpu_ms']:.2f} ms CPU, {result[f'relay@{label}_redis_cmds']:.1f} Redis cmds; "
            f"median per-round CPU ratio {result[f'cpu_vs_naive@{label}']:.2f}x the naive (target <= 1.3), "
            f"{result[f'cpu_vs_naive_aiohttp@{label}']:.2f}x the naive on aiohttp"
        )
    log(
        f"P2 fair, medians: naive {result['naive_rate']:.0f}/s at {result['naive_cpu_ms']:.2f} ms, on aiohttp "
        f"{result['naive_aiohttp_rate']:.0f}/s at {result['naive_aiohttp_cpu_ms']:.2f} ms; "
        f"arq no-op {result['noop']:.0f}/s"
    )
    return result


def p2lat(
    count: int = 1000,
    rounds: int = 3,
    delay_s: float = 0.1,
    max_jobs: tuple[int, ...] = (50,),
    trees: Trees | None = None,
    cv_bytes: int = 0,
) -> dict[str, Any]:
    """P2 latency-bound: every stand-in answer `delay_s` late; the bound is
    max_jobs / (calls per delivery x delay). With `cv_bytes`, each application carries a CV of
    that size (one call more: its upload): what a slot costs in memory (the default max_jobs)."""
    from bench.standin import CALLS_PER_DELIVERY

    calls = CALLS_PER_DELIVERY + (1 if cv_bytes else 0)

    trees = trees or {".": REPO}
    per_round: list[dict[str, Any]] = []
    variants = [(label, jobs) for label in trees for jobs in max_jobs]
    for round_no in range(rounds):
        this: dict[str, Any] = {}
        for label, jobs in variants[round_no % len(variants) :] + variants[: round_no % len(variants)]:
            r = _drain(
                count,
                delay_s=delay_s,
                max_jobs=None if jobs == 50 else jobs,
                side_core=None,
                tree=trees[label],
                cv_bytes=cv_bytes,
            )
            r["bound"] = jobs / (calls * delay_s)
            r["vs_bound"] = r["rate"] / r["bound"]
            this[f"{jobs}@{label}"] = r
            log(
                f"P2 latency round {round_no + 1}, relay@{label} max_jobs {jobs}: {r['rate']:.0f}/s of a bound "
                f"{r['bound']:.0f}/s = {r['vs_bound']:.2f}x; {r['cpu_ms']:.2f} ms CPU/delivery, "
                f"peak RSS {r['worker_rss_mb']:.0f} MB, waited for a CPU {r['runq_share']:.0%} of the drain"
            )
        per_round.append(this)
    result: dict[str, Any] = {"count": count, "delay_s": delay_s, "cv_bytes": cv_bytes, "rounds": per_round}
    for label, jobs in variants:
        key = f"{jobs}@{label}"
        result[key] = {
            k: median(r[key][k] for r in per_round) for k in ("rate", "bound", "vs_bound", "cpu_ms", "worker_rss_mb")
        }
        log(
            f"P2 latency-bound, medians, relay@{label} max_jobs {jobs}: {result[key]['rate']:.0f}/s = "
            f"{result[key]['vs_bound']:.2f}x the bound (target >= 0.8), peak RSS {result[key]['worker_rss_mb']:.0f} MB"
        )
    return result


def p2scale(count: int = 2000, rounds: int = 3, trees: Trees | None = None) -> dict[str, Any]:
    """P2 scale-out: the same drain with one worker process and with two (cores 0 and 1); the
    stand-in and Redis are not pinned, so they take their share of both cores alike."""
    trees = trees or {".": REPO}
    per_round: list[dict[str, Any]] = []
    for round_no in range(rounds):
        this: dict[str, Any] = {}
        for label, tree in trees.items():
            one = _drain(count, workers=1, worker_cores=(0,), side_core=None, tree=tree)
            two = _drain(count, workers=2, worker_cores=(0, 1), side_core=None, tree=tree)
            # What the box allows two workers: both cores, each delivery costing the workers',
            # Redis's and the stand-in's CPU (all on the same two cores); as a ratio to one worker.
            ceiling = CORES * 1000 / (two["cpu_ms"] + two["redis_cpu_ms"] + two["standin_cpu_ms"]) / one["rate"]
            this[label] = {"one": one, "two": two, "ratio": two["rate"] / one["rate"], "ceiling": ceiling}
            log(
                f"P2 scale round {round_no + 1}, relay@{label}: 1 worker {one['rate']:.0f}/s ({one['redis_cmds']:.1f} "
                f"Redis cmds, {one['cpu_ms']:.2f} ms CPU/delivery), 2 workers {two['rate']:.0f}/s "
                f"({two['redis_cmds']:.1f} cmds, {two['cpu_ms']:.2f} ms); ratio {this[label]['ratio']:.2f}x; "
                f"waited for a CPU {one['runq_share']:.0%} / {two['runq_share']:.0%} of the drain; "
                f"the {CORES} cores' ceiling for 2 workers {this[label]['ceiling']:.2f}x"
            )
        per_round.append(this)
    result: dict[str, Any] = {"count": count, "rounds": per_round}
    for label in trees:
        result[label] = {
            "ratio": median(r[label]["ratio"] for r in per_round),
            "one": median(r[label]["one"]["rate"] for r in per_round),
            "two": median(r[label]["two"]["rate"] for r in per_round),
            "cmds_one": median(r[label]["one"]["redis_cmds"] for r in per_round),
            "cmds_two": median(r[label]["two"]["redis_cmds"] for r in per_round),
            "ceiling": median(r[label]["ceiling"] for r in per_round),
        }
        log(
            f"P2 scale-out, relay@{label}, median of per-round ratios: {result[label]['ratio']:.2f}x (target >= 1.7); "
            f"{result[label]['cmds_one']:.1f} / {result[label]['cmds_two']:.1f} Redis cmds per delivery; "
            f"the cores' ceiling {result[label]['ceiling']:.2f}x"
        )
    return result


# -- P3 latency ------------------------------------------------------------------------------------


def p3(count: int = 200, rate_per_s: float = 10.0) -> dict[str, Any]:
    stack = Stack()
    try:
        stack.emulator(LOAD_CORE)
        _, url = stack.web(WEB_CORE)
        stack.worker(WEB_CORE)  # the web process is nearly idle at this load; the emulator has core 1
        time.sleep(1.5)  # the worker is up
        accepted: list[tuple[str, float]] = []
        with httpx.Client(base_url=url, timeout=30, headers={"authorization": f"Bearer {TOKEN}"}) as client:
            for i in range(count):
                response = client.post(
                    "/v1/applications",
                    content=msgspec.json.encode(canonical(i)),
                    headers={"idempotency-key": f"p3-{i}", "content-type": "application/json"},
                )
                accepted.append((response.json()["id"], time.time()))
                time.sleep(1 / rate_per_s)
            wait_count(stack, count, 60)
            latencies, steps = [], []
            for delivery_id, at in accepted:
                record = client.get(f"/v1/deliveries/{delivery_id}").json()
                latencies.append((record["delivered_at"] - at) * 1000)
                if len(latencies) == count // 2:
                    log(
                        "P3 one delivery: "
                        + ", ".join(
                            f"{a.get('step') or a['outcome']}@{(a['started_at'] - at) * 1000:.1f}"
                            f"+{a.get('latency_ms', 0)}"
                            for a in record["attempts"]
                        )
                    )
                steps += [a.get("latency_ms", 0) for a in record["attempts"] if a.get("step")]
        log(f"P3 slowest (index, ms): {sorted(enumerate(latencies), key=lambda x: -x[1])[:6]}")
        result = {
            "p50": pct(latencies, 0.5),
            "p99": pct(latencies, 0.99),
            "step_p50": pct(steps, 0.5),
            "step_p99": pct(steps, 0.99),
            "count": count,
            "rate": rate_per_s,
        }
        log(
            f"P3 accepted -> delivered: p50 {result['p50']:.1f} ms (target <= 25), p99 {result['p99']:.1f} ms "
            f"(target <= 100); per ATS step p50 {result['step_p50']:.0f} ms, p99 {result['step_p99']:.0f} ms"
        )
        return result
    finally:
        stack.close()


# -- P4 memory -------------------------------------------------------------------------------------


def p4() -> dict[str, Any]:
    mb = 1_000_000
    scenarios = {"ten 10 MB CVs at once": [10 * mb - 10_000] * 10, "one 20 MB CV": [20 * mb]}
    results: dict[str, Any] = {}
    for name, sizes in scenarios.items():
        stack = Stack(connection={"max_file_bytes": 21 * mb, "max_application_bytes": 30 * mb})
        try:
            stack.emulator(LOAD_CORE)
            web, url = stack.web(WEB_CORE)
            worker = stack.worker(WEB_CORE)
            time.sleep(1.5)
            idle = (web.peak_rss_mb(), worker.peak_rss_mb())
            bodies = [
                (f"p4-{i}", canonical(i, cv=b"%PDF-1.4\n" + os.urandom(size - 9))) for i, size in enumerate(sizes)
            ]
            asyncio.run(post_many(url, bodies, concurrency=len(bodies)))
            del bodies
            client = stack.redis_client()
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and client.zcard("ar:ix:st:delivered") + client.zcard(
                "ar:ix:st:failed"
            ) < len(sizes):
                time.sleep(0.1)
            outcome = {"delivered": client.zcard("ar:ix:st:delivered"), "failed": client.zcard("ar:ix:st:failed")}
            client.close()
            in_flight = sum(sizes) / 2**20
            target = 150 + 3 * in_flight
            peak = {"web": web.peak_rss_mb(), "worker": worker.peak_rss_mb()}
            results[name] = {
                "idle_web": idle[0],
                "idle_worker": idle[1],
                **peak,
                "in_flight_mb": in_flight,
                "target_mb": target,
                **outcome,
            }
            log(
                f"P4 {name}: peak RSS web {peak['web']:.0f} MB, worker {peak['worker']:.0f} MB (idle {idle[0]:.0f}/"
                f"{idle[1]:.0f}); target <= {target:.0f} MB (150 + 3 x {in_flight:.0f}); outcome {outcome}"
            )
        finally:
            stack.close()
    return results


# -- P5 backlog ------------------------------------------------------------------------------------


async def _enqueue(stack: Stack, count: int, prefix: str = "p5", cv_bytes: int = 0) -> float:
    from app.core.model import ApplicationIn, Origin
    from app.intake.accept import Intake
    from app.runtime import Runtime
    from app.settings import load_settings

    os.environ.update(stack.env)
    runtime = Runtime(load_settings())
    intake = Intake(runtime.store, runtime.config, runtime.connectors.get)
    decoder = msgspec.json.Decoder(ApplicationIn)
    started = time.perf_counter()
    for start in range(0, count, 500):
        apps = [
            decoder.decode(msgspec.json.encode(canonical(i, cv_bytes))) for i in range(start, min(start + 500, count))
        ]
        await asyncio.gather(
            *(
                intake.accept(app, Origin(channel="api", received_at=time.time()), f"{prefix}-{start + n}")
                for n, app in enumerate(apps)
            )
        )
    elapsed = time.perf_counter() - started
    await runtime.close()
    return elapsed


def p5(count: int = 100_000, window_s: float = 10.0, windows: int = 6) -> dict[str, Any]:
    stack = Stack()
    try:
        emulator = stack.emulator(LOAD_CORE)
        client = stack.redis_client()
        before = int(client.info("memory")["used_memory"])
        elapsed = asyncio.run(_enqueue(stack, count))
        after = int(client.info("memory")["used_memory"])
        per_app = (after - before) / count
        log(f"P5 enqueued {count} in {elapsed:.0f} s; Redis {per_app:.0f} bytes per application (target <= 4096)")
        stack.worker(WEB_CORE)
        rates: list[float] = []
        previous, at = int(client.zcard("ar:ix:st:delivered")), time.perf_counter()
        with httpx.Client(base_url=stack.emulator_url) as emu:
            for _ in range(windows + 1):
                time.sleep(window_s)
                # The emulator scans its lists on lookups: empty it so its cost stays flat, not ours.
                emu.post("/_sandbox/reset")
                done, now = int(client.zcard("ar:ix:st:delivered")), time.perf_counter()
                rates.append((done - previous) / (now - at))
                previous, at = done, now
        rates = rates[1:]  # the first window includes the worker's start
        client.close()
        flat = min(rates) / max(rates) if max(rates) else 0.0
        log(
            f"P5 drain, deliveries/s per {window_s:g} s window with {count} queued: "
            f"{', '.join(f'{r:.0f}' for r in rates)}; min/max {flat:.2f}"
        )
        _ = emulator
        return {"bytes_per_app": per_app, "enqueue_s": elapsed, "rates": rates, "flatness": flat, "count": count}
    finally:
        stack.close()


# -- report ----------------------------------------------------------------------------------------


def write_results(results: dict[str, Any]) -> None:
    lines = [
        f"# Benchmark results\n\nWritten by `python -m bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{os.cpu_count()} cores. Each figure is compared with a baseline measured in the same run.\n"
    ]
    if "p1" in results:
        r = results["p1"]
        lines += [
            "## P1 intake",
            f"{len(r['rounds'])} interleaved rounds (order rotated) of {r['seconds']} s per server; medians of the "
            f"rounds, and the median of each round's ratio. wrk -t1 -c16, POST of a {r['body_bytes'] / 1000:.0f} KB "
            "body (2 KB canonical JSON + a 100 KB CV in base64), unique Idempotency-Key per request; server on "
            "core 0, wrk and Redis (AOF, everysec) on core 1; all servers on the same uvicorn (uvloop, httptools).\n",
            "| server | req/s | p50 ms | p99 ms | non-2xx | server CPU ms/request |",
            "|---|---|---|---|---|---|",
        ]
        for key, v in r["median"].items():
            lines.append(
                f"| {P1_TARGETS[key]} | {v['rps']:.0f} | {v['p50']:.1f} | {v['p99']:.1f} | {v['non2xx']:.0f} "
                f"| {v['cpu_ms']:.2f} |"
            )
        m = r["ratios"]
        per_round = ", ".join(f"{x['ratios']['rps_vs_fastapi']:.2f}" for x in r["rounds"])
        lines.append(
            f"\nMedian per-round ratio: **{m['rps_vs_fastapi']:.2f}x** FastAPI (target >= 1.5; rounds: {per_round}), "
            f"**{m['rps_vs_durable']:.2f}x** the durable limit (target >= 0.6), {m['rps_vs_bare']:.2f}x bare. By the "
            f"server's CPU per request: {m['cpu_vs_fastapi']:.2f}x, {m['cpu_vs_durable']:.2f}x, "
            f"{m['cpu_vs_bare']:.2f}x.\n"
        )
    if "p1instr" in results:
        r = results["p1instr"]
        lines += [
            "## P1 intake in instructions",
            f"The same POST, {r['requests']} times one after the other to each server under valgrind's callgrind "
            "(after 30 uncounted), less what the server runs on its own in an idle window as long: instructions a "
            "request, which the box's load does not move (bench/instructions.py). Valgrind hides the SHA "
            "extensions, so SHA-256 is counted at ~28 instructions a byte: its share is shown apart. System time "
            "(socket reads, fsync, thread hand-offs) is not counted.\n",
            "| server | M instructions a request | of which SHA-256 |",
            "|---|---|---|",
        ]
        for key, v in r["counts"].items():
            lines.append(f"| {P1_TARGETS.get(key, key)} | {v['instructions'] / 1e6:.2f} | {v['sha256'] / 1e6:.2f} |")
        ratios = ", ".join(
            f"{k} {v['with_sha256']:.2f}x as counted, {v['without_sha256']:.2f}x SHA-256 aside"
            for k, v in r["vs_fastapi"].items()
        )
        lines.append(f"\nFastAPI's instructions / the relay's: {ratios}.\n")
    if "p2" in results:
        r = results["p2"]
        lines += [
            "## P2 relay (fair)",
            f"{len(r['rounds'])} interleaved rounds (order rotated), medians. One worker process (core 0) draining "
            f"{r['count']} queued applications (no files) into the nginx stand-in (core 1, with Redis), beside the "
            "naive arq + httpx job (bench/naive.py) on httpx's transport and on the relay's aiohttp one.\n",
            "| | deliveries/s | worker CPU ms/delivery | stand-in CPU ms/delivery | relay CPU / naive's |",
            "|---|---|---|---|---|",
        ]
        for label in r["trees"]:
            who = f"relay@{label}"
            lines.append(
                f"| applyrelay ({label}) | {r[who + '_rate']:.0f} | {r[who + '_cpu_ms']:.2f} | "
                f"{r[who + '_standin_cpu_ms']:.2f} | **{r[f'cpu_vs_naive@{label}']:.2f}x** "
                f"({r[f'cpu_vs_naive_aiohttp@{label}']:.2f}x on aiohttp) |"
            )
        for who, name in (("naive", "naive, httpx"), ("naive_aiohttp", "naive, httpx on aiohttp")):
            lines.append(
                f"| {name} | {r[who + '_rate']:.0f} | {r[who + '_cpu_ms']:.2f} | {r[who + '_standin_cpu_ms']:.2f} | |"
            )
        lines.append(f"\narq no-op jobs: {r['noop']:.0f}/s (context). Target: relay CPU <= 1.3x the naive's.\n")
    if "p2lat" in results:
        r = results["p2lat"]
        lines += ["## P2 latency-bound", f"Every stand-in answer {r['delay_s'] * 1000:.0f} ms late; medians.\n"]
        lines += ["| variant | deliveries/s | bound | vs bound | peak RSS MB |", "|---|---|---|---|---|"]
        for key, v in r.items():
            if isinstance(v, dict) and "bound" in v:
                lines.append(
                    f"| {key} | {v['rate']:.0f} | {v['bound']:.0f} | {v['vs_bound']:.2f}x | {v['worker_rss_mb']:.0f} |"
                )
        lines.append("")
    if "p2scale" in results:
        r = results["p2scale"]
        lines += [
            "## P2 scale-out",
            f"Medians of {len(r['rounds'])} rounds of {r['count']} deliveries. The ceiling: what {CORES} cores "
            "allow two workers when each delivery costs the workers', Redis's and the stand-in's CPU "
            "(all on the same cores), as a ratio to the one-worker rate.\n",
            "| relay | 1 worker /s | 2 workers /s | ratio (target >= 1.7) | the cores' ceiling | Redis cmds/delivery |",
            "|---|---|---|---|---|---|",
        ]
        for key, v in r.items():
            if isinstance(v, dict) and "ratio" in v:
                lines.append(
                    f"| {key} | {v['one']:.0f} | {v['two']:.0f} | {v['ratio']:.2f}x | {v['ceiling']:.2f}x "
                    f"| {v['cmds_one']:.1f} / {v['cmds_two']:.1f} |"
                )
        lines.append("")
    if "p3" in results:
        r = results["p3"]
        lines += [
            "## P3 latency",
            f"{r['count']} applications at {r['rate']:g}/s, accepted (202 at the client) -> "
            "delivered (the last ATS answer).\n",
            f"- p50 **{r['p50']:.1f} ms** (target <= 25), p99 **{r['p99']:.1f} ms** (target <= 100)",
            f"- per ATS step: p50 {r['step_p50']:.0f} ms, p99 {r['step_p99']:.0f} ms\n",
        ]
    if "p4" in results:
        lines += [
            "## P4 memory",
            "| scenario | web peak MB | worker peak MB | idle web/worker MB | target MB | outcome |",
            "|---|---|---|---|---|---|",
        ]
        for name, v in results["p4"].items():
            lines.append(
                f"| {name} | {v['web']:.0f} | {v['worker']:.0f} | {v['idle_web']:.0f}/{v['idle_worker']:.0f} "
                f"| {v['target_mb']:.0f} | delivered {v['delivered']}, failed {v['failed']} |"
            )
        lines.append("")
    if "p5" in results:
        r = results["p5"]
        lines += [
            "## P5 backlog",
            f"- {r['count']} applications without attachments enqueued in "
            f"{r['enqueue_s']:.0f} s: **{r['bytes_per_app']:.0f} bytes of Redis per application** "
            "(target <= 4096)",
            "- drain, one worker, deliveries/s per window: "
            + ", ".join(f"{x:.0f}" for x in r["rates"])
            + f" (min/max {r['flatness']:.2f})\n",
        ]
    extra = (
        RESULTS.read_text().split("<!-- notes -->", 1)[1]
        if RESULTS.exists() and "<!-- notes -->" in RESULTS.read_text()
        else "\n"
    )
    RESULTS.write_text("\n".join(lines) + "\n<!-- notes -->" + extra)


BENCHES: dict[str, str] = {
    "p1": "intake: relay vs bare Litestar, the durable limit, FastAPI + Pydantic + arq (wrk)",
    "p1instr": "intake counted in instructions a request under callgrind (repeatable on a noisy box)",
    "p2": "P2 fair: relay worker vs the naive arq + httpx job, nginx stand-in; arq no-op as context",
    "p2lat": "P2 latency-bound: stand-in answers 100 ms late; rate vs max_jobs / (calls x 0.1 s)",
    "p2scale": "P2 scale-out: 1 vs 2 worker processes; Redis commands per delivery",
    "p3": "accepted -> delivered latency at 10/s",
    "p4": "peak RSS with large CVs",
    "p5": "Redis bytes per queued application, drain flatness",
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="On-demand benchmarks; every figure beside a baseline measured in the same run "
        "(interleaved rounds, each round's ratio and their median). Running all of them rewrites the "
        "top of bench/RESULTS.md (everything below its notes marker is kept).",
        epilog="benches: " + "; ".join(f"{k}: {v}" for k, v in BENCHES.items()),
    )
    parser.add_argument("benches", nargs="*", choices=[[], *BENCHES], metavar="BENCH", help="default: all")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--seconds", type=int, default=6, help="P1: seconds of wrk per server and round (default 6)")
    parser.add_argument("--count", type=int, default=2000, help="P2: applications per drain (default 2000)")
    parser.add_argument(
        "--max-jobs", type=int, nargs="+", default=[50], help="p2lat: worker max_jobs to compare (default 50)"
    )
    parser.add_argument(
        "--cv-bytes", type=int, default=0, help="p2lat: each application carries a CV of this size (default none)"
    )
    parser.add_argument("--json", type=Path, help="also write every figure, round by round, to this file")
    parser.add_argument(
        "--relay",
        nargs="+",
        default=["."],
        metavar="REV",
        help="p1, p1instr, p2, p2lat, p2scale: the relay at these git revisions, each in every round "
        "('.': the working tree)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    chosen = args.benches or list(BENCHES)
    trees = {rev: relay_tree(rev) for rev in args.relay}
    runs: dict[str, Callable[[], Any]] = {
        "p1": lambda: p1(args.seconds, args.rounds, trees if args.relay != ["."] else None),
        "p1instr": lambda: p1instr(trees),
        "p2": lambda: p2(args.count, args.rounds, trees),
        "p2lat": lambda: p2lat(
            max(args.count // 2, 200), args.rounds, max_jobs=tuple(args.max_jobs), trees=trees, cv_bytes=args.cv_bytes
        ),
        "p2scale": lambda: p2scale(args.count, args.rounds, trees),
        "p3": p3,
        "p4": p4,
        "p5": p5,
    }
    results: dict[str, Any] = {}
    for name in chosen:
        log(f"== {name}: {BENCHES[name]}")
        results[name] = runs[name]()
        if args.json:
            args.json.write_text(json.dumps(results, indent=1, default=str))
    if set(chosen) == set(BENCHES):
        write_results(results)
        log(f"results written to {RESULTS}")
    else:
        log(f"a subset ran: {RESULTS} left as it is (run all to rewrite it)")


if __name__ == "__main__":
    main(sys.argv[1:])
