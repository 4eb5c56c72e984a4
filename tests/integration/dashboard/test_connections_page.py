"""The dashboard's connections page (issue 19, docs/dashboard.md "Connections page"): a file
connection and one made through the service against the Factorial emulator, the latter paused on
refused credentials with deliveries waiting. In Chromium: the banner, the row's reason and counts,
a new connect link that links.peek finds, Resume delivering what waited, axe-core. Over HTTP: a
read-only token sees no action and its forged POSTs are refused, CSRF, a file connection has no
link, no secret on the page or in the logs."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import structlog

from app.connections import links
from app.connections.service import NewConnection
from app.core.problems import Problem
from app.operator import connections_view
from app.runtime import Runtime
from tests.support.axe import axe_bundle, axe_violations
from tests.support.builders import connection_table
from tests.support.dashboard import add_token, audit_entries, login, post
from tests.support.emulators import Emulator, EmulatorFactory
from tests.support.harness import ADMIN_TOKEN, REPO, Relay

CHROMIUM = os.environ.get("APPLYRELAY_CHROMIUM", "/usr/bin/chromium")
EXECUTABLE = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
ARTIFACTS = REPO / "test-artifacts"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--disable-sync"]

KEY = "fct-live-Zq8v3N1pW7rT5yK2mB"  # the emulator's API key, for both connections: never on a page
REASON = "Factorial refused the refresh token (invalid_grant: revoked)"
VIEWER = "viewer-secret-0123456789abcdef"


@pytest.fixture
def ats(emulator: EmulatorFactory) -> Emulator:
    return emulator("factorial", api_key=KEY)


@pytest.fixture
def relay(make_relay: Any, ats: Emulator) -> Relay:
    return make_relay({"acme": connection_table("factorial", ats.url, _secret=KEY)})


async def add_api_connection(relay: Relay, ats: Emulator, connection_id: str = "globex") -> None:
    """Made through the service in another runtime (as the API would), then seen by the web's
    and every worker's registry."""
    maker = Runtime(relay.settings)
    try:
        new = NewConnection(id=connection_id, connector="factorial", base_url=ats.url, credentials={"api_key": KEY})
        await maker.connections.create(new, "admin")
    finally:
        await maker.close()
    deadline = time.monotonic() + 10
    runtimes = [relay.web_runtime, *relay.worker_runtimes]
    while not all(connection_id in r.config.connections for r in runtimes):
        assert time.monotonic() < deadline, "the registries did not load the new connection"
        await asyncio.sleep(0.1)


async def paused_with_deliveries(relay: Relay, connection_id: str, count: int) -> list[str]:
    """The connection paused as the engine pauses it (refused credentials), and `count`
    applications that the worker then parks as paused."""
    await relay.store.pause_connection(connection_id, REASON)
    ids = [await post(relay, 500 + n, connection_id) for n in range(count)]
    for delivery_id in ids:
        await relay.wait_for(delivery_id, "paused")
    return ids


@pytest.mark.slow
@pytest.mark.skipif(EXECUTABLE is None, reason="Debian's chromium is not installed (scripts/test installs it)")
async def test_an_operator_sees_a_paused_connection_makes_a_link_and_resumes_it(relay: Relay, ats: Emulator) -> None:
    from playwright.async_api import async_playwright, expect

    axe = axe_bundle()
    await relay.start_worker()
    await add_api_connection(relay, ats)
    paused = await paused_with_deliveries(relay, "globex", 3)
    ARTIFACTS.mkdir(exist_ok=True)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=EXECUTABLE, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 900})
            await page.goto(relay.server.url + "/dashboard/connections")
            await expect(page).to_have_url(re.compile(r"/dashboard/login"))
            await page.fill("#token", ADMIN_TOKEN)
            await page.click("button[type=submit]")
            await expect(page).to_have_url(re.compile(r"/dashboard/connections$"))

            # the main page's banner leads here
            await page.goto(relay.server.url + "/dashboard")
            banner = page.locator("#auth-lost")
            await expect(banner).to_contain_text("Connection globex lost its ATS authorisation: reconnect it")
            await expect(banner).to_contain_text(REASON)
            assert not (violations := await axe_violations(page, axe)), violations
            await page.screenshot(path=str(ARTIFACTS / "dashboard-auth-banner.png"), full_page=True)
            await page.click("#auth-lost a:text-is('reconnect it')")
            await expect(page).to_have_url(re.compile(r"/dashboard/connections#conn-globex$"))

            api_row, file_row = page.locator("#conn-globex"), page.locator("#conn-acme")
            await expect(api_row.locator("[data-field=origin]")).to_have_text("API")
            await expect(api_row.locator("[data-field=state]")).to_contain_text("paused")
            await expect(api_row.locator("[data-field=paused-reason]")).to_have_text(REASON)
            await expect(api_row.locator("[data-pending=total]")).to_have_text("3")
            await expect(api_row.locator("[data-pending=paused]")).to_have_text("3 paused")
            await expect(api_row.locator("[data-field=health]")).to_contain_text("failing")
            await expect(api_row.locator("[data-field=credential]")).to_contain_text("api key set")
            await expect(api_row.locator("[data-field=created]")).to_contain_text("by admin")
            await expect(file_row.locator("[data-field=origin]")).to_have_text("file")
            await expect(file_row.locator("[data-field=state]")).to_have_text("active")
            await expect(file_row.locator("[data-field=actions]")).to_contain_text("configured in the file")
            await expect(file_row.locator("[data-action]")).to_have_count(0)
            assert not (violations := await axe_violations(page, axe)), violations
            await page.screenshot(path=str(ARTIFACTS / "dashboard-connections.png"), full_page=True)

            # a new connect link, shown once, that the connect page will find
            await api_row.locator("[data-action=connect-link]").click()
            url = await page.locator("#connect-link-url").input_value()
            found = re.fullmatch(re.escape(relay.server.url) + r"/connect/([A-Za-z0-9_-]{40,})", url)
            assert found, url
            link = await links.peek(relay.redis, found.group(1))
            assert link is not None and link.connection_id == "globex" and link.connector == "factorial"
            assert link.reconnect and link.created_by == "admin" and link.base_url == ats.url
            assert not (violations := await axe_violations(page, axe)), violations
            await page.screenshot(path=str(ARTIFACTS / "dashboard-connect-link.png"), full_page=True)
            assert KEY not in await page.content()
            await page.goto(relay.server.url + "/dashboard/connections")
            await expect(page.locator("#connect-link")).to_have_count(0)  # shown once
            assert found.group(1) not in await page.content()

            # resume: the pause lifts, the waiting deliveries are delivered
            await api_row.locator("[data-action=resume]").click()
            await expect(page.locator("#done")).to_have_text("globex resumed: 3 paused deliveries queued again.")
            await expect(page.locator("#auth-lost")).to_have_count(0)
            await expect(api_row.locator("[data-field=state]")).to_have_text("active")
            await expect(api_row.locator("[data-action=resume]")).to_have_count(0)
            for delivery_id in paused:
                await relay.wait_for(delivery_id, "delivered")
            await page.reload()
            await expect(api_row.locator("[data-pending=total]")).to_have_text("0")
            await page.screenshot(path=str(ARTIFACTS / "dashboard-connections-resumed.png"), full_page=True)
        finally:
            await browser.close()

    assert await relay.store.paused_reason("globex") is None
    assert len(ats.records()["candidates"]) == 3
    entries = {e.action: e for e in await audit_entries(relay)}
    assert entries["resume_connection"].target == "globex" and entries["resume_connection"].actor == "admin"
    assert entries["resume_connection"].detail == {"resumed_deliveries": 3, "was_paused": True, "via": "dashboard"}
    assert entries["connect_link"].target == "globex" and entries["connect_link"].detail["via"] == "dashboard"
    assert found.group(1) not in repr(entries)


async def test_a_read_only_token_sees_the_page_without_actions_and_cannot_post(relay: Relay, ats: Emulator) -> None:
    await relay.start_worker()
    await add_api_connection(relay, ats)
    await paused_with_deliveries(relay, "globex", 1)
    add_token(relay, "viewer", "read", VIEWER)
    viewer, viewer_csrf = await login(relay, VIEWER)

    page = await relay.client.get("/dashboard/connections", headers=viewer)
    assert page.status_code == 200, page.text
    assert 'id="conn-globex"' in page.text and 'id="conn-acme"' in page.text
    assert REASON in page.text and "lost its ATS authorisation" in page.text
    assert "data-action" not in page.text and "/resume" not in page.text and "/connect-link" not in page.text
    assert KEY not in page.text and VIEWER not in page.text

    for action in ("resume", "connect-link"):  # a forged form, with the viewer's own valid CSRF token
        forged = await relay.client.post(
            f"/dashboard/connections/globex/{action}", data={"csrf": viewer_csrf}, headers=viewer
        )
        assert forged.status_code == 403 and "admin" in forged.text
    assert await relay.store.paused_reason("globex") == REASON
    assert await relay.redis.keys("ar:connect:*") == []
    assert [e for e in await audit_entries(relay) if e.action in ("resume_connection", "connect_link")] == []

    nobody = await relay.client.get("/dashboard/connections")
    assert nobody.status_code == 303 and nobody.headers["location"].startswith("/dashboard/login")
    anonymous = await relay.client.post("/dashboard/connections/globex/resume", data={"csrf": viewer_csrf})
    assert anonymous.status_code == 401


async def test_admin_actions_need_the_csrf_token_and_a_file_connection_gets_no_link(
    relay: Relay, ats: Emulator
) -> None:
    await add_api_connection(relay, ats)
    await relay.store.pause_connection("globex", REASON)
    admin, csrf = await login(relay, ADMIN_TOKEN)

    main = await relay.client.get("/dashboard", headers=admin)
    assert 'Connection <b class="mono">globex</b> lost its ATS authorisation' in main.text
    assert 'href="/dashboard/connections#conn-globex">reconnect it</a>' in main.text

    page = await relay.client.get("/dashboard/connections", headers=admin)
    row = page.text.split('id="conn-acme"', 1)[1].split("</tr>", 1)[0]
    assert "configured in the file" in row and "data-action" not in row
    assert 'action="/dashboard/connections/globex/resume"' in page.text
    assert 'action="/dashboard/connections/globex/connect-link"' in page.text

    for action in ("resume", "connect-link"):
        stale = await relay.client.post(
            f"/dashboard/connections/globex/{action}", data={"csrf": "not-the-token"}, headers=admin
        )
        assert stale.status_code == 403 and "security token" in stale.text
    assert await relay.store.paused_reason("globex") == REASON

    file_link = await relay.client.post("/dashboard/connections/acme/connect-link", data={"csrf": csrf}, headers=admin)
    assert file_link.status_code == 409 and "configured in the file" in file_link.text
    unknown = await relay.client.post("/dashboard/connections/nope/resume", data={"csrf": csrf}, headers=admin)
    assert unknown.status_code == 404
    assert [e for e in await audit_entries(relay) if e.action in ("resume_connection", "connect_link")] == []

    made = await relay.client.post("/dashboard/connections/globex/connect-link", data={"csrf": csrf}, headers=admin)
    assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
    url = re.search(r'id="connect-link-url"[^>]* value="([^"]+)"', made.text)
    assert url and (token := url.group(1).rsplit("/connect/", 1)[1])
    assert (await links.peek(relay.redis, token)) is not None
    assert KEY not in made.text

    resumed = await relay.client.post("/dashboard/connections/globex/resume", data={"csrf": csrf}, headers=admin)
    assert resumed.status_code == 303 and await relay.store.paused_reason("globex") is None
    after = await relay.client.get(resumed.headers["location"], headers=admin)
    assert "globex resumed: 0 paused deliveries queued again." in after.text and "lost its ATS" not in after.text


async def test_making_a_link_logs_and_audits_everything_but_the_token(relay: Relay, ats: Emulator) -> None:
    await add_api_connection(relay, ats)
    maker = Runtime(relay.settings)
    quiet = structlog.get_config()["wrapper_class"]  # the tests log warnings only: see the info too
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        await maker.start()
        with structlog.testing.capture_logs() as logs:
            token, link = await connections_view.reconnect_link(
                maker.connection_store, maker.config, "globex", "ops", "dashboard"
            )
    finally:
        structlog.configure(wrapper_class=quiet)
        await maker.close()
    assert link.reconnect and (await links.peek(relay.redis, token)) == link
    assert [e["event"] for e in logs] == ["connection.connect_link_created"]
    assert logs[0]["connection"] == "globex" and token not in repr(logs)
    [entry] = [e for e in await audit_entries(relay) if e.action == "connect_link"]
    assert entry.actor == "ops" and token not in repr(entry) and links.token_hash(token) not in repr(entry)
    raw = b"".join([await relay.redis.dump(k) or b"" for k in await relay.redis.keys("*")])
    assert token.encode() not in raw


async def test_a_connection_deleted_since_the_last_reload_has_no_row_and_no_link(relay: Relay, ats: Emulator) -> None:
    await add_api_connection(relay, ats)
    maker = Runtime(relay.settings)
    try:
        await maker.registry.refresh(force=True)  # loaded once, not watching: the reload has not come yet
        assert await maker.connection_store.delete("globex") and "globex" in maker.config.connections
        rows = await connections_view.connection_rows(
            maker.store, maker.connection_store, maker.config, threshold_s=3600
        )
        with pytest.raises(Problem) as refused:
            await connections_view.reconnect_link(maker.connection_store, maker.config, "globex", "ops", "dashboard")
    finally:
        await maker.close()
    assert [r.id for r in rows] == ["acme"] and rows[0].origin == "file"
    assert rows[0].credentials_env == "TEST_FACTORIAL_KEY" and rows[0].created_at is None
    assert refused.value.status == 404 and refused.value.code == "PLATFORM.NOT_FOUND"
    assert await relay.redis.keys("ar:connect:*") == []
