"""`python -m bench.p1_answers [--seconds 5] [--rounds 3] [--tree PATH]` — P1 with screening answers:
the relay's server CPU per intake request of the canonical P1 body without answers and with five
answers built from the catalog API's own output, on a warm catalog cache (docs/answers.md). The
target: the five answers cost at most 10 % more CPU per request. Rounds are interleaved and each
variant's median is kept (other load on the machine hits both alike). `--tree` runs the relay of
another checkout (e.g. main, for the cost of the job check itself); its bodies are the same.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

import httpx
import msgspec

from bench.__main__ import LOAD_CORE, WEB_CORE, log, wrk
from bench.procs import TOKEN, Stack, canonical

JOB = "2001"
EXTRA_QUESTION = {"ats_job_posting_id": JOB, "label": "Notice period", "question_type": "text"}


def five_answers(questions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One answer of its format to each of five non-file questions (option ids from the API)."""
    answers = []
    for q in questions:
        fmt = q["format"]
        ids = [o["id"] for o in fmt.get("options") or []]
        value: Any = {
            "TEXT": "Available in two weeks; happy to relocate within the EU.",
            "SINGLE_SELECT": ids[0] if ids else None,
            "MULTI_SELECT": ids[:2],
        }.get(fmt["type"])
        if value is not None:
            answers.append({"question_id": q["id"], "answer": value})
    if len(answers) < 5:
        raise RuntimeError(f"job {JOB} has {len(answers)} non-file questions, five are needed")
    return answers[:5]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.p1_answers")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tree", help="the checkout whose relay runs (default: this one)")
    args = parser.parse_args(argv)
    stack = Stack()
    if args.tree:
        stack.env["PYTHONPATH"] = args.tree
    try:
        stack.emulator(LOAD_CORE)
        httpx.post(f"{stack.emulator_url}/_sandbox/factorial/questions", json=EXTRA_QUESTION).raise_for_status()
        proc, url = stack.web(WEB_CORE)
        plain = canonical(0)
        if args.tree:  # an older relay may have no read routes: the questions as this one reads them
            questions = _questions_from_emulator(stack.emulator_url)
        else:
            auth = {"authorization": f"Bearer {TOKEN}"}
            response = httpx.get(f"{url}/v1/connections/acme/jobs/{JOB}/screening-questions", headers=auth)
            questions = response.raise_for_status().json()["data"]
        answered = {**plain, "screening_question_answers": five_answers(questions)}
        bodies = {"without answers": plain, "five answers": answered}
        paths = {}
        for name, body in bodies.items():
            paths[name] = stack.dir / f"{name.replace(' ', '-')}.json"
            paths[name].write_bytes(msgspec.json.encode(body))
            check = httpx.post(
                f"{url}/v1/applications",
                content=paths[name].read_bytes(),
                headers=_headers(f"check-{name.replace(' ', '-')}"),
            )
            if check.status_code != 202:
                raise RuntimeError(f"{name}: {check.status_code} {check.text}")
            wrk(url, paths[name], f"warm-{paths[name].stem}-", 2)  # and the catalog's cache is warm
        cpu: dict[str, list[float]] = {name: [] for name in bodies}
        rps: dict[str, list[float]] = {name: [] for name in bodies}
        for round_no in range(args.rounds):
            for name in bodies:
                before = proc.cpu_s()
                result = wrk(url, paths[name], f"run{round_no}-{paths[name].stem}-", args.seconds)
                if result["non2xx"]:
                    raise RuntimeError(f"{name}: {result['non2xx']} non-2xx answers")
                ms = (proc.cpu_s() - before) * 1000 / max(result["rps"] * args.seconds, 1)
                cpu[name].append(ms)
                rps[name].append(result["rps"])
                log(f"round {round_no + 1} {name}: {result['rps']:.0f} req/s, {ms:.3f} ms CPU/req")
        median = {name: statistics.median(values) for name, values in cpu.items()}
        ratio = median["five answers"] / median["without answers"]
        log(
            f"median CPU/req: without answers {median['without answers']:.3f} ms, five answers "
            f"{median['five answers']:.3f} ms: {100 * (ratio - 1):+.1f} % (target <= +10 %); req/s "
            f"{statistics.median(rps['without answers']):.0f} vs {statistics.median(rps['five answers']):.0f}"
        )
    finally:
        stack.close()


def _headers(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKEN}", "content-type": "application/json", "idempotency-key": key}


def _questions_from_emulator(emulator_url: str) -> list[dict[str, Any]]:
    """Job 2001's questions in Kombo's shape, read by this tree's Factorial connector."""
    import asyncio

    from connectors.base import ConnectionSpec
    from connectors.factorial import FactorialConnector, FactorialSettings

    async def read() -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as http:
            spec = ConnectionSpec("acme", "factorial", emulator_url, "sandbox", FactorialSettings())
            return [msgspec.to_builtins(q) for q in await FactorialConnector(spec, http).job_questions(JOB)]

    return asyncio.run(read())


if __name__ == "__main__":
    main(sys.argv[1:])
