"""The README's run command, as a newcomer uses it: `applyrelay run` (embedded Redis, demo config)
and `applyrelay sandbox factorial` as separate processes, then the README's curl, in Python."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.redis.embedded import free_port
from tests.support.builders import PDF_BYTES, b64
from tests.support.harness import REPO

pytestmark = pytest.mark.slow


def _wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


def _in(proc: Path, directory: Path) -> bool:
    """Whether the process runs in `directory` (the service's processes all do)."""
    try:
        return Path(os.readlink(proc / "cwd")) == directory
    except OSError:
        return False


def _kill_worker_children(parent_pid: int) -> None:
    """SIGKILL the `applyrelay worker` child of `applyrelay run`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent_pid and b"worker" in cmdline:
            os.kill(int(entry.name), signal.SIGKILL)
            return
    raise AssertionError("no worker child found")


def test_run_and_sandbox_relay_an_application(tmp_path: Path) -> None:
    web_port, sandbox_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPLYRELAY_", "REDIS_URL"))}
    env.update({"PYTHONPATH": str(REPO), "APPLYRELAY_SANDBOX_FACTORIAL_URL": f"http://127.0.0.1:{sandbox_port}"})
    cli = [sys.executable, "-m", "app.cli"]
    sandbox = subprocess.Popen(
        [*cli, "sandbox", "factorial", "--port", str(sandbox_port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        [*cli, "run", "--port", str(web_port)], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _wait_http(f"http://127.0.0.1:{web_port}/health")
        _wait_http(f"http://127.0.0.1:{sandbox_port}/_sandbox/records")
        token = (tmp_path / "var" / "admin-token").read_text().strip()
        headers = {"authorization": f"Bearer {token}"}
        body = {
            "connection_id": "factorial-sandbox",
            "candidate": {"first_name": "Ana", "last_name": "García", "email_address": "ana@example.org"},
            "application": {"job_id": "2001"},
            "screening_question_answers": [
                {"question_id": "3003", "answer": "Yes"},
                {"question_id": "3001", "answer": "-"},
            ],
            "attachments": [
                {"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(PDF_BYTES)}
            ],
            "source": {"name": "LinkedIn"},
        }
        response = httpx.post(f"http://127.0.0.1:{web_port}/v1/applications", json=body, headers=headers)
        assert response.status_code == 202, response.text
        location = response.headers["location"]
        deadline = time.monotonic() + 30
        while True:
            status = httpx.get(f"http://127.0.0.1:{web_port}{location}", headers=headers).json()["status"]
            if status == "delivered" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == "delivered"
        _kill_worker_children(run.pid)  # `applyrelay run` restarts its worker
        response = httpx.post(
            f"http://127.0.0.1:{web_port}/v1/applications",
            headers=headers,
            json={**body, "candidate": {**body["candidate"], "email_address": "bo@example.org"}},
        )
        second = response.headers["location"]
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            if httpx.get(f"http://127.0.0.1:{web_port}{second}", headers=headers).json()["status"] == "delivered":
                break
            time.sleep(0.3)
        else:
            raise AssertionError("the restarted worker did not deliver")
        records = httpx.get(f"http://127.0.0.1:{sandbox_port}/_sandbox/records").json()
        assert sorted(c["email"] for c in records["candidates"]) == ["ana@example.org", "bo@example.org"]
        assert len(records["files"]) == 2
        redis_dir = tmp_path / "var" / "redis"
        assert (redis_dir / "appendonlydir").exists() or list(redis_dir.glob("*.aof"))  # AOF is on
    finally:
        run.terminate()
        sandbox.terminate()
        run.wait(timeout=60)
        sandbox.wait(timeout=10)
        log.close()
    # SIGTERM stops the whole service: no worker or Redis outlives `applyrelay run`
    assert "embedded Redis" in (tmp_path / "run.log").read_text()
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _in(p, tmp_path)]
    assert leftovers == [], [(p / "cmdline").read_bytes() for p in leftovers]
    # development mode made its own data key and said so
    assert (tmp_path / "var" / "data-key").exists()
    assert "development data key in var/data-key" in (tmp_path / "run.log").read_text()
