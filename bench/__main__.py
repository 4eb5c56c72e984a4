"""`python -m bench [p1 p2 p3 p4 p5]` — run the benchmarks; all of them (the default) rewrite bench/RESULTS.md.

Every figure is printed with its ratio to a baseline measured in the same run on the same
machine. Needs `wrk` (Debian: apt-get install -y wrk) and the `bench` extra (fastapi, pydantic).
Never part of the test suite: numbers depend on the machine.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.procs import REPO, TOKEN, Stack, canonical, pinned

RESULTS = Path(__file__).with_name("RESULTS.md")
WEB_CORE, LOAD_CORE = 0, 1
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


def wrk(url: str, body_path: Path, prefix: str, seconds: int, connections: int = 16) -> dict[str, float]:
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


def p1(seconds: int = 6, rounds: int = 3) -> dict[str, Any]:
    stack = Stack()
    try:
        subprocess.run(
            ["taskset", "-pc", str(LOAD_CORE), str(stack.redis.process.pid)],  # type: ignore[union-attr]
            capture_output=True,
            check=False,
        )
        stack.emulator(LOAD_CORE)
        body = stack.dir / "body.json"
        body.write_bytes(msgspec.json.encode(canonical(0)))
        results: dict[str, Any] = {"body_bytes": body.stat().st_size}
        targets: list[tuple[str, Callable[[], tuple[Any, str]]]] = [
            ("bare Litestar (validate, 202, no Redis)", lambda: stack.uvicorn("bench.baseline_litestar:app", WEB_CORE)),
            ("applyrelay web (durable + enqueued)", lambda: stack.web(WEB_CORE)),
            ("FastAPI + Pydantic + arq", lambda: stack.uvicorn("bench.baseline_fastapi:app", WEB_CORE)),
        ]
        # Rounds, interleaved, best of each: other load on the machine hits every target alike.
        for round_no in range(rounds):
            for name, start in targets:
                proc, url = start()
                wrk(url, body, f"warm-{proc.pid}-", 2)
                stack.redis_client().flushall()
                cpu_before = proc.cpu_s()
                result = wrk(url, body, f"run-{proc.pid}-", seconds)
                # The server's own CPU per request: its cost whether or not core 1 (wrk, Redis and
                # Redis's AOF rewrites) is what limits req/s in a run.
                result["cpu_ms"] = (proc.cpu_s() - cpu_before) * 1000 / max(result["rps"] * seconds, 1)
                log(
                    f"P1 round {round_no + 1} {name}: {result['rps']:.0f} req/s, p50 {result['p50']:.1f} ms, "
                    f"p99 {result['p99']:.1f} ms, non-2xx {result['non2xx']}, {result['cpu_ms']:.2f} ms CPU/req"
                )
                if name not in results or result["rps"] > results[name]["rps"]:
                    results[name] = result
                proc.stop()
        relay, bare = results["applyrelay web (durable + enqueued)"], results["bare Litestar (validate, 202, no Redis)"]
        fastapi = results["FastAPI + Pydantic + arq"]
        results["vs_bare"], results["vs_fastapi"] = relay["rps"] / bare["rps"], relay["rps"] / fastapi["rps"]
        results["cpu_vs_bare"], results["cpu_vs_fastapi"] = (
            bare["cpu_ms"] / relay["cpu_ms"],
            fastapi["cpu_ms"] / relay["cpu_ms"],
        )
        log(
            f"P1 ratio: {results['vs_bare']:.2f}x bare (target >= 0.6), {results['vs_fastapi']:.2f}x FastAPI "
            f"(target >= 1.5); by server CPU per request: {results['cpu_vs_bare']:.2f}x bare, "
            f"{results['cpu_vs_fastapi']:.2f}x FastAPI"
        )
        return results
    finally:
        stack.close()


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


def p2(count: int = 2000, concurrency: int = 50, rounds: int = 3) -> dict[str, Any]:
    """Best of `rounds` interleaved runs of each: the shared machine's speed drifts by up to 2x
    within minutes, and interleaving gives both sides the same conditions."""
    relay_rates, cpu_ms, arq_rates = [], [], []
    for round_no in range(rounds):
        rate, cpu = _p2_relay(count, concurrency)
        relay_rates.append(rate)
        cpu_ms.append(cpu)
        stack = Stack()
        try:
            out = subprocess.run(
                pinned([sys.executable, "-m", "bench.arq_noop", str(count * 5)], WEB_CORE),
                env=stack.env,
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
        finally:
            stack.close()
        arq_rates.append(int(out[0]) / float(out[1]))
        log(
            f"P2 round {round_no + 1}: relay {rate:.0f} deliveries/s ({cpu:.2f} ms of worker CPU each), "
            f"arq no-op {arq_rates[-1]:.0f} jobs/s"
        )
    relay_rate, arq_rate = max(relay_rates), max(arq_rates)
    ratio = relay_rate / arq_rate
    log(
        f"P2 relay: {relay_rate:.0f} deliveries/s (one worker, ~6 emulator calls each); arq no-op: "
        f"{arq_rate:.0f} jobs/s; ratio {ratio:.2f}x (target >= 0.6)"
    )
    return {
        "relay": relay_rate,
        "arq_noop": arq_rate,
        "ratio": ratio,
        "count": count,
        "concurrency": concurrency,
        "cpu_ms": min(cpu_ms),
        "rounds": rounds,
    }


def _p2_relay(count: int, concurrency: int) -> tuple[float, float]:
    """(deliveries/s, worker CPU ms per delivery) for one worker draining `count` applications."""
    # The connection's concurrency limit (default 10, a Redis semaphore across workers) would
    # measure the limiter's deferrals, not the relay: allow as many as the worker runs (max_jobs).
    stack = Stack(connection={"concurrency": concurrency})
    try:
        stack.emulator(LOAD_CORE)
        web, url = stack.web(LOAD_CORE)
        asyncio.run(post_many(url, [(f"p2-{i}", canonical(i, 0)) for i in range(count)]))
        web.stop()
        worker = stack.worker(WEB_CORE)
        time.sleep(0.2)
        first, last = wait_count(stack, count, 600)
        cpu = worker.cpu_s()
        return (count - 1) / (last - first), cpu * 1000 / count
    finally:
        stack.close()


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


async def _enqueue(stack: Stack, count: int) -> float:
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
        apps = [decoder.decode(msgspec.json.encode(canonical(i, 0))) for i in range(start, min(start + 500, count))]
        await asyncio.gather(
            *(
                intake.accept(app, Origin(channel="api", received_at=time.time()), f"p5-{start + n}")
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
            "Best of 3 interleaved 6 s runs per server. "
            f"wrk -t1 -c16, POST of a {r['body_bytes'] / 1000:.0f} KB body (2 KB canonical "
            "JSON + a 100 KB CV in base64), unique Idempotency-Key per request; server on core 0, wrk and "
            "Redis (AOF, everysec) on core 1; all three servers on the same uvicorn (uvloop, httptools).\n",
            "| server | req/s | p50 ms | p99 ms | non-2xx | server CPU ms/request |",
            "|---|---|---|---|---|---|",
        ]
        for name, v in r.items():
            if isinstance(v, dict):
                lines.append(
                    f"| {name} | {v['rps']:.0f} | {v['p50']:.1f} | {v['p99']:.1f} | {v['non2xx']} | {v['cpu_ms']:.2f} |"
                )
        lines.append(
            f"\nRatio: **{r['vs_bare']:.2f}x** the bare endpoint (target >= 0.6), **{r['vs_fastapi']:.2f}x** "
            f"FastAPI (target >= 1.5). By the server's CPU per request: {r['cpu_vs_bare']:.2f}x bare, "
            f"{r['cpu_vs_fastapi']:.2f}x FastAPI.\n"
        )
    if "p2" in results:
        r = results["p2"]
        lines += [
            "## P2 relay",
            f"Best of {r['rounds']} interleaved rounds. One worker process (core 0) draining "
            f"{r['count']} queued applications into the Factorial emulator (core 1, zero added latency), "
            f"connection concurrency {r['concurrency']}.\n",
            f"- applyrelay: **{r['relay']:.0f} deliveries/s** ({r['cpu_ms']:.1f} ms of worker CPU per "
            "delivery, its start-up included)",
            f"- arq no-op jobs: {r['arq_noop']:.0f} jobs/s",
            f"- ratio **{r['ratio']:.2f}x** (target >= 0.6)\n",
        ]
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


BENCHES = {"p1": p1, "p2": p2, "p3": p3, "p4": p4, "p5": p5}


def main(argv: list[str]) -> None:
    chosen = argv or list(BENCHES)
    results: dict[str, Any] = {}
    for name in chosen:
        log(f"== {name}")
        results[name] = BENCHES[name]()
    if set(chosen) == set(BENCHES):
        write_results(results)
        log(f"results written to {RESULTS}")
    else:
        log(f"a subset ran: {RESULTS} left as it is (run all to rewrite it)")


if __name__ == "__main__":
    main(sys.argv[1:])
