"""Connect links and the connect page over HTTP (docs/connections.md, "Connect links and the
connect page"): `POST /v1/connect-links` validated like a connection, the page against the Flatchr
emulator, single use, expiry, CSRF, the refusal counter, no secret in the page or the logs."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.connections import links
from app.connections.store import ConnectionStore
from app.log import configure
from app.privacy import audit
from app.privacy.crypto import AesGcmSealer
from tests.support.builders import connection_table
from tests.support.connect import (
    browser,
    csrf_of,
    flatchr_application,
    flatchr_link,
    make_link,
    seen_by_workers,
    submit,
)
from tests.support.connections import UNUSABLE_BASE_URLS
from tests.support.emulators import Emulator
from tests.support.harness import Relay

WRONG = "wrong-key-0123456789"


def store(relay: Relay) -> ConnectionStore:
    """The connections store on the test's loop (the web runtime's client is on the server's)."""
    return ConnectionStore(relay.redis, AesGcmSealer(relay.settings.data_keys))


async def test_a_link_is_answered_once_and_only_its_hash_is_kept(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    relay = make_relay({})
    response = await make_link(
        relay,
        connection_id="acme-flatchr",
        connector="flatchr",
        base_url=flatchr.url,
        settings={"company_id": "Wy3EOp2NP3p1KMq8"},
        ttl_s=3600,
    )
    assert response.status_code == 201, response.text
    out = response.json()
    assert response.headers["cache-control"] == "no-store"
    assert {k: out[k] for k in ("connection_id", "connector", "reconnect")} == {
        "connection_id": "acme-flatchr",
        "connector": "flatchr",
        "reconnect": False,
    }
    path = urlsplit(out["url"]).path
    assert out["url"].startswith(relay.server.url) and path.startswith("/connect/")
    token = path.removeprefix("/connect/")
    assert len(token) >= 40
    stored = [k async for k in relay.redis.scan_iter("ar:connect:*")]
    assert stored == [f"ar:connect:{hashlib.sha256(token.encode()).hexdigest()}".encode()]
    assert token.encode() not in await relay.redis.get(stored[0])
    assert 3590 < await relay.redis.ttl(stored[0]) <= 3600
    [entry] = [e for e in await audit.read(relay.redis) if e.action == "create_connect_link"]
    assert entry.actor == "admin" and entry.target == "acme-flatchr" and token not in str(entry.detail)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"connector": "workday"}, 422, "connector"),
        ({"settings": {}}, 422, "settings.company_id"),
        ({"settings": {"company_id": "Wy3EOp2NP3p1KMq8", "credentials_env": "X"}}, 422, "settings.credentials_env"),
        ({"ttl_s": 31 * 86400}, 422, "ttl_s"),
        ({"ttl_s": 10}, 422, "ttl_s"),
        ({"connection_id": "no spaces"}, 422, "connection_id"),
        ({"credentials": {"api_key": "x"}}, 422, "credentials"),
        ({"connection_id": "acme"}, 409, None),  # the TOML file's
        ({"connection_id": "ghost", "reconnect": True, "settings": {}}, 404, None),
    ],
    ids=["connector", "settings", "env-setting", "ttl-long", "ttl-short", "id", "unknown-field", "file", "reconnect"],
)
async def test_a_link_that_would_fail_is_refused_before_it_is_sent(
    make_relay: Callable[..., Relay], flatchr: Emulator, body: dict[str, Any], status: int, field: str | None
) -> None:
    relay = make_relay({"acme": connection_table("flatchr", flatchr.url, company_id="Wy3EOp2NP3p1KMq8")})
    request = {
        "connection_id": "new-one",
        "connector": "flatchr",
        "base_url": flatchr.url,
        "settings": {"company_id": "Wy3EOp2NP3p1KMq8"},
        **body,
    }
    response = await make_link(relay, **request)
    assert response.status_code == status, response.text
    problem = response.json()
    assert response.headers["content-type"].startswith("application/problem+json") and problem["code"]
    if field:
        assert [e["field"] for e in problem["errors"]] == [field]
    assert [k async for k in relay.redis.scan_iter("ar:connect:*")] == []


async def test_only_an_admin_makes_links(make_relay: Callable[..., Relay], flatchr: Emulator) -> None:
    relay = make_relay({})
    body = {"connection_id": "x", "connector": "flatchr", "settings": {"company_id": "Wy3EOp2NP3p1KMq8"}}
    assert (await relay.client.post("/v1/connect-links", json=body)).status_code == 401
    wrong = {"authorization": "Bearer nope"}
    assert (await relay.client.post("/v1/connect-links", json=body, headers=wrong)).status_code == 401


async def test_an_id_made_through_the_api_is_taken_unless_the_link_reconnects(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    relay = make_relay({})
    path = await flatchr_link(relay, flatchr.url)
    async with browser(relay) as client:
        page = await client.get(path)
        assert (await submit(client, path, {"api_key": "sandbox"}, csrf=csrf_of(page.text))).status_code == 200
    again = await make_link(
        relay,
        connection_id="acme-flatchr",
        connector="flatchr",
        base_url=flatchr.url,
        settings={"company_id": "Wy3EOp2NP3p1KMq8"},
    )
    assert again.status_code == 409 and again.json()["errors"] == [{"field": "connection_id", "message": "taken"}]
    other = await make_link(relay, connection_id="acme-flatchr", connector="otys", reconnect=True)
    assert other.status_code == 422 and other.json()["errors"][0]["field"] == "connector"
    reconnect = await make_link(relay, connection_id="acme-flatchr", connector="flatchr", reconnect=True)
    assert reconnect.status_code == 201 and reconnect.json()["reconnect"] is True


async def test_the_page_shows_the_guide_and_asks_for_the_key_safely(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    relay = make_relay({})
    path = await flatchr_link(relay, flatchr.url)
    async with browser(relay) as client:
        page = await client.get(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<h2 id="guide-title">Connection Guide</h2>' in html and "Settings &gt; Advanced &gt; API" in html
    assert '<h2 id="prereq-title">Prerequisites</h2>' in html and "expires after 365 days" in html
    assert '<input id="f-api_key" name="api_key" type="password" required autocomplete="off"' in html
    assert 'name="base_url"' not in html  # the link fixed it
    assert "<script" not in html and "oauth" not in html
    headers = page.headers
    assert headers["referrer-policy"] == "no-referrer" and headers["cache-control"] == "no-store"
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp and "frame-ancestors 'none'" in csp
    cookie = headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and f"path={path.lower()}" in cookie
    css = await relay.client.get("/connect-assets/connect.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


async def test_unknown_spent_and_expired_links_answer_the_same_page(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    relay = make_relay({})
    expired = await flatchr_link(relay, flatchr.url, connection_id="late")
    [key] = [k async for k in relay.redis.scan_iter("ar:connect:*")]
    await relay.redis.pexpire(key, 1)
    pages = []
    async with browser(relay) as client:
        for path in ["/connect/" + "A" * 43, "/connect/x", expired, "/connect/" + "z" * 300]:
            got = await client.get(path)
            assert got.status_code == 410 and got.headers["content-type"].startswith("text/html"), got.text
            assert got.headers["cache-control"] == "no-store" and got.headers["referrer-policy"] == "no-referrer"
            pages.append(got.text)
            posted = await client.post(path, data={"api_key": "sandbox", "csrf": "x"})
            assert posted.status_code == 410 and posted.text == got.text
    assert len(set(pages)) == 1


async def test_a_form_without_its_csrf_token_is_refused_and_the_link_kept(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    relay = make_relay({})
    path = await flatchr_link(relay, flatchr.url)
    other = await flatchr_link(relay, flatchr.url, connection_id="other")
    async with browser(relay) as client, browser(relay) as stranger:
        token = csrf_of((await client.get(path)).text)
        other_token = csrf_of((await client.get(other)).text)
        refused = [
            await submit(client, path, {"api_key": "sandbox"}, csrf=None),
            await submit(client, path, {"api_key": "sandbox"}, csrf=token[:-1] + ("0" if token[-1] != "0" else "1")),
            await submit(client, path, {"api_key": "sandbox"}, csrf=other_token),  # another link's
            await submit(stranger, path, {"api_key": "sandbox"}, csrf=token),  # no cookie: another browser
            await client.post(
                path, data={"api_key": "sandbox", "csrf": token}, headers={"origin": "https://evil.example"}
            ),
        ]
        refused.append(
            await client.post(
                path, data={"api_key": "sandbox", "csrf": token}, headers={"sec-fetch-site": "cross-site"}
            )
        )
        # an Origin urlsplit cannot parse was a 500
        refused.append(
            await client.post(path, data={"api_key": "sandbox", "csrf": token}, headers={"origin": "http://[zz]"})
        )
        assert [r.status_code for r in refused] == [403] * 7
        assert "This form has expired" in refused[0].text
        assert await relay.redis.exists("ar:conn:r:acme-flatchr") == 0
        done = await client.post(path, data={"api_key": "sandbox", "csrf": token}, headers={"origin": relay.server.url})
        assert done.status_code == 200, done.text


async def test_a_wrong_key_is_shown_with_the_reason_then_the_right_one_connects_once(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    relay = make_relay({})
    await relay.start_worker()
    path = await flatchr_link(relay, flatchr.url)
    stream = io.StringIO()
    configure("DEBUG", stream=stream)  # every log line of the page's work, read below
    async with browser(relay) as client:
        try:
            page = await client.get(path)
            wrong = await submit(client, path, {"api_key": WRONG}, csrf=csrf_of(page.text))
            stored_after_wrong = await relay.redis.exists("ar:conn:r:acme-flatchr")
            right = await submit(client, path, {"api_key": "sandbox"}, csrf=csrf_of(wrong.text))
        finally:
            configure("WARNING")
        assert wrong.status_code == 422
        assert WRONG not in wrong.text
        assert (
            '<p class="error" id="err-api_key">the ATS refused them: ' in wrong.text and "Invalid token" in wrong.text
        )
        assert 'aria-invalid="true"' in wrong.text and 'value="' + WRONG not in wrong.text
        assert stored_after_wrong == 0
        logs = stream.getvalue()
        assert '"event": "connect.credentials_refused"' in logs and '"event": "connect.connected"' in logs
        assert WRONG not in logs and "sandbox" not in logs  # neither key, nor the link's token
        assert path.removeprefix("/connect/") not in logs
        assert right.status_code == 200 and "Flatchr is connected" in right.text and "sandbox" not in right.text
        again = await submit(client, path, {"api_key": "sandbox"}, csrf=csrf_of(page.text))
        assert again.status_code == 410
        assert (await client.get(path)).status_code == 410
    record = await store(relay).get("acme-flatchr")
    assert record is not None and record.connector == "flatchr" and record.created_by == "connect-link:admin"
    assert record.settings == {"company_id": "Wy3EOp2NP3p1KMq8"} and record.base_url == flatchr.url
    [entry] = [e for e in await audit.read(relay.redis) if e.action == "connect_link_used"]
    assert entry.target == "acme-flatchr"
    await seen_by_workers(relay, "acme-flatchr")
    response = await relay.post(flatchr_application("acme-flatchr"))
    assert response.status_code == 202, response.text
    delivered = await relay.wait_for(response.json()["id"], "delivered")
    [applicant] = flatchr.records()["applicants"]  # through the connection the page made
    assert delivered["connection_id"] == "acme-flatchr" and delivered["checkpoints"]["candidate"] == applicant["id"]


async def test_after_ten_refusals_the_link_is_spent(make_relay: Callable[..., Relay], flatchr: Emulator) -> None:
    relay = make_relay({})
    path = await flatchr_link(relay, flatchr.url)
    async with browser(relay) as client:
        csrf = csrf_of((await client.get(path)).text)
        statuses = [
            (await submit(client, path, {"api_key": f"{WRONG}{i}"}, csrf=csrf)).status_code
            for i in range(links.MAX_REFUSALS)
        ]
        assert statuses == [422] * (links.MAX_REFUSALS - 1) + [410]
        assert (await submit(client, path, {"api_key": "sandbox"}, csrf=csrf)).status_code == 410
    assert await relay.redis.exists("ar:conn:r:acme-flatchr") == 0


async def test_an_empty_field_is_asked_again_without_spending_the_link(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    relay = make_relay({})
    path = await flatchr_link(relay, flatchr.url)
    async with browser(relay) as client:
        csrf = csrf_of((await client.get(path)).text)
        empty = await submit(client, path, {"api_key": "  "}, csrf=csrf)
        assert empty.status_code == 422 and '<p class="error" id="err-api_key">Required.</p>' in empty.text
        assert await links.peek(relay.redis, path.removeprefix("/connect/")) is not None


async def test_a_reconnect_link_replaces_the_credentials_and_resumes_the_paused_deliveries(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    relay = make_relay({})
    await relay.start_worker()
    path = await flatchr_link(relay, flatchr.url)
    async with browser(relay) as client:
        made = await submit(client, path, {"api_key": "sandbox"}, csrf=csrf_of((await client.get(path)).text))
        assert made.status_code == 200
    before = await store(relay).get("acme-flatchr")
    await seen_by_workers(relay, "acme-flatchr")
    await relay.store.pause_connection("acme-flatchr", "INTEGRATION.AUTHENTICATION_INVALID: the key was revoked")
    response = await relay.post(flatchr_application("acme-flatchr"))
    assert response.status_code == 202, response.text
    delivery_id = response.json()["id"]
    await relay.wait_for(delivery_id, "paused")
    link = await make_link(relay, connection_id="acme-flatchr", connector="flatchr", reconnect=True)
    again = urlsplit(link.json()["url"]).path
    async with browser(relay) as client:
        page = await client.get(again)
        assert page.status_code == 200 and "Reconnect Flatchr" in page.text and 'name="base_url"' not in page.text
        refused = await submit(client, again, {"api_key": WRONG}, csrf=csrf_of(page.text))
        assert refused.status_code == 422 and WRONG not in refused.text
        assert await relay.store.paused_reason("acme-flatchr") is not None  # a refused key lifts nothing
        done = await submit(client, again, {"api_key": "sandbox"}, csrf=csrf_of(page.text))
        assert done.status_code == 200, done.text
    after = await store(relay).get("acme-flatchr")
    assert before is not None and after is not None
    assert after.revision == before.revision + 1 and after.credentials_set_at > before.credentials_set_at
    assert await relay.store.paused_reason("acme-flatchr") is None
    await relay.wait_for(delivery_id, "delivered")
    [entry] = [e for e in await audit.read(relay.redis) if e.action == "connect_link_used" and e.detail["reconnect"]]
    assert entry.detail["resumed_deliveries"] == 1


async def test_laura_asks_for_the_address_unless_the_link_gives_it(
    make_relay: Callable[..., Relay], laura: Emulator
) -> None:
    relay = make_relay({})
    asked = await make_link(relay, connection_id="city", connector="laura")
    fixed = await make_link(relay, connection_id="town", connector="laura", base_url=laura.url)
    assert asked.status_code == fixed.status_code == 201, asked.text
    async with browser(relay) as client:
        asked_path = urlsplit(asked.json()["url"]).path
        page = await client.get(asked_path)
        assert 'name="base_url" type="url"' in page.text and 'name="token" type="password"' in page.text
        assert "Laura publishes no API documentation" in page.text
        missing = await submit(
            client, urlsplit(asked.json()["url"]).path, {"token": "sandbox"}, csrf=csrf_of(page.text)
        )
        assert missing.status_code == 422 and 'id="err-base_url"' in missing.text
        for inside in (
            "http://example.rekrytointi.com",
            f"https://127.0.0.1:{urlsplit(laura.url).port}",
            "https://localhost",
        ):
            probe = await submit(client, asked_path, {"token": "sandbox", "base_url": inside}, csrf=csrf_of(page.text))
            assert probe.status_code == 422, inside
            assert "must be your organisation&#39;s https address on the internet" in probe.text
        assert await links.peek(relay.redis, asked_path.removeprefix("/connect/")) is not None
        other = await client.get(urlsplit(fixed.json()["url"]).path)
        assert 'name="base_url"' not in other.text


async def test_connect_with_factorial_is_offered_only_with_the_oauth_app(
    make_relay: Callable[..., Relay], factorial: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    relay = make_relay({})
    made = await make_link(relay, connection_id="fact", connector="factorial", base_url=factorial.url)
    path = urlsplit(made.json()["url"]).path
    async with browser(relay) as client:
        without = await client.get(path)
        monkeypatch.setenv("APPLYRELAY_FACTORIAL_CLIENT_ID", "client")
        only_id = await client.get(path)
        monkeypatch.setenv("APPLYRELAY_FACTORIAL_CLIENT_SECRET", "secret")
        with_app = await client.get(path)
    assert 'id="oauth"' not in without.text and 'id="oauth"' not in only_id.text
    assert f'<a class="button" id="oauth" href="{path}/oauth/factorial">Connect with Factorial</a>' in with_app.text
    assert 'name="api_key" type="password"' in with_app.text and 'name="access_token"' not in with_app.text


async def test_an_ats_that_does_not_answer_gives_the_link_back_uncounted(
    make_relay: Callable[..., Relay], flatchr: Emulator
) -> None:
    relay = make_relay({})
    path = await flatchr_link(relay, flatchr.url)
    flatchr.faults(script=["error", "error", "error", "error"], methods=["GET"])  # the check's read fails: 5xx
    async with browser(relay) as client:
        csrf = csrf_of((await client.get(path)).text)
        down = await submit(client, path, {"api_key": "sandbox"}, csrf=csrf)
        assert down.status_code == 503 and "did not answer" in down.text and "sandbox" not in down.text
        assert await relay.redis.get(f"ar:connect-fail:{links.token_hash(path.removeprefix('/connect/'))}") is None
        flatchr.faults(script=[])
        assert (await submit(client, path, {"api_key": "sandbox"}, csrf=csrf)).status_code == 200


async def test_the_schema_documents_the_route_and_not_the_page(make_relay: Callable[..., Relay]) -> None:
    relay = make_relay({})
    document = (await relay.client.get("/schema/openapi.json")).json()
    operation = document["paths"]["/v1/connect-links"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewConnectLink"
    }
    body = document["components"]["schemas"]["NewConnectLink"]
    assert set(body["required"]) == {"connection_id", "connector"} and body["additionalProperties"] is False
    assert body["properties"]["ttl_s"]["maximum"] == links.MAX_TTL_S
    assert {"201", "401", "403", "409", "422"} <= set(operation["responses"]) and operation["security"]
    assert not [p for p in document["paths"] if p.startswith("/connect")]


@pytest.mark.parametrize("base_url", list(UNUSABLE_BASE_URLS.values()), ids=list(UNUSABLE_BASE_URLS))
async def test_a_link_with_a_base_url_no_request_can_be_sent_to_is_refused(
    make_relay: Callable[..., Relay], flatchr: Emulator, base_url: str
) -> None:
    """Such a link was made (201) and its page answered 503 on submit, or it crashed (500)."""
    relay = make_relay({})
    response = await make_link(
        relay,
        connection_id="new-one",
        connector="flatchr",
        base_url=base_url.format(ats=flatchr.url),
        settings={"company_id": "Wy3EOp2NP3p1KMq8"},
    )
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "PLATFORM.INPUT_INVALID" and [e["field"] for e in problem["errors"]] == ["base_url"]
    assert [k async for k in relay.redis.scan_iter("ar:connect:*")] == []
