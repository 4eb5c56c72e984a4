"""`applyrelay jobs list|show` as an operator runs it: a subprocess on REDIS_URL with the built-in
sandbox connections pointed at the emulator (app/cli/jobs.py)."""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from tests.support.catalog import ATSS, Ats
from tests.support.emulators import Emulator
from tests.support.harness import REPO

pytestmark = pytest.mark.slow


async def cli(redis_url: str, ats: Ats, served: Emulator, *args: str) -> tuple[int, str, str]:
    env = {
        **{k: v for k, v in os.environ.items() if k != "APPLYRELAY_CONFIG"},
        "REDIS_URL": redis_url,
        "PYTHONPATH": str(REPO),
        f"APPLYRELAY_SANDBOX_{ats.name.upper()}_URL": served.url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "jobs",
        *args,
        env=env,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_jobs_list_and_show_for_a_sandbox_connection(redis_url: str, ats: Ats, served: Emulator) -> None:
    connection = f"{ats.name}-sandbox"
    code, out, err = await cli(redis_url, ats, served, "list", connection, "--status", "OPEN", "--page-size", "5")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "STATUS", "VISIBILITY", "NAME", "LOCATION", "CHANGED", "(UTC)"]
    jobs = [row for row in rows if not row.startswith("--")]
    assert len(jobs) == 5 and all(row.split()[1] == "OPEN" for row in jobs)
    assert "-- 5 jobs, fetched" in out and "-- more: --cursor " in out
    cursor = out.split("-- more: --cursor ", 1)[1].split()[0]
    code, out, err = await cli(redis_url, ats, served, "list", connection, "--status", "OPEN", "--cursor", cursor)
    assert code == 0, err
    assert out.splitlines()[1:] and not {row.split()[0] for row in out.splitlines()[1:]} & {r.split()[0] for r in jobs}

    code, out, err = await cli(redis_url, ats, served, "show", connection, f"remote:{ats.job_id}")
    assert code == 0, err
    assert out.startswith(f"{ats.job_id}  ") and "Screening questions (" in out and "Stages (" in out
    questions = out.split("Screening questions (", 1)[1]
    assert int(questions.split(")", 1)[0]) > 0 and "REQUIRED" in questions
    code, again, err = await cli(redis_url, ats, served, "show", connection, ats.job_id)
    assert code == 0 and again.split("fetched", 1)[1].split("\n", 1)[1] == out.split("fetched", 1)[1].split("\n", 1)[1]
    # the second process read the first one's cache entry: the ATS was asked for the job once
    assert served.records()["calls"].get(ats.questions_path) == 1


async def test_jobs_json_and_refusals_naming_what_is_wrong(redis_url: str, laura: Emulator) -> None:
    ats, served = ATSS["laura"], laura  # the refusals are the catalog's, whatever the ATS
    code, out, err = await cli(redis_url, ats, served, "list", "laura-sandbox", "--page-size", "3", "--json")
    assert code == 0, err
    listing = json.loads(out)
    assert len(listing["data"]) == 3 and listing["next_cursor"] and "remote_data" not in listing["data"][0]
    code, _, err = await cli(redis_url, ats, served, "list", "nope")
    assert code != 0 and "PLATFORM.INTEGRATION_NOT_FOUND" in err
    code, _, err = await cli(redis_url, ats, served, "list", f"{ats.name}-sandbox", "--page-size", "300")
    assert code != 0 and "--page-size" in err
    code, _, err = await cli(redis_url, ats, served, "show", f"{ats.name}-sandbox", "999999")
    assert code != 0 and "ATS.JOB_NOT_FOUND" in err
