"""Processes for the benchmarks: Redis, the emulator, the relay's web and worker, baselines.

Each runs as its own OS process (optionally pinned to a core with taskset), talks over loopback,
and is stopped by the bench that started it. Peak RSS is read from /proc (VmHWM).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

from app.privacy import crypto
from app.redis.embedded import EmbeddedRedis, free_port

REPO = Path(__file__).resolve().parent.parent
TOKEN = "bench-admin-token"
PDF_HEAD = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n"


def pdf(size: int, salt: bytes = b"") -> bytes:
    body = PDF_HEAD + salt
    return body + b"0" * max(size - len(body) - 6, 0) + b"\n%%EOF"


def canonical(i: int = 0, cv_bytes: int = 100_000, *, cv: bytes | None = None) -> dict[str, Any]:
    """A ~2 KB canonical application (without the file) carrying one CV of `cv_bytes`."""
    body: dict[str, Any] = {
        "connection_id": "acme",
        "candidate": {
            "first_name": "Benedikt",
            "last_name": f"Marchetti-Oyelaran {i}",
            "email_address": f"bench-{i}@example.org",
            "phone_number": "+49 30 1234 5678",
            "company": "Example Logistics GmbH",
            "gender": "OTHER",
            "availability_date": "2026-12-01",
            "location": {"city": "Berlin", "country": "DE", "zip_code": "10115"},
        },
        "application": {"job_id": "2001"},
        "source": {"name": "LinkedIn"},
        "gdpr_consent": {"given": True, "expires_at": "2027-11-23"},
        "remote_fields": {"factorial": {"note": "Applied through the careers page; " * 28}},
    }
    if cv_bytes or cv is not None:
        data = cv if cv is not None else pdf(cv_bytes, str(i).encode())
        body["attachments"] = [
            {"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": base64.b64encode(data).decode()}
        ]
    return body


def pinned(cmd: list[str], core: int | None) -> list[str]:
    if core is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(core), *cmd]


def wait_port(port: int, timeout: float = 60.0, popen: subprocess.Popen[bytes] | None = None) -> None:
    """Until `port` listens (a web starts in ~3 s, 20+ on a loaded box); `popen`: fail at once if
    that process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if popen is not None and popen.poll() is not None:
            raise RuntimeError(f"the process for port {port} exited ({popen.returncode}) before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Proc:
    def __init__(
        self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path, core: int | None, cwd: Path = REPO
    ) -> None:
        self.name = name
        self.log = open(log_dir / f"{name}.log", "wb")
        self.popen = subprocess.Popen(pinned(cmd, core), env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def peak_rss_mb(self) -> float:
        """VmHWM of the process (the python one, under taskset's exec)."""
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the process has used so far."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.close()


class Stack:
    """Redis + emulator + (on demand) relay web and workers, all separate processes."""

    def __init__(
        self, *, connection: dict[str, Any] | None = None, job_timeout_s: float = 45.0, tree: Path = REPO
    ) -> None:
        """`tree`: the relay's code its processes run (another commit's, for before/after in one run:
        `python -m bench --relay`)."""
        self.tree = tree
        self.dir = Path(tempfile.mkdtemp(prefix="applyrelay-bench-"))
        self.redis = EmbeddedRedis(self.dir / "redis")
        self.redis.start()
        self.procs: list[Proc] = []
        self.emulator_port = free_port()
        self.emulator_url = f"http://127.0.0.1:{self.emulator_port}"
        table = {
            "connector": "factorial",
            "base_url": self.emulator_url,
            "credentials_env": "BENCH_FACTORIAL_KEY",
            "timeout_s": 20,
            **(connection or {}),
        }
        config = self.dir / "applyrelay.toml"
        lines = ["[connections.acme]"] + [f"{k} = {_toml(v)}" for k, v in table.items()]
        config.write_text("\n".join(lines) + "\n")
        self.env = {
            **os.environ,
            "REDIS_URL": self.redis.url,
            "APPLYRELAY_CONFIG": str(config),
            "APPLYRELAY_ADMIN_TOKEN": TOKEN,
            "BENCH_FACTORIAL_KEY": "sandbox",
            "PYTHONPATH": str(tree),
            "APPLYRELAY_JOB_TIMEOUT_S": str(job_timeout_s),  # logs at INFO, one line a step, as deployed
            crypto.KEY_ENV: crypto.new_key(),
        }  # candidate data is sealed at rest, as in production

    def start(
        self, name: str, cmd: list[str], core: int | None = None, port: int | None = None, tree: Path | None = None
    ) -> Proc:
        """`tree`: another tree's code than the stack's (the relay at several commits in one run)."""
        env = self.env if tree is None else {**self.env, "PYTHONPATH": str(tree)}
        proc = Proc(name, cmd, env, self.dir, core, tree or self.tree)
        self.procs.append(proc)
        if port:
            wait_port(port)
        return proc

    def emulator(self, core: int | None = None) -> Proc:
        return self.start(
            "emulator",
            [sys.executable, "-m", "app.cli", "sandbox", "factorial", "--port", str(self.emulator_port)],
            core,
            self.emulator_port,
        )

    def web(self, core: int | None = None, tree: Path | None = None) -> tuple[Proc, str]:
        port = free_port()
        cmd = [sys.executable, "-m", "app.cli", "web", "--port", str(port)]
        proc = self.start(f"web-{port}", cmd, core, port, tree)
        return proc, f"http://127.0.0.1:{port}"

    def worker(self, core: int | None = None, name: str = "worker") -> Proc:
        return self.start(name, [sys.executable, "-m", "app.cli", "worker"], core)

    def uvicorn(self, app: str, core: int | None = None) -> tuple[Proc, str]:
        port = free_port()
        proc = self.start(
            app.replace(":", "-"),
            [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--log-level", "warning", "--no-access-log"],
            core,
            port,
        )
        return proc, f"http://127.0.0.1:{port}"

    def redis_client(self) -> Any:
        import redis

        return redis.Redis.from_url(self.redis.url)

    def delivered(self) -> int:
        client = self.redis_client()
        try:
            return int(client.zcard("ar:ix:st:delivered"))
        finally:
            client.close()

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.redis.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value + '"'
    return msgspec.json.encode(value).decode().replace(":", " = ") if isinstance(value, dict) else repr(value)


def post_json(url: str, body: Any, key: str) -> httpx.Response:
    return httpx.post(
        url,
        content=msgspec.json.encode(body),
        timeout=60,
        headers={"authorization": f"Bearer {TOKEN}", "content-type": "application/json", "idempotency-key": key},
    )


def relay_tree(rev: str) -> Path:
    """The relay's code at git revision `rev` ("." = the working tree as it is), for the relay's
    processes only: the bench, its baselines and the intake it enqueues with stay this tree's."""
    if rev == ".":
        return REPO
    target = Path(tempfile.mkdtemp(prefix=f"applyrelay-bench-{rev.replace('/', '_')}-"))
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target
