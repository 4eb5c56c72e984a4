"""The dashboard over plain HTTP: login (CSRF, cookie flags), pages without PII on lists, the
name on the detail view only for `pii`, CSRF on every form, scopes, and the actions."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.support.builders import connection_table
from tests.support.dashboard import (
    CANDIDATE_FIRST,
    CANDIDATE_LAST,
    add_token,
    audit_entries,
    make_failed,
    post,
)
from tests.support.emulators import Emulator
from tests.support.harness import ADMIN_TOKEN, Relay


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator) -> Relay:
    return make_relay({"acme": connection_table("factorial", factorial.url)})


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    """name → the raw Set-Cookie line (httpx's jar would not send Secure cookies over http)."""
    return {line.split("=", 1)[0]: line for line in response.headers.get_list("set-cookie")}


def _value(set_cookie: str) -> str:
    return set_cookie.split("=", 1)[1].split(";", 1)[0]


async def login(relay: Relay, token: str = ADMIN_TOKEN) -> tuple[dict[str, str], str]:
    """Log in as a browser would; returns (cookie header, the session's CSRF token)."""
    page = await relay.client.get("/dashboard/login")
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    pre = _value(_set_cookies(page)["applyrelay_login_csrf"])
    response = await relay.client.post(
        "/dashboard/login",
        data={"token": token, "login_csrf": login_csrf, "next": "/dashboard"},
        headers={"cookie": f"applyrelay_login_csrf={pre}"},
    )
    assert response.status_code == 303, response.text
    cookie = _set_cookies(response)["applyrelay_session"]
    headers = {"cookie": f"applyrelay_session={_value(cookie)}"}
    board = await relay.client.get("/dashboard", headers=headers)
    csrf = re.search(r'name="csrf" value="([^"]+)"', board.text).group(1)  # type: ignore[union-attr]
    return headers, csrf


async def test_login_sets_a_secure_httponly_strict_cookie(relay: Relay) -> None:
    page = await relay.client.get("/dashboard/login")
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers
    response = await relay.client.get("/dashboard")
    assert response.status_code == 303 and response.headers["location"].startswith("/dashboard/login")
    pre = _value(_set_cookies(page)["applyrelay_login_csrf"])
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    done = await relay.client.post(
        "/dashboard/login",
        data={"token": ADMIN_TOKEN, "login_csrf": login_csrf},
        headers={"cookie": f"applyrelay_login_csrf={pre}"},
    )
    cookie = _set_cookies(done)["applyrelay_session"].lower()
    assert "secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie and "path=/dashboard" in cookie
    assert ADMIN_TOKEN not in cookie
    # the session store keeps a hash of the id and the token's name, never the token
    [key] = await relay.redis.keys("ar:sess:*")
    assert _value(cookie) not in key.decode()
    assert ADMIN_TOKEN.encode() not in b"".join((await relay.redis.hgetall(key)).values())


async def test_login_refuses_a_wrong_token_and_a_missing_csrf(relay: Relay) -> None:
    page = await relay.client.get("/dashboard/login")
    pre = _value(_set_cookies(page)["applyrelay_login_csrf"])
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    wrong = await relay.client.post(
        "/dashboard/login",
        data={"token": "nope", "login_csrf": login_csrf},
        headers={"cookie": f"applyrelay_login_csrf={pre}"},
    )
    assert wrong.status_code == 401 and "applyrelay_session" not in _set_cookies(wrong)
    no_csrf = await relay.client.post("/dashboard/login", data={"token": ADMIN_TOKEN})
    assert no_csrf.status_code == 403 and "applyrelay_session" not in _set_cookies(no_csrf)
    add_token(relay, "metrics-only", "pii", "pii-only-secret-0123456789")
    no_read = await relay.client.post(
        "/dashboard/login",
        data={"token": "pii-only-secret-0123456789", "login_csrf": login_csrf},
        headers={"cookie": f"applyrelay_login_csrf={pre}"},
    )
    assert no_read.status_code == 401 and "read scope" in no_read.text
    forged = await relay.client.get("/dashboard", headers={"cookie": "applyrelay_session=forged"})
    assert forged.status_code == 303


async def test_list_has_no_pii_and_detail_shows_the_name_only_to_pii(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    [failed] = await make_failed(relay, factorial, 1)
    admin, _ = await login(relay)
    listing = await relay.client.get("/dashboard", headers=admin)
    assert failed in listing.text and "<svg" in listing.text
    assert CANDIDATE_FIRST not in listing.text and "example.org" not in listing.text
    filtered = await relay.client.get("/dashboard", params={"status": "failed"}, headers=admin)
    assert failed in filtered.text
    assert failed not in (await relay.client.get("/dashboard", params={"status": "delivered"}, headers=admin)).text

    detail = await relay.client.get(f"/dashboard/deliveries/{failed}", headers=admin)
    assert (
        f"{CANDIDATE_FIRST} {CANDIDATE_LAST}".replace("ë", "&#235;") in detail.text
        or f"{CANDIDATE_FIRST} {CANDIDATE_LAST}" in detail.text
    )
    assert "HTTP 422" in detail.text
    [entry] = [e for e in await audit_entries(relay) if e.action == "view_detail"]
    assert entry.target == failed and entry.detail["via"] == "dashboard"

    add_token(relay, "viewer", "read", "viewer-secret-0123456789")
    viewer, _ = await login(relay, "viewer-secret-0123456789")
    seen = await relay.client.get(f"/dashboard/deliveries/{failed}", headers=viewer)
    assert seen.status_code == 200 and CANDIDATE_FIRST not in seen.text
    assert 'id="retry"' not in seen.text and 'id="purge"' not in seen.text  # no buttons past the scopes


async def test_forms_need_the_session_csrf_token(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    [failed] = await make_failed(relay, factorial, 1)
    admin, csrf = await login(relay)
    for path in (
        f"/dashboard/deliveries/{failed}/retry",
        f"/dashboard/deliveries/{failed}/purge",
        "/dashboard/bulk-retry",
        "/dashboard/logout",
    ):
        refused = await relay.client.post(path, data={"csrf": "forged"}, headers=admin)
        assert refused.status_code == 403, path
    assert (await relay.delivery(failed))["status"] == "failed"
    # without a session, a POST is refused (and the bearer-less API too)
    assert (await relay.client.post(f"/dashboard/deliveries/{failed}/retry", data={"csrf": csrf})).status_code == 401

    retried = await relay.client.post(f"/dashboard/deliveries/{failed}/retry", data={"csrf": csrf}, headers=admin)
    assert retried.status_code == 303 and "done=queued" in retried.headers["location"]
    await relay.wait_for(failed, "delivered")
    assert [e.actor for e in await audit_entries(relay) if e.action == "retry"] == ["admin"]


async def test_purge_and_bulk_retry_from_the_pages(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    first, second, third = await make_failed(relay, factorial, 3)
    admin, csrf = await login(relay)
    purged = await relay.client.post(f"/dashboard/deliveries/{first}/purge", data={"csrf": csrf}, headers=admin)
    assert purged.status_code == 303
    assert (await relay.delivery(first))["payload_purged"] is True

    started = await relay.client.post("/dashboard/bulk-retry", data={"csrf": csrf, "status": "failed"}, headers=admin)
    assert started.status_code == 303
    bulk_id = re.search(r"bulk=(blk_[0-9a-f]+)", started.headers["location"]).group(1)  # type: ignore[union-attr]
    for delivery_id in (second, third):
        await relay.wait_for(delivery_id, "delivered")
    progress = (await relay.client.get(f"/dashboard/api/bulk/{bulk_id}", headers=admin)).json()
    assert progress["status"] == "done" and progress["retried"] == 2 and progress["errors"] == 1  # the purged one
    page = await relay.client.get(started.headers["location"], headers=admin)
    assert 'id="bulk-progress"' in page.text

    counts = (await relay.client.get("/dashboard/api/counts", headers=admin)).json()
    assert counts["by_status"]["delivered"] == 2 and counts["by_status"]["failed"] == 1
    assert (await relay.client.get("/dashboard/api/counts")).status_code == 401


async def test_logout_ends_the_session(relay: Relay) -> None:
    await post(relay, 1)
    admin, csrf = await login(relay)
    out = await relay.client.post("/dashboard/logout", data={"csrf": csrf}, headers=admin)
    assert out.status_code == 303
    assert (await relay.client.get("/dashboard", headers=admin)).status_code == 303
    assert not await relay.redis.keys("ar:sess:*")


async def test_repeated_wrong_tokens_are_slowed_down(relay: Relay) -> None:
    page = await relay.client.get("/dashboard/login")
    pre = _value(_set_cookies(page)["applyrelay_login_csrf"])
    login_csrf = re.search(r'name="login_csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    statuses = []
    for _ in range(21):
        response = await relay.client.post(
            "/dashboard/login",
            data={"token": "guess", "login_csrf": login_csrf},
            headers={"cookie": f"applyrelay_login_csrf={pre}"},
        )
        statuses.append(response.status_code)
    assert statuses[:20] == [401] * 20 and statuses[20] == 429
    right = await relay.client.post(
        "/dashboard/login",
        data={"token": ADMIN_TOKEN, "login_csrf": login_csrf},
        headers={"cookie": f"applyrelay_login_csrf={pre}"},
    )
    assert right.status_code == 429  # blocked for the window, whatever the token


async def test_chart_ranges_keep_the_filters(relay: Relay) -> None:
    await post(relay, 1)
    admin, _ = await login(relay)
    for span in ("1h", "24h", "7d"):
        page = await relay.client.get("/dashboard", params={"range": span, "connection": "acme"}, headers=admin)
        assert page.status_code == 200 and "received 1" in page.text
        assert 'href="/dashboard?connection=acme&amp;range=7d"' in page.text


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400"])
async def test_a_non_finite_time_filter_is_refused_naming_it(relay: Relay, value: str) -> None:
    """Read as a float, then refused by Redis as a score bound: the list was a 500 and a bulk
    retry was started that failed in the background."""
    await post(relay, 1)
    admin, csrf = await login(relay)
    for name in ("received_from", "received_to"):
        page = await relay.client.get("/dashboard", params={name: value}, headers=admin)
        assert page.status_code == 422, page.text
        assert re.search(rf'role="alert">{name}: expected finite epoch seconds', page.text), page.text
        started = await relay.client.post(
            "/dashboard/bulk-retry", data={"csrf": csrf, "status": "failed", name: value}, headers=admin
        )
        assert started.status_code == 400 and f"{name}: " in started.text, started.text
    assert await relay.redis.keys("ar:bulk:*") == []  # no bulk retry was started
    assert not [e for e in await audit_entries(relay) if e.action == "bulk_retry"]
