"""Connect with Factorial in a real browser (Debian's Chromium driven by Playwright): the connect
link's OAuth start, Factorial's (the emulator's) consent page, "Authorize", the relay's callback
and its success page; the connection is made. The connect page's own "Connect with Factorial"
button is the connect page's test (app/web/connect/pages.py)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from app.connections import links
from app.connections.links import ConnectLink
from app.connections.oauth import CALLBACK_PATH
from tests.support.emulators import EmulatorFactory
from tests.support.factorial_oauth import oauth_env, register_app

CHROMIUM = os.environ.get("APPLYRELAY_CHROMIUM", "/usr/bin/chromium")
EXECUTABLE = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(EXECUTABLE is None, reason="Debian's chromium is not installed (scripts/test installs it)"),
]


async def test_an_employer_authorizes_the_relay_in_the_browser(
    emulator: EmulatorFactory, make_relay: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playwright.async_api import async_playwright, expect

    factorial = emulator("factorial")
    oauth_env(monkeypatch)
    relay = make_relay({})
    register_app(factorial, relay.server.url + CALLBACK_PATH)
    now = time.time()
    token = await links.create(
        relay.redis,
        ConnectLink(
            connection_id="acme-browser",
            connector="factorial",
            created_at=now,
            expires_at=now + 600,
            created_by="admin",
            base_url=factorial.url,
        ),
    )
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=EXECUTABLE, args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{relay.server.url}/connect/{token}/oauth/factorial")
            assert page.url.startswith(f"{factorial.url}/oauth/authorize?")  # sent to Factorial
            await expect(page.get_by_role("heading")).to_have_text("Authorize application")
            await page.get_by_role("button", name="Authorize").click()
            await expect(page.get_by_role("heading")).to_have_text("Factorial is connected")
            assert page.url.startswith(relay.server.url + CALLBACK_PATH)
            text = await page.content()
        finally:
            await browser.close()
    assert "acme-browser" in relay.web_runtime.registry
    assert relay.web_runtime.registry["acme-browser"].oauth_tokens
    assert await relay.redis.exists("ar:oauth:acme-browser") == 1
    assert "access_token" not in text and "refresh_token" not in text  # nothing echoed
