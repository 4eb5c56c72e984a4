"""`python -m bench.blobs [p5 p1 p4]` — issue 20's figures, with the attachment bytes in the blob store.

- P5 (blobs): 10,000 applications queued, each with a 300 KB CV, the local-file store: Redis
  memory per application (target <= 4 KB; with the CVs in Redis it was ~400 KB), then the drain
  rate of one worker per window (flat).
- P1 (blobs): intake req/s with the local-file store against the code before it (the main
  worktree, `BENCH_BASELINE_REPO`, default /work/main), interleaved rounds in one run, best of each
  (target: within 10 %).
- P4 (blobs): bench P4 (peak RSS, ten 10 MB CVs and one 20 MB CV) with the blob store.
- P4 form: one 20 MB CV posted to the career-site form route (multipart), the web's peak RSS above
  idle against the CV's size (target <= 3x), for this tree and, with `BENCH_FORM_BEFORE=<dir>`,
  another's (an export of the commit before, say) in the same run.

Prints its figures; bench/RESULTS.md gets them by hand (its generated part belongs to
`python -m bench`).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from bench.__main__ import LOAD_CORE, WEB_CORE, log, p4, wrk
from bench.procs import Proc, Stack, canonical, free_port, pinned, wait_port

BASELINE_REPO = Path(os.environ.get("BENCH_BASELINE_REPO", "/work/main"))


def _with_blobs(stack: Stack) -> Stack:
    stack.env["APPLYRELAY_BLOBS"] = f"file://{stack.dir / 'blobs'}"
    return stack


async def _enqueue(stack: Stack, count: int, cv_bytes: int) -> float:
    from app.core.model import ApplicationIn, Origin
    from app.intake.accept import Intake
    from app.runtime import Runtime
    from app.settings import load_settings

    os.environ.update(stack.env)
    runtime = Runtime(load_settings())
    intake = Intake(runtime.store, runtime.config, runtime.connectors.get, pseudonyms=runtime.pseudonyms)
    decoder = msgspec.json.Decoder(ApplicationIn)
    started = time.perf_counter()
    for start in range(0, count, 100):
        apps = [
            decoder.decode(msgspec.json.encode(canonical(i, cv_bytes))) for i in range(start, min(start + 100, count))
        ]
        await asyncio.gather(
            *(
                intake.accept(app, Origin(channel="api", received_at=time.time()), f"p5b-{start + n}")
                for n, app in enumerate(apps)
            )
        )
    elapsed = time.perf_counter() - started
    await runtime.close()
    return elapsed


def p5(count: int = 10_000, cv_bytes: int = 300_000, window_s: float = 10.0, windows: int = 4) -> dict[str, Any]:
    stack = _with_blobs(Stack())
    try:
        emulator = stack.emulator(LOAD_CORE)
        client = stack.redis_client()
        before = int(client.info("memory")["used_memory"])
        elapsed = asyncio.run(_enqueue(stack, count, cv_bytes))
        after = int(client.info("memory")["used_memory"])
        per_app = (after - before) / count
        on_disk = sum(p.stat().st_size for p in (stack.dir / "blobs").rglob("*") if p.is_file())
        log(
            f"P5 (blobs) enqueued {count} with a {cv_bytes // 1000} KB CV in {elapsed:.0f} s; Redis {per_app:.0f} "
            f"bytes per application (target <= 4096); blob store {on_disk / count / 1000:.0f} KB per application"
        )
        stack.worker(WEB_CORE)
        rates: list[float] = []
        previous, at = int(client.zcard("ar:ix:st:delivered")), time.perf_counter()
        with httpx.Client(base_url=stack.emulator_url) as emu:
            for _ in range(windows + 1):
                time.sleep(window_s)
                emu.post("/_sandbox/reset")  # the emulator's lists stay short: its cost flat, not ours
                done, now = int(client.zcard("ar:ix:st:delivered")), time.perf_counter()
                rates.append((done - previous) / (now - at))
                previous, at = done, now
        rates = rates[1:]  # the first window includes the worker's start
        client.close()
        flat = min(rates) / max(rates) if max(rates) else 0.0
        log(f"P5 (blobs) drain, deliveries/s per {window_s:g} s window: {', '.join(f'{r:.0f}' for r in rates)}")
        _ = emulator
        return {"bytes_per_app": per_app, "enqueue_s": elapsed, "rates": rates, "flatness": flat}
    finally:
        stack.close()


def _baseline_web(stack: Stack, core: int) -> tuple[Proc, str]:
    """The web process of the code before the blob store (its own worktree, same Redis)."""
    port = free_port()
    env = {**stack.env, "PYTHONPATH": str(BASELINE_REPO)}
    env.pop("APPLYRELAY_BLOBS", None)
    proc = Proc.__new__(Proc)
    proc.name = f"baseline-web-{port}"
    proc.log = open(stack.dir / f"{proc.name}.log", "wb")  # closed by Proc.stop
    proc.popen = subprocess.Popen(
        pinned([sys.executable, "-m", "app.cli", "web", "--port", str(port)], core),
        env=env,
        cwd=BASELINE_REPO,
        stdout=proc.log,
        stderr=subprocess.STDOUT,
    )
    stack.procs.append(proc)
    wait_port(port)
    return proc, f"http://127.0.0.1:{port}"


def p1(seconds: int = 6, rounds: int = 3) -> dict[str, Any]:
    stack = _with_blobs(Stack())
    try:
        stack.emulator(LOAD_CORE)
        body = stack.dir / "body.json"
        body.write_bytes(msgspec.json.encode(canonical(0)))
        targets = {
            "before (CVs in Redis, main)": lambda: _baseline_web(stack, WEB_CORE),
            "blob store (local files)": lambda: stack.web(WEB_CORE),
        }
        best: dict[str, dict[str, float]] = {}
        for round_no in range(rounds):
            for name, start in targets.items():
                proc, url = start()
                wrk(url, body, f"warm-{proc.pid}-", 2)
                stack.redis_client().flushall()
                cpu_before = proc.cpu_s()
                result = wrk(url, body, f"run-{proc.pid}-", seconds)
                result["cpu_ms"] = (proc.cpu_s() - cpu_before) * 1000 / max(result["rps"] * seconds, 1)
                log(
                    f"P1 (blobs) round {round_no + 1} {name}: {result['rps']:.0f} req/s, p50 {result['p50']:.1f} ms, "
                    f"p99 {result['p99']:.1f} ms, non-2xx {result['non2xx']}, {result['cpu_ms']:.2f} ms CPU/req"
                )
                if name not in best or result["rps"] > best[name]["rps"]:
                    best[name] = result
                proc.stop()
        before, after = best["before (CVs in Redis, main)"], best["blob store (local files)"]
        log(
            f"P1 (blobs) best of {rounds}: before {before['rps']:.0f} req/s ({before['cpu_ms']:.2f} ms CPU/req), "
            f"blob store {after['rps']:.0f} req/s ({after['cpu_ms']:.2f} ms CPU/req): "
            f"{after['rps'] / before['rps']:.2f}x (target >= 0.90x)"
        )
        return {"before": before, "after": after, "ratio": after["rps"] / before["rps"]}
    finally:
        stack.close()


FORM_TOKEN = "bench-form-token"


def _form_peak(tree: Path, cv_bytes: int) -> dict[str, float]:
    mb = 1_000_000
    stack = Stack(
        connection={"max_file_bytes": 21 * mb, "max_application_bytes": 30 * mb, "form_token_env": "BENCH_FORM_TOKEN"},
        tree=tree,
    )
    stack.env["BENCH_FORM_TOKEN"] = FORM_TOKEN
    _with_blobs(stack)
    try:
        stack.emulator(LOAD_CORE)
        web, url = stack.web(WEB_CORE)
        fields = {"first_name": "Ana", "last_name": "Lopez", "email": "ana@example.org"}
        with httpx.Client(base_url=url, timeout=120) as client:  # warm: imports, the job's read
            small = {"resume": ("cv.pdf", b"%PDF-1.4\n" + os.urandom(1000), "application/pdf")}
            client.post("/inbound/forms/acme/2001", data=fields, files=small, headers={"x-form-token": FORM_TOKEN})
            time.sleep(1.0)
            idle = web.peak_rss_mb()
            cv = b"%PDF-1.4\n" + os.urandom(cv_bytes - 9)
            response = client.post(
                "/inbound/forms/acme/2001",
                data={**fields, "email": "ana2@example.org"},
                files={"resume": ("cv.pdf", cv, "application/pdf")},
                headers={"x-form-token": FORM_TOKEN},
            )
        peak = web.peak_rss_mb()
        size_mb = cv_bytes / 2**20
        return {"status": response.status_code, "idle": idle, "peak": peak, "ratio": (peak - idle) / size_mb}
    finally:
        stack.close()


def p4form(cv_bytes: int = 20_000_000) -> dict[str, Any]:
    trees = {"this tree": Path(__file__).resolve().parents[1]}
    if os.environ.get("BENCH_FORM_BEFORE"):
        trees = {"before": Path(os.environ["BENCH_FORM_BEFORE"]), **trees}
    results = {}
    for name, tree in trees.items():
        result = _form_peak(tree, cv_bytes)
        results[name] = result
        log(
            f"P4 form, one {cv_bytes // 1_000_000} MB CV, {name}: HTTP {result['status']}, web peak RSS "
            f"{result['peak']:.0f} MB (idle {result['idle']:.0f}): +{result['peak'] - result['idle']:.0f} MB = "
            f"{result['ratio']:.1f}x the CV (target <= 3x)"
        )
    return results


def main(argv: list[str]) -> None:
    chosen = argv or ["p5", "p1", "p4"]
    for name in chosen:
        if name == "p4":
            previous = os.environ.get("APPLYRELAY_BLOBS")
            os.environ["APPLYRELAY_BLOBS"] = f"file://{Path(os.environ.get('TMPDIR', '/tmp')) / 'p4-blobs'}"
            try:
                print(p4())
            finally:
                if previous is None:
                    os.environ.pop("APPLYRELAY_BLOBS")
        else:
            print({"p5": p5, "p1": p1, "p4form": p4form}[name]())


if __name__ == "__main__":
    main(sys.argv[1:])
