"""Test harness: a relay (web over real HTTP + in-process or subprocess workers) wired to emulators.

Everything is real: the Redis is a redis-server started for the session (or the one REDIS_URL
names), the relay's web app and the emulators are served by uvicorn on loopback ports, and
workers are arq workers (in this process, or as `python -m app.cli worker` to be killed).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from app.blobs.store import BlobSettings, open_store
from app.config import parse_config
from app.delivery import queue
from app.delivery.store import DeliveryStore
from app.privacy.crypto import AesGcmSealer, parse_keys
from app.redis.keys import WAKE_KEY
from app.runtime import Runtime
from app.settings import Settings
from app.tokens import SCOPES, ApiToken
from app.web.app import create_app
from app.worker import WakeableWorker, create_worker
from connectors.sandbox.common import BackgroundServer

REPO = Path(__file__).resolve().parents[2]
ADMIN_TOKEN = "test-admin-token"
DATA_KEY = "dGVzdC1kYXRhLWtleS0wMDAwMDAwMDAwMDAwMDAwMDA"  # base64url of 32 bytes: tests only


def secrets_env(connections: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """The environment holding each connection's secret (`_secret` in its table, else "sandbox")."""
    return {t["credentials_env"]: t.get("_secret", "sandbox") for t in connections.values()}


class Relay:
    """One relay under test: its web app over HTTP, workers on demand, helpers to wait and look."""

    def __init__(
        self,
        redis_url: str,
        connections: Mapping[str, Mapping[str, Any]],
        *,
        job_timeout_s: float = 8.0,
        tmp_path: Path | None = None,
        extra_tokens: Sequence[ApiToken] = (),
        **settings: Any,
    ) -> None:
        self.redis_url = redis_url
        self.connections = {k: {kk: vv for kk, vv in v.items() if kk != "_secret"} for k, v in connections.items()}
        self.env = secrets_env(connections)
        config = parse_config({"connections": self.connections}, self.env, source="<test>")
        tokens = [ApiToken("admin", ADMIN_TOKEN, SCOPES), *extra_tokens]
        settings.setdefault("data_keys", parse_keys(DATA_KEY))
        if tmp_path is not None:  # each test its own blob directory (else a temporary one)
            settings.setdefault("blobs", BlobSettings(url=f"file://{tmp_path / 'blobs'}"))
        else:
            import tempfile

            settings.setdefault("blobs", BlobSettings(url=f"file://{tempfile.mkdtemp(prefix='blobs-')}"))
        self.settings = Settings(
            redis_url=redis_url, config=config, tokens=tokens, job_timeout_s=job_timeout_s, **settings
        )
        self.web_runtime = Runtime(self.settings)
        self.server = BackgroundServer(create_app(self.web_runtime)).start()
        self.client = httpx.AsyncClient(base_url=self.server.url, timeout=30)
        self.admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
        self.redis = Redis.from_url(redis_url)
        self.tmp_path = tmp_path
        self._workers: list[tuple[WakeableWorker, asyncio.Task[Any], Runtime]] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        # the store on the test's loop (the web runtime's client is on the server's), sealing like it
        self.blobs = open_store(self.settings.blobs)
        self.store = DeliveryStore(self.redis, sealer=AesGcmSealer(self.settings.data_keys), blobs=self.blobs)

    # -- intake ---------------------------------------------------------------------------------

    async def post(
        self,
        payload: Any,
        *,
        key: str | None = None,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        hdrs = {**self.admin, **(headers or {})}
        if key:
            hdrs["idempotency-key"] = key
        if raw is not None:
            return await self.client.post(
                "/v1/applications", content=raw, headers={**hdrs, "content-type": "application/json"}
            )
        return await self.client.post("/v1/applications", json=payload, headers=hdrs)

    async def blobs_held(self) -> list[str]:
        """The name of every blob in the relay's store (its staging directory left out)."""
        if self.blobs.root is not None:
            root = self.blobs.root
            return sorted(
                str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.parts[len(root.parts)] != ".tmp"
            )
        return sorted([e.path async for e in await self.blobs.op.list("/", recursive=True) if e.path[-1:] != "/"])

    async def delivery(self, delivery_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/deliveries/{delivery_id}", headers=self.admin)
        response.raise_for_status()
        return response.json()

    async def wait_for(
        self,
        delivery_id: str,
        *statuses: str,
        timeout: float = 30.0,
        until: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Poll the delivery until its status is one of `statuses` (and `until` holds)."""
        deadline = time.monotonic() + timeout
        while True:
            record = await self.delivery(delivery_id)
            if record["status"] in statuses and (until is None or until(record)):
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"delivery stayed {record['status']}, wanted {statuses}: {record}")
            await asyncio.sleep(0.05)

    # -- queue ----------------------------------------------------------------------------------

    async def queued_jobs(self) -> int:
        return int(await self.redis.zcard(queue.QUEUE_NAME))

    async def fast_forward(self, seconds: float) -> None:
        """Move every queued job `seconds` earlier: the queue's clock jumps, no test sleeps."""
        jobs = await self.redis.zrange(queue.QUEUE_NAME, 0, -1, withscores=True)
        if jobs:
            await self.redis.zadd(queue.QUEUE_NAME, {j: s - seconds * 1000 for j, s in jobs})
            await self.redis.lpush(WAKE_KEY, b"1")

    async def run_due_jobs(self) -> None:
        """Make everything due now (the retry schedule, compressed)."""
        await self.fast_forward(10 * 24 * 3600)

    # -- workers --------------------------------------------------------------------------------

    async def start_worker(self) -> WakeableWorker:
        runtime = Runtime(self.settings)
        worker = create_worker(self.settings, runtime=runtime)
        worker.handle_signals = False
        task = asyncio.create_task(worker.async_run())
        self._workers.append((worker, task, runtime))
        return worker

    @property
    def worker_runtimes(self) -> list[Runtime]:
        """The runtimes of the in-process workers (their connectors, clients)."""
        return [runtime for _, _, runtime in self._workers]

    def spawn_worker(self) -> subprocess.Popen[bytes]:
        """A worker in its own process (to be killed with SIGKILL)."""
        return self._spawn(["worker"], f"worker-{len(self._processes)}")

    def spawn_web(self, port: int) -> subprocess.Popen[bytes]:
        """A web process of this relay on 127.0.0.1:`port` (to be killed with SIGKILL)."""
        return self._spawn(["web", "--port", str(port)], f"web-{len(self._processes)}")

    def _spawn(self, command: list[str], log_name: str) -> subprocess.Popen[bytes]:
        if self.tmp_path is None:
            raise RuntimeError("spawning a relay process needs tmp_path")
        config = self.tmp_path / "applyrelay.toml"
        config.write_text(config_toml(self.connections))
        env = {
            **os.environ,
            **self.env,
            "REDIS_URL": self.redis_url,
            "APPLYRELAY_CONFIG": str(config),
            "APPLYRELAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "PYTHONPATH": str(REPO),
            "APPLYRELAY_DATA_KEY": DATA_KEY,
            "APPLYRELAY_JOB_TIMEOUT_S": str(self.settings.job_timeout_s),
            **blob_env(self.settings.blobs),
        }
        with open(self.tmp_path / f"{log_name}.log", "wb") as log:  # the child keeps its copy
            process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", *command], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        self._processes.append(process)
        return process

    @staticmethod
    def kill(process: subprocess.Popen[bytes]) -> None:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    async def close(self) -> None:
        for worker, task, runtime in self._workers:
            await worker.close()
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
            await runtime.close()
        for process in self._processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        await self.client.aclose()
        await self.redis.aclose()
        self.server.stop()


def blob_env(blobs: BlobSettings) -> dict[str, str]:
    """The environment naming this blob store (for a relay started as a process)."""
    env = {"APPLYRELAY_BLOBS": blobs.url}
    for name, value in (
        ("APPLYRELAY_S3_ENDPOINT", blobs.endpoint),
        ("AWS_REGION", blobs.region),
        ("AWS_ACCESS_KEY_ID", blobs.access_key_id),
        ("AWS_SECRET_ACCESS_KEY", blobs.secret_access_key),
    ):
        if value:
            env[name] = value
    return env


def config_toml(connections: Mapping[str, Mapping[str, Any]]) -> str:
    """The connections as the TOML of an applyrelay.toml (for a relay started as a process)."""
    lines = []
    for cid, table in connections.items():
        lines.append(f"[connections.{cid}]")
        for key, value in table.items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))
