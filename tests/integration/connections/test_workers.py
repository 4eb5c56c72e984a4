"""Two worker processes started before a connection is made through the API both deliver to it
within seconds, no restart (docs/connections.md): each is frozen in turn (SIGSTOP) so the other
must take the application; neither's log shows the key."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import application
from tests.support.connections import create, post_until_accepted
from tests.support.emulators import EmulatorFactory

pytestmark = pytest.mark.slow

KEY = "fct-workers-Tt31-secret"


def text_of(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


async def wait_for_line(log: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in text_of(log):
        assert time.monotonic() < deadline, f"{log.name} never logged {text!r}"
        await asyncio.sleep(0.1)


async def test_two_workers_started_before_the_connection_both_deliver_to_it(
    make_relay: Any, emulator: EmulatorFactory, tmp_path: Path
) -> None:
    factorial = emulator("factorial", api_key=KEY)
    relay = make_relay({})
    workers: list[subprocess.Popen[bytes]] = [relay.spawn_worker(), relay.spawn_worker()]
    logs = [tmp_path / "worker-0.log", tmp_path / "worker-1.log"]
    for log in logs:
        await wait_for_line(log, "worker.started")
    body = {"id": "multi", "connector": "factorial", "base_url": factorial.url, "credentials": {"api_key": KEY}}
    made = await create(relay, body)
    assert made.status_code == 201, made.text
    await asyncio.sleep(1.5)  # each worker's registry polls the version once a second
    try:
        for i, (frozen, working) in enumerate([(0, 1), (1, 0)]):
            workers[frozen].send_signal(signal.SIGSTOP)
            payload = application(connection_id="multi", attachments=[])
            payload["candidate"]["email_address"] = f"worker{i}@example.org"
            delivery_id = await post_until_accepted(relay, payload)
            await relay.wait_for(delivery_id, "delivered", timeout=20)
            await wait_for_line(logs[working], delivery_id, timeout=5)
            assert delivery_id not in text_of(logs[frozen])
            workers[frozen].send_signal(signal.SIGCONT)
    finally:
        for process in workers:
            process.send_signal(signal.SIGCONT)
    assert len(factorial.records()["candidates"]) == 2
    for log in logs:
        assert KEY not in text_of(log)
