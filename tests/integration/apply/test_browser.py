"""The apply page in a real browser (Debian's Chromium driven by Playwright; never a browser
download), one page load per ATS with questions: fill every field by its type, reveal a
conditional question by its precondition and hide it again, attach a PDF, check accessibility with
axe-core, submit, see every answer in the ATS emulator; and the page with JavaScript off.
Screenshots land in test-artifacts/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.apply import CASES, PERSON, Case, held
from tests.support.emulators import Emulator
from tests.support.harness import REPO, Relay

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


async def fill(page: Any, name: str, value: str | list[str]) -> None:
    """One field by its type, as a person would: click radios and checkboxes, pick from a select."""
    controls = page.locator(f'[name="{name}"]')
    kind = await controls.first.evaluate("el => el.tagName === 'SELECT' ? 'select' : (el.type || 'text')")
    if kind == "radio":
        await page.locator(f'[name="{name}"][value="{value}"]').check()
    elif kind == "checkbox":
        for one in value if isinstance(value, list) else [value]:
            await page.locator(f'[name="{name}"][value="{one}"]').check()
    elif kind == "select":
        await controls.select_option(str(value))
    else:
        await controls.fill(str(value))


async def axe_violations(page: Any, source: str) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations of the page (WCAG 2 A/AA rules and best practices)."""
    await page.evaluate(source)
    result = await page.evaluate(
        "async () => { const r = await axe.run(document); return [r.violations, r.passes.length]; }"
    )
    violations, passed = result
    assert passed > 10  # axe ran its rules on the page (labels, contrast, ARIA...)
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]]}
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


async def test_a_candidate_applies_in_the_browser(
    case: Case, relay_for: Callable[..., Relay], served: Emulator, axe_source: str, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    relay = relay_for()
    await relay.start_worker()
    ARTIFACTS.mkdir(exist_ok=True)
    files = {name: tmp_path / filename for name, (filename, _, _) in case.files.items()}
    for name, (_, data, _) in case.files.items():
        files[name].write_bytes(data)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=EXECUTABLE, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 900, "height": 1200})
            blocked: list[str] = []
            page.on("console", lambda m: blocked.append(m.text) if "Content Security Policy" in m.text else None)
            await page.goto(f"{relay.server.url}/apply/acme/{case.job_id}")
            await expect(page.locator("h1")).to_be_visible()
            if case.reveal:
                parent, shows, hides, child = case.reveal
                wrap = page.locator(f'.q:has([name="{child}"])')
                await expect(wrap).to_be_hidden()  # the script hides it until its precondition holds
                await fill(page, parent, shows)
                await expect(wrap).to_be_visible()
                await fill(page, parent, hides)
                await expect(wrap).to_be_hidden()
            for name, value in PERSON.items():
                await fill(page, name, value)
            for name, value in case.answers.items():
                await fill(page, name, value)
            if "resume" in files:  # the browser refuses a type the CV field does not take, before upload
                wrong = tmp_path / "photo.png"
                wrong.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
                cv = page.locator('[name="resume"]')
                await cv.set_input_files(str(wrong))
                assert await cv.evaluate("el => el.validationMessage") == "This file type is not accepted."
            for name, path in files.items():
                await page.locator(f'[name="{name}"]').set_input_files(str(path))
            if "resume" in files:
                assert await page.locator('[name="resume"]').evaluate("el => el.validity.valid")
            await page.locator('[name="gdpr_consent"]').check()
            await page.screenshot(path=str(ARTIFACTS / f"apply-{case.name}.png"), full_page=True)
            assert await axe_violations(page, axe_source) == []
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Thank you")
            assert blocked == []  # nothing the page loads breaks its own CSP
        finally:
            await browser.close()
    [delivery_id] = [k.decode().rsplit(":", 1)[-1] for k in await relay.redis.keys("ar:d:*") if k.count(b":") == 2]
    await relay.wait_for(delivery_id, "delivered")
    assert held(case.name, served.records()) == case.in_ats


@pytest.mark.parametrize("case", [CASES["laura"]], ids=["laura"])
async def test_the_page_works_without_javascript_and_by_keyboard_alone(
    case: Case, relay_for: Callable[..., Relay], served: Emulator
) -> None:
    from playwright.async_api import async_playwright, expect

    relay = relay_for()
    await relay.start_worker()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=EXECUTABLE, args=ARGS)
        try:
            context = await browser.new_context(java_script_enabled=False)
            page = await context.new_page()
            await page.goto(f"{relay.server.url}/apply/acme/{case.job_id}?lang=fi")
            # every question shows, the conditional ones with their condition in words
            await expect(page.locator('[name="question_504"]')).to_be_visible()
            await expect(page.locator(".cond").first).to_contain_text("Vastaa vain, jos")
            # keyboard only: Tab through the fields in order (the honeypot is out of the tab order)
            keys = page.keyboard
            typed = {**PERSON, "email": "zoe@example"}  # the browser takes it; the relay wants a domain with a dot
            for name, value in typed.items():
                await keys.press("Tab")
                await expect(page.locator(f'[name="{name}"]')).to_be_focused()
                await keys.type(value)
            await keys.press("Tab")  # into the licence question's radios: the first, Yes
            await expect(page.locator('[name="question_501"][value="true"]')).to_be_focused()
            await keys.press("ArrowDown")  # No, checked as it is reached
            await expect(page.locator('[name="question_501"][value="false"]')).to_be_checked()
            await keys.press("Tab")  # the location (left empty: it does not apply)
            await keys.press("Tab")
            await expect(page.locator('[name="question_504"]')).to_be_focused()
            await keys.type("not asked: no licence")  # answered anyway; the server drops it
            await keys.press("Tab")
            await keys.type("4")
            await keys.press("Tab")
            await expect(page.locator('[name="gdpr_consent"]')).to_be_focused()
            await keys.press("Space")
            await keys.press("Tab")
            await keys.press("Enter")
            # the server's refusal: the form again, the error beside the email, the values kept
            email = page.locator('[name="email"]')
            await expect(email).to_have_attribute("aria-invalid", "true")
            await expect(page.locator("#err-f-email")).to_be_visible()
            await expect(page.locator('[name="first_name"]')).to_have_value(PERSON["first_name"])
            await expect(page.locator('[name="question_501"][value="false"]')).to_be_checked()
            await email.fill(PERSON["email"])
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Kiitos")
        finally:
            await browser.close()
    [delivery_id] = [k.decode().rsplit(":", 1)[-1] for k in await relay.redis.keys("ar:d:*") if k.count(b":") == 2]
    await relay.wait_for(delivery_id, "delivered")
    assert held("laura", served.records()) == {"501": False, "505": 4}
