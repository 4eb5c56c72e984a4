"""kill -9 of a worker in the middle of a delivery: the re-run resumes, nothing is duplicated."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.builders import PDF_BYTES, b64, connection_table
from tests.support.emulators import Emulator

pytestmark = pytest.mark.slow


async def test_worker_killed_mid_delivery_delivers_once(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url)}, job_timeout_s=4.0)
    # Slow the application create so the kill lands between the candidate and the application.
    factorial.faults(latency_ms=2500, path_regex="/ats/applications$", methods=["POST"])
    worker = relay.spawn_worker()
    body = {
        "connection_id": "acme",
        "candidate": {"first_name": "Kai", "last_name": "Nieminen", "email_address": "kai@example.org"},
        "application": {"job_id": "2001"},
        "screening_question_answers": [
            {"question_id": "3003", "answer": "Yes"},
            {"question_id": "3001", "answer": "-"},
        ],
        "attachments": [{"name": "cv.pdf", "type": "CV", "data": b64(PDF_BYTES)}],
    }
    delivery_id = (await relay.post(body)).json()["id"]
    await relay.wait_for(delivery_id, "delivering", until=lambda r: "candidate" in r["checkpoints"], timeout=20)
    await asyncio.sleep(0.5)  # the application POST is in flight at the emulator
    relay.kill(worker)
    killed = await relay.delivery(delivery_id)
    assert killed["status"] == "delivering" and "application" not in killed["checkpoints"]

    factorial.faults()  # healthy again
    relay.spawn_worker()
    # arq re-runs the job once its in-progress lease (job_timeout + 10 s) lapses
    record = await relay.wait_for(delivery_id, "delivered", timeout=40)
    assert any(a["outcome"] == "crash" for a in record["attempts"])
    records = factorial.records()
    assert len(records["candidates"]) == 1
    assert len(records["applications"]) == 1
    assert len(records["answers"]) == 2  # one per answered question, once
    assert len(records["files"]) == 1
