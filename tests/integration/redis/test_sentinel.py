"""Redis via Sentinel: web and worker find the master through real Sentinel, and follow a failover."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from app.config import ConfigError
from app.redis.client import sentinels
from app.redis.embedded import EmbeddedRedis, free_port, redis_server_binary
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay

pytestmark = pytest.mark.slow
MASTER = "applyrelay"


class SentinelSet:
    """A master, one replica and one Sentinel (quorum 1), all real redis-server processes."""

    def __init__(self, root: Path) -> None:
        self.master = EmbeddedRedis(root / "master")
        self.password = self.master.password
        self.replica_port, self.sentinel_port = free_port(), free_port()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.root = root

    def start(self) -> SentinelSet:
        self.master.start()
        replica_dir = self.root / "replica"
        replica_dir.mkdir()
        self._spawn(
            [
                redis_server_binary(),
                "--port",
                str(self.replica_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(replica_dir),
                "--replicaof",
                "127.0.0.1",
                str(self.master.port),
                "--masterauth",
                self.password,
                "--requirepass",
                self.password,
                "--appendonly",
                "yes",
                "--save",
                "",
            ]
        )
        primary = redis.Redis(port=self.master.port, password=self.password, decode_responses=True)
        # Sentinel finds replicas in the master's INFO (then every 10 s): let it see one at once.
        self._until(lambda: primary.info("replication")["connected_slaves"] == 1, "the replica to connect")
        primary.close()
        conf = self.root / "sentinel.conf"
        conf.write_text(
            "\n".join(
                [
                    f"port {self.sentinel_port}",
                    "bind 127.0.0.1",
                    f"dir {self.root}",
                    f"sentinel monitor {MASTER} 127.0.0.1 {self.master.port} 1",
                    f"sentinel auth-pass {MASTER} {self.password}",
                    f"sentinel down-after-milliseconds {MASTER} 1000",
                    f"sentinel failover-timeout {MASTER} 5000",
                    "",
                ]
            )
        )
        self._spawn([redis_server_binary(), str(conf), "--sentinel"])
        self.sentinel = redis.Redis(port=self.sentinel_port, decode_responses=True, socket_connect_timeout=1)
        self._until(
            lambda: any(
                "s_down" not in r["flags"] and r["master-link-status"] == "ok"
                for r in self.sentinel.sentinel_slaves(MASTER)
            ),
            "the replica to be known",
        )
        return self

    def _spawn(self, args: list[str]) -> None:
        self.processes.append(subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def _until(self, check: Any, what: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def master_port(self) -> int:
        return int(self.sentinel.sentinel_get_master_addr_by_name(MASTER)[1])

    def failover(self) -> None:
        """Until the old master has become a replica of the new one: writes that reach the old
        master before that are lost with it (Sentinel's documented window, see docs/operations.md)."""
        old = self.master_port()
        self.sentinel.execute_command("SENTINEL", "FAILOVER", MASTER)
        self._until(lambda: self.master_port() != old, "the failover")
        demoted = redis.Redis(port=old, password=self.password, decode_responses=True)
        self._until(lambda: demoted.info("replication")["role"] == "slave", "the old master to follow")
        demoted.close()

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(timeout=10)
        self.sentinel.close()
        self.master.stop()


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[SentinelSet]:
    found = SentinelSet(tmp_path).start()
    yield found
    found.stop()


def test_sentinel_settings_are_checked() -> None:
    assert sentinels({}) is None
    assert sentinels({"REDIS_SENTINELS": "a:26379, b:26380", "REDIS_SENTINEL_MASTER": "m"}) == (
        [("a", 26379), ("b", 26380)],
        "m",
    )
    with pytest.raises(ConfigError, match="REDIS_SENTINELS"):
        sentinels({"REDIS_SENTINELS": "a"})


async def test_web_and_worker_follow_the_master_through_a_failover(
    sentinel_set: SentinelSet, factorial: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", f"127.0.0.1:{sentinel_set.sentinel_port}")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", MASTER)
    # The URL's host is never used with Sentinels: only its password and database.
    relay = Relay(
        f"redis://:{sentinel_set.password}@unused.invalid:6379/0",
        {"acme": connection_table("factorial", factorial.url)},
        tmp_path=tmp_path,
    )
    try:
        await relay.start_worker()

        async def deliver(n: int) -> None:
            body = {
                "connection_id": "acme",
                "application": {"job_id": "2001"},
                "candidate": {"first_name": "Sam", "last_name": f"T{n}", "email_address": f"sam{n}@example.org"},
            }
            for _ in range(50):  # a request that meets the switch gets a 503 and is sent again
                response = await relay.post(body)
                if response.status_code == 202:
                    break
                assert response.status_code == 503, response.text
                await asyncio.sleep(0.2)
            await relay.wait_for(response.json()["id"], "delivered", timeout=30)

        await deliver(1)
        first_master = sentinel_set.master_port()
        await asyncio.to_thread(sentinel_set.failover)
        assert sentinel_set.master_port() != first_master
        await deliver(2)
        new_master = redis.Redis(port=sentinel_set.master_port(), password=sentinel_set.password)
        assert new_master.zcard("ar:ix:st:delivered") == 2  # both on the master in charge now
        new_master.close()
        assert len(factorial.records()["applications"]) == 2
    finally:
        await relay.close()
