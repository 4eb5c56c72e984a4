"""Counting what arrives: the chaos tests' shared instruments.

Every chaos test sends uniquely identifiable applications (one e-mail each), then compares what the
relay accepted with what the Factorial emulator holds: an application is *delivered* when its
candidate, its application and its CV are each in the emulator exactly once, *lost* when any of
them is missing, *duplicated* when any of them is there more than once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from app.redis.keys import status_index
from tests.support.builders import PDF_BYTES, b64
from tests.support.harness import Relay


def application(i: int, *, run: str = "chaos", cv: bool = True) -> dict[str, Any]:
    """Application number `i`, told apart by its e-mail; its CV's bytes are unique too."""
    body: dict[str, Any] = {
        "connection_id": "acme",
        "candidate": {"first_name": "Chaos", "last_name": f"Test {i}", "email_address": f"{run}-{i}@example.org"},
        "application": {"job_id": "2001"},
    }
    if cv:
        body["attachments"] = [
            {
                "name": f"cv-{i}.pdf",
                "type": "CV",
                "content_type": "application/pdf",
                "data": b64(PDF_BYTES + f"\n% {run} {i}\n".encode()),
            }
        ]
    return body


@dataclass
class Tally:
    sent: int = 0
    accepted: int = 0
    refused: Counter[int] = field(default_factory=Counter)  # status code → count (503s during an outage)
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    details: list[str] = field(default_factory=list)

    def line(self, name: str) -> str:
        refused = ", ".join(f"{code}: {n}" for code, n in sorted(self.refused.items())) or "none"
        return (
            f"[chaos] {name}: sent={self.sent} accepted={self.accepted} refused=({refused}) "
            f"delivered={self.delivered} lost={self.lost} duplicated={self.duplicated}"
        )

    def report(self, name: str) -> None:
        """Printed (shown with a failing test) and kept for the session's closing summary, so the
        counts of passing tests reach the CI log too (tests/chaos/conftest.py)."""
        print(self.line(name), flush=True)
        for detail in self.details[:20]:
            print(f"[chaos]   {detail}", flush=True)
        SUMMARY.append(self.line(name))


SUMMARY: list[str] = []  # one [chaos] line per finished chaos test, for the terminal summary


async def post_all(
    relay: Relay,
    bodies: Iterable[tuple[str, dict[str, Any]]],
    tally: Tally,
    *,
    concurrency: int = 16,
    timeout_s: float = 15.0,
) -> dict[str, str]:
    """POST each (key, body); returns key → delivery id of the accepted ones. A response slower than
    `timeout_s` fails the test (intake must never hang)."""
    accepted: dict[str, str] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(key: str, body: dict[str, Any]) -> None:
        async with gate:
            tally.sent += 1
            try:
                response = await asyncio.wait_for(relay.post(body, key=key), timeout_s)
            except TimeoutError:
                raise AssertionError(f"intake hung for more than {timeout_s} s") from None
            if response.status_code == 202:
                tally.accepted += 1
                accepted[key] = response.json()["id"]
            else:
                tally.refused[response.status_code] += 1

    await asyncio.gather(*(one(k, b) for k, b in bodies))
    return accepted


async def wait_delivered(relay: Relay, expected: int, *, timeout_s: float, nudge: bool = False) -> int:
    """Wait until `expected` deliveries are delivered; with `nudge`, make retries due at once
    (the schedule, compressed) on every poll. Returns the number delivered."""
    deadline = time.monotonic() + timeout_s
    while True:
        delivered = int(await relay.redis.zcard(status_index("delivered")))
        if delivered >= expected or time.monotonic() > deadline:
            return delivered
        if nudge:
            await relay.run_due_jobs()
        await asyncio.sleep(0.2)


def count_arrivals(records: dict[str, Any], emails: Iterable[str], tally: Tally) -> None:
    """Fill delivered / lost / duplicated from what the emulator holds, for these e-mails."""
    candidates_by_email: dict[str, list[dict[str, Any]]] = {}
    for candidate in records["candidates"]:
        candidates_by_email.setdefault(candidate["email"], []).append(candidate)
    apps_by_candidate: dict[str, list[dict[str, Any]]] = {}
    for app in records["applications"]:
        apps_by_candidate.setdefault(str(app["ats_candidate_id"]), []).append(app)
    files_by_app: Counter[str] = Counter(str(f.get("ats_application_id")) for f in records["files"])
    for email in emails:
        candidates = candidates_by_email.get(email, [])
        apps = [a for c in candidates for a in apps_by_candidate.get(str(c["id"]), [])]
        files = sum(files_by_app[str(a["id"])] for a in apps)
        counts = (len(candidates), len(apps), files)
        if counts == (1, 1, 1):
            tally.delivered += 1
        elif 0 in counts:
            tally.lost += 1
            tally.details.append(f"lost: {email} candidates/applications/files={counts}")
        else:
            tally.duplicated += 1
            tally.details.append(f"duplicated: {email} candidates/applications/files={counts}")


async def stuck_report(relay: Relay, limit: int = 5) -> list[str]:
    """For deliveries not finished: where their job is (diagnostics for a failing chaos run)."""
    lines = []
    for status in ("delivering", "queued", "retry_scheduled"):
        for raw in await relay.redis.zrange(status_index(status), 0, limit - 1):
            delivery = await relay.delivery(raw.decode())
            job = delivery.get("job") or ""
            lines.append(
                f"{status} {raw.decode()} job={job} body={bool(await relay.redis.exists('arq:job:' + job))} "
                f"queued={await relay.redis.zscore('arq:queue', job)} "
                f"in_progress={bool(await relay.redis.exists('arq:in-progress:' + job))} "
                f"lock={bool(await relay.redis.exists('ar:lock:' + raw.decode()))} "
                f"attempts={[a.get('outcome') for a in delivery.get('attempts', [])]}"
            )
    return lines


async def status_counts(relay: Relay) -> dict[str, Any]:
    response = await relay.client.get("/v1/deliveries", params={"limit": 1}, headers=relay.admin)
    response.raise_for_status()
    return response.json()["counts"]


def is_transport_error(exc: BaseException) -> bool:
    return isinstance(exc, httpx.TransportError)
