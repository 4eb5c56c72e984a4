"""The dashboard in a real browser (Debian's Chromium driven by Playwright; never a browser
download): log in, filter failed deliveries, open one, retry it and see it become delivered, run
a bulk retry and watch its progress bar finish. Screenshots land in test-artifacts/."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.builders import connection_table
from tests.support.dashboard import CANDIDATE_FIRST, make_failed, post
from tests.support.emulators import Emulator
from tests.support.harness import ADMIN_TOKEN, REPO, Relay

CHROMIUM = os.environ.get("APPLYRELAY_CHROMIUM", "/usr/bin/chromium")
EXECUTABLE = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
ARTIFACTS = REPO / "test-artifacts"
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(EXECUTABLE is None, reason="Debian's chromium is not installed (scripts/test installs it)"),
]


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay(
        {"acme": connection_table("factorial", factorial.url), "beta": connection_table("factorial", factorial.url)}
    )


async def test_operator_fixes_failed_deliveries_in_the_browser(relay: Relay, factorial: Emulator) -> None:
    from playwright.async_api import async_playwright, expect

    await relay.start_worker()
    failed = await make_failed(relay, factorial, 4)
    for n in range(3):
        await relay.wait_for(await post(relay, 100 + n, "beta"), "delivered")
    ARTIFACTS.mkdir(exist_ok=True)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=EXECUTABLE, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("dialog", lambda dialog: dialog.accept())
            await page.goto(relay.server.url + "/dashboard")
            await expect(page).to_have_url(re.compile(r"/dashboard/login"))

            # log in
            await page.fill("#token", ADMIN_TOKEN)
            await page.click("button[type=submit]")
            await expect(page.locator("table.deliveries")).to_be_visible()
            await expect(page.locator("[data-count=failed]")).to_have_text("4")
            await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            assert CANDIDATE_FIRST not in await page.content()  # no PII on the list

            # filter failed deliveries
            await page.select_option("select[name=status]", "failed")
            await page.click("#filters button[type=submit]")
            rows = page.locator("table.deliveries tbody tr")
            await expect(rows).to_have_count(4)
            for delivery_id in failed:
                await expect(page.locator(f"a:text-is('{delivery_id}')")).to_be_visible()
            await page.screenshot(path=str(ARTIFACTS / "dashboard-failed.png"), full_page=True)

            # open one, retry it, see it become delivered (the page follows the status)
            target = failed[0]
            await page.click(f"a:text-is('{target}')")
            await expect(page.locator("#status")).to_have_text("failed")
            await expect(page.locator("#candidate")).to_contain_text(CANDIDATE_FIRST)
            await page.screenshot(path=str(ARTIFACTS / "detail-failed.png"), full_page=True)
            await page.click("#retry")
            await expect(page.locator("#status")).to_have_text("delivered", timeout=15_000)
            await page.screenshot(path=str(ARTIFACTS / "detail-delivered.png"), full_page=True)

            # bulk retry the other three; the progress bar fills up
            await page.goto(relay.server.url + "/dashboard?status=failed")
            await expect(rows).to_have_count(3)
            await page.click("#bulk-retry")
            bar = page.locator("#bulk-progress")
            await expect(bar).to_be_visible()
            await expect(page.locator("#bulk")).to_have_attribute("data-status", "done", timeout=15_000)
            assert await bar.evaluate("el => el.value === el.max") is True
            await expect(page.locator("#bulk-text")).to_contain_text("3 retried")
            await page.screenshot(path=str(ARTIFACTS / "dashboard-bulk.png"), full_page=True)
            for delivery_id in failed[1:]:
                await relay.wait_for(delivery_id, "delivered")
            await page.goto(relay.server.url + "/dashboard")
            await expect(page.locator("[data-count=failed]")).to_have_text("0")
            await expect(page.locator("[data-count=delivered]")).to_have_text("7")
            await page.screenshot(path=str(ARTIFACTS / "dashboard-after.png"), full_page=True)
        finally:
            await browser.close()
