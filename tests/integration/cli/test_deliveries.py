"""`applyrelay deliveries list|show|retry|purge` as an operator runs it: a subprocess on REDIS_URL."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import pytest

from tests.support.builders import connection_table
from tests.support.dashboard import CANDIDATE_FIRST, audit_entries, make_failed, post
from tests.support.emulators import Emulator
from tests.support.harness import DATA_KEY, REPO, Relay

pytestmark = pytest.mark.slow


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay(
        {"acme": connection_table("factorial", factorial.url), "beta": connection_table("factorial", factorial.url)}
    )


async def cli(relay: Relay, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "REDIS_URL": relay.redis_url, "PYTHONPATH": str(REPO), "APPLYRELAY_DATA_KEY": DATA_KEY}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "deliveries",
        *args,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_list_show_retry_purge_from_a_terminal(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    first, second, third = await make_failed(relay, factorial, 3)
    other = await post(relay, 40, "beta")
    await relay.wait_for(other, "delivered")

    code, out, _ = await cli(relay, "list", "--status", "failed", "--json")
    assert code == 0 and [r["id"] for r in json.loads(out)["data"]] == [third, second, first]
    code, out, _ = await cli(relay, "list", "--connection", "beta")
    assert code == 0 and other in out and first not in out and CANDIDATE_FIRST not in out
    code, _, err = await cli(relay, "list", "--status", "lost")
    assert code != 0 and "--status" in err

    code, out, _ = await cli(relay, "show", first)
    assert code == 0 and "dead_lettered" in out and "422" in out and CANDIDATE_FIRST not in out
    code, out, _ = await cli(relay, "show", first, "--json")
    assert json.loads(out)["timeline"][0]["event"] == "accepted"
    assert (await cli(relay, "show", "dlv_nope"))[0] == 1

    code, out, _ = await cli(relay, "retry", first)
    assert code == 0 and "queued" in out
    await relay.wait_for(first, "delivered")
    code, out, _ = await cli(relay, "retry", first)
    assert code == 0 and "unchanged" in out

    assert (await cli(relay, "purge", second))[0] == 2  # without --yes nothing happens
    assert await relay.redis.exists(f"ar:p:{second}")
    code, out, _ = await cli(relay, "purge", second, "--yes")
    assert code == 0 and not await relay.redis.exists(f"ar:p:{second}")
    code, _, err = await cli(relay, "purge", other, "--yes")
    assert code != 0 and "failed deliveries" in err

    code, out, _ = await cli(relay, "retry", "--all", "--status", "failed")
    assert code == 0 and "2/2 · 1 retried, 0 unchanged, 1 refused" in out  # the purged one is refused
    await relay.wait_for(third, "delivered")
    actions = [(e.action, e.actor.startswith("cli")) for e in await audit_entries(relay)]
    assert ("purge", True) in actions and ("bulk_retry", True) in actions and ("retry", True) in actions


async def test_a_non_finite_time_filter_names_the_option(relay: Relay) -> None:
    """`--received-from nan` was read as a float and failed in Redis with a traceback."""
    await post(relay, 1)
    for args in (("list", "--received-from", "nan"), ("retry", "--all", "--received-to", "inf")):
        code, _, err = await cli(relay, *args)
        assert code != 0 and err.startswith(f"applyrelay: {args[-2]}: expected finite epoch seconds"), err
        assert "Traceback" not in err
    assert await relay.redis.keys("ar:bulk:*") == []
