"""The connections' watch task (app/connections/registry.py) ends when it is cancelled, even when
the cancel lands in a call that swallows it, as a Redis client's can: else the web's and the
worker's shutdown wait on it for ever (a CI run hung so, in a test's teardown)."""

from __future__ import annotations

import asyncio

import pytest

from app.config import Limits
from app.connections.registry import ConnectionRegistry


async def test_a_cancel_swallowed_inside_a_poll_still_ends_the_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = ConnectionRegistry({}, Limits())
    polling = asyncio.Event()

    async def refresh_that_swallows_a_cancel(*, force: bool = False) -> bool:
        polling.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # what a library mid-command may do
            return False
        return False

    monkeypatch.setattr(registry, "refresh", refresh_that_swallows_a_cancel)
    watch = asyncio.create_task(registry.watch(interval_s=0.01))
    await polling.wait()
    watch.cancel()
    done, _ = await asyncio.wait({watch}, timeout=2)
    assert done == {watch} and watch.cancelled()
