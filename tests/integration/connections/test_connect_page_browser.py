"""The connect page in a real browser (Debian's Chromium driven by Playwright; never a browser
download), end to end for an API-key connector against the Flatchr emulator: the operator makes
a link, the employer opens it, reads the guide, types a wrong key (Flatchr's reason is shown, the
key is nowhere in the page), then the right one; the connection exists and an application is
delivered through it; the link then answers 410. axe-core checks the page. Screenshots land in
test-artifacts/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.axe import axe_bundle, axe_violations
from tests.support.connect import flatchr_application, flatchr_link, seen_by_workers
from tests.support.emulators import Emulator
from tests.support.harness import REPO, Relay

CHROMIUM = os.environ.get("APPLYRELAY_CHROMIUM", "/usr/bin/chromium")
EXECUTABLE = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
ARTIFACTS = REPO / "test-artifacts"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-sync"]
WRONG = "not-the-key-7f3a9c"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(EXECUTABLE is None, reason="Debian's chromium is not installed (scripts/test installs it)"),
]


@pytest.fixture(scope="session")
def axe_source() -> str:
    return axe_bundle()


async def test_an_employer_connects_flatchr_in_the_browser(
    make_relay: Callable[..., Relay], flatchr: Emulator, axe_source: str
) -> None:
    from playwright.async_api import async_playwright, expect

    relay = make_relay({})
    await relay.start_worker()
    path = await flatchr_link(relay, flatchr.url)
    url = f"{relay.server.url}{path}"
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=EXECUTABLE, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 900, "height": 1400})
            blocked: list[str] = []
            page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
            await page.goto(url)
            await expect(page.locator("h1")).to_have_text("Connect Flatchr")
            guide = page.locator("section.guide").first
            await expect(guide).to_contain_text("Settings > Advanced > API")
            await expect(page.locator("section.guide").nth(1)).to_contain_text("The key expires after 365 days")
            key = page.get_by_label("API key")
            assert await key.get_attribute("type") == "password"
            assert await key.get_attribute("autocomplete") == "off"
            assert await axe_violations(page, axe_source) == []
            await page.screenshot(path=str(ARTIFACTS / "connect-flatchr.png"), full_page=True)

            await key.fill(WRONG)
            await page.click("button[type=submit]")
            error = page.locator("#err-api_key")
            await expect(error).to_contain_text("the ATS refused them")
            await expect(error).to_contain_text("Invalid token")
            await expect(page.get_by_label("API key")).to_have_value("")  # the input comes back empty
            await expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
            assert WRONG not in await page.content()
            assert await axe_violations(page, axe_source) == []  # the page with its errors, too
            await page.screenshot(path=str(ARTIFACTS / "connect-flatchr-refused.png"), full_page=True)

            await page.get_by_label("API key").fill("sandbox")
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Flatchr is connected")
            assert "sandbox" not in await page.content()

            again = await page.goto(url)
            assert again is not None and again.status == 410
            await expect(page.locator("h1")).to_have_text("This link cannot be used")
            assert blocked == []  # nothing the page loads breaks its own CSP
        finally:
            await browser.close()
    assert await relay.redis.exists("ar:conn:r:acme-flatchr") == 1
    await seen_by_workers(relay, "acme-flatchr")
    response = await relay.post(flatchr_application("acme-flatchr"))
    assert response.status_code == 202, response.text
    delivered = await relay.wait_for(response.json()["id"], "delivered")
    [applicant] = flatchr.records()["applicants"]
    assert delivered["checkpoints"]["candidate"] == applicant["id"]
