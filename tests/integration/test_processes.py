"""The processes as deployed: the Procfile's lines started as they are, and a worker's SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.redis.embedded import free_port
from tests.support.builders import PDF_BYTES, b64, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import ADMIN_TOKEN, DATA_KEY, REPO, config_toml

pytestmark = pytest.mark.slow


def application(n: int = 0) -> dict[str, Any]:
    return {
        "connection_id": "acme",
        "application": {"job_id": "2001"},
        "candidate": {"first_name": "Kai", "last_name": f"Test{n}", "email_address": f"kai{n}@example.org"},
        "screening_question_answers": [
            {"question_id": "3003", "answer": "Yes"},
            {"question_id": "3001", "answer": "-"},
        ],
        "attachments": [{"name": "cv.pdf", "type": "CV", "data": b64(PDF_BYTES)}],
    }


def procfile() -> dict[str, str]:
    lines = (REPO / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def start(line: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """One Procfile line, run the way a Procfile runner does: by the shell, which expands $PORT."""
    with log.open("wb") as out:
        return subprocess.Popen(
            ["sh", "-c", f"exec {line}"], env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT
        )


def test_procfile_names_the_two_processes() -> None:
    assert procfile() == {"web": "applyrelay web --host 0.0.0.0 --port $PORT", "worker": "applyrelay worker"}


async def test_procfile_lines_serve_and_deliver(redis_url: str, factorial: Emulator, tmp_path: Path) -> None:
    config = tmp_path / "applyrelay.toml"
    config.write_text(config_toml({"acme": connection_table("factorial", factorial.url)}))
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "APPLYRELAY_CONFIG": str(config),
        "PORT": str(port),
        "APPLYRELAY_ADMIN_TOKEN": ADMIN_TOKEN,
        "TEST_FACTORIAL_KEY": "sandbox",
        "PYTHONPATH": str(REPO),
        "APPLYRELAY_DATA_KEY": DATA_KEY,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    processes = {name: start(line, env, tmp_path / f"{name}.log") for name, line in procfile().items()}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 20
            while True:
                try:
                    health = await http.get("/health")
                    break
                except httpx.TransportError:
                    assert processes["web"].poll() is None, (tmp_path / "web.log").read_text()
                    assert time.monotonic() < deadline, "web did not start"
                    await asyncio.sleep(0.1)
            assert health.status_code == 200 and health.json() == {"status": "ok"}
            assert (await http.get("/ready")).json() == {"status": "ready"}
            admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
            accepted = await http.post("/v1/applications", json=application(), headers=admin)
            assert accepted.status_code == 202, accepted.text
            delivery_id = accepted.json()["id"]
            deadline = time.monotonic() + 30
            while (record := (await http.get(f"/v1/deliveries/{delivery_id}", headers=admin)).json())[
                "status"
            ] != "delivered":
                assert processes["worker"].poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, record
                await asyncio.sleep(0.1)
        assert len(factorial.records()["applications"]) == 1
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        # uvicorn re-raises SIGTERM after its graceful shutdown; arq's worker returns normally
        expected = {"web": (0, -signal.SIGTERM), "worker": (0,)}
        for name, process in processes.items():
            assert process.wait(timeout=30) in expected[name], (tmp_path / f"{name}.log").read_text()
    assert '"event_loop": "uvloop"' in (tmp_path / "worker.log").read_text()  # app/net/event_loop.py


def test_the_web_serves_with_httptools_on_uvloop() -> None:
    """What `applyrelay web` asks uvicorn for ("auto") resolves to the C parser and uvloop (bench P1)."""
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    config = uvicorn.Config(lambda *_: None, loop="auto", http="auto")
    config.load()
    assert config.http_protocol_class is HttpToolsProtocol
    factory = config.get_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__ == "uvloop"
    finally:
        loop.close()


async def test_sigterm_lets_the_running_delivery_finish(make_relay: Any, factorial: Emulator) -> None:
    relay = make_relay({"acme": connection_table("factorial", factorial.url)}, job_timeout_s=8.0)
    factorial.faults(latency_ms=2000, path_regex="/ats/applications$", methods=["POST"])
    worker = relay.spawn_worker()
    delivery_id = (await relay.post(application(1))).json()["id"]
    await relay.wait_for(delivery_id, "delivering", until=lambda r: "candidate" in r["checkpoints"], timeout=20)
    await asyncio.sleep(0.3)  # the slow application POST is in flight
    worker.send_signal(signal.SIGTERM)
    later = (await relay.post(application(2))).json()["id"]  # arrives during the shutdown

    assert await asyncio.to_thread(worker.wait, 20) == 0
    record = await relay.delivery(delivery_id)
    assert record["status"] == "delivered", record
    assert not any(a["outcome"] == "crash" for a in record["attempts"])
    assert record["runs"] == 1
    assert (await relay.delivery(later))["status"] == "queued"  # a stopping worker takes no new job
    records = factorial.records()
    assert len(records["applications"]) == 1 and len(records["files"]) == 1
