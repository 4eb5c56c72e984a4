"""Configuration errors name the key at fault; the SSRF guard; retry policy arithmetic; OAuth refresh."""

from __future__ import annotations

import random
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.config import ConfigError, RetryPolicyConfig, load_config, parse_config
from app.delivery.retry_policy import next_retry
from app.net import ssrf
from connectors.base import TransientError, parse_retry_after
from tests.support.builders import PDF_BYTES, application, connection_table
from tests.support.emulators import Emulator, EmulatorFactory


def conn(**table: Any) -> dict[str, Any]:
    return {
        "connections": {
            "acme": {
                "connector": "factorial",
                "base_url": "https://api.factorialhr.com",
                "credentials_env": "ACME_KEY",
                **table,
            }
        }
    }


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (conn(connector="workday"), "connections.acme.connector"),
        (conn(base_url="ftp://x"), "connections.acme.base_url"),
        (conn(credentials_env=""), "connections.acme.credentials_env"),
        (conn(credentials_env="MISSING_VAR"), "connections.acme.credentials_env"),
        (conn(timeout_s=120), "connections.acme.timeout_s"),
        (conn(concurrency=0), "connections.acme.concurrency"),
        (conn(retry_schedule=[]), "connections.acme.retry_schedule"),
        (conn(max_file_bytes=-1), "connections.acme.max_file_bytes"),
        ({"connectionz": {}}, "connectionz"),
    ],
)
def test_bad_config_names_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(data, {"ACME_KEY": "k"})
    assert str(error.value).startswith(key)


def test_config_file_and_secrets_from_env(tmp_path: Path) -> None:
    path = tmp_path / "applyrelay.toml"
    path.write_text(
        '[connections.acme]\nconnector = "factorial"\nbase_url = "https://x.example"\n'
        'credentials_env = "ACME_KEY"\napi_version = "2026-04-01"\n'
    )
    config = load_config(path, {"ACME_KEY": "s3cret"})
    acme = config.connections["acme"]
    assert acme.credentials == "s3cret" and acme.settings == {"api_version": "2026-04-01"}
    assert "s3cret" not in repr(acme)
    path.write_text("[connections.acme\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, {})


def test_retry_policy_schedule_jitter_floor_and_cap() -> None:
    policy = RetryPolicyConfig()
    rng = random.Random(7)
    plain = TransientError("x", status=503)
    delays = [next_retry(policy, n, plain, rng).delay_s for n in range(1, 8)]
    for delay, base in zip(delays, policy.schedule, strict=True):
        assert base * 0.8 <= delay <= base * 1.2
    assert next_retry(policy, 8, plain, rng).delay_s is None  # 8 attempts in all
    assert next_retry(policy, 1, TransientError("x", status=429), rng).delay_s == 60
    assert next_retry(policy, 1, TransientError("x", timeout=True), rng).delay_s == 60
    assert next_retry(policy, 1, TransientError("x", status=503, retry_after=10 * 3600), rng).delay_s == 6 * 3600
    assert parse_retry_after("120") == 120
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412420.0) == pytest.approx(60)
    assert parse_retry_after("soon") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org/cv.pdf",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://[::1]/x",
        "https://169.254.169.254/latest",
        "https://[::ffff:127.0.0.1]/x",
        "https://localhost/x",
        "https://metadata.google.internal/x",
        "https://user:pw@example.org/x",
        "https://100.64.0.1/x",
        "file:///etc/passwd",
    ],
)
def test_ssrf_guard_refuses(url: str) -> None:
    with pytest.raises(ssrf.UnsafeURL):
        ssrf.check_url(url)


async def test_ssrf_guard_checks_what_a_name_resolves_to() -> None:
    with pytest.raises(ssrf.UnsafeURL):
        await ssrf.resolve_public("localhost", 443)
    ssrf.check_url("https://files.example.org/cv.pdf")  # a public name passes the static check


class _FileServer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "application/pdf")
        self.end_headers()
        self.wfile.write(PDF_BYTES)

    def log_message(self, *_: Any) -> None:
        pass


async def test_data_url_is_fetched_by_the_worker(make_relay: Any, factorial: Emulator) -> None:
    server = HTTPServer(("127.0.0.1", 0), _FileServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    try:
        relay = make_relay(
            {
                "acme": connection_table(
                    "factorial", factorial.url, fetch_allow_hosts=[f"{host}:{port}"], fetch_allow_http=True
                )
            }
        )
        await relay.start_worker()
        body = application(attachments=[{"name": "cv.pdf", "type": "CV", "data_url": f"http://{host}:{port}/cv"}])
        delivery_id = (await relay.post(body)).json()["id"]
        await relay.wait_for(delivery_id, "delivered")
        [file] = factorial.records()["files"]
        assert file["byte_size"] == len(PDF_BYTES)
    finally:
        server.shutdown()


async def test_data_url_to_an_internal_address_is_refused_by_the_worker(make_relay: Any, factorial: Emulator) -> None:
    """A name allowed at intake that resolves to loopback is refused when fetched."""
    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    await relay.start_worker()
    body = application(attachments=[{"name": "cv.pdf", "type": "CV", "data_url": "https://localtest.me/cv"}])
    response = await relay.post(body)
    assert response.status_code == 202
    record = await relay.wait_for(response.json()["id"], "failed", "retry_scheduled")
    assert record["checkpoints"].get("application")  # the application itself went through
    assert record["last_error"]["step"].startswith("attachment:")
    assert socket.AF_INET  # keeps the import honest on systems without IPv6


async def test_oauth_token_is_refreshed_once(
    make_relay: Any, emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    factorial = emulator(
        "factorial", oauth_client_id="cid", oauth_client_secret="csecret", oauth_refresh_token="refresh-1"
    )
    monkeypatch.setenv("FACTORIAL_CLIENT_ID", "cid")
    monkeypatch.setenv("FACTORIAL_CLIENT_SECRET", "csecret")
    monkeypatch.setenv("FACTORIAL_REFRESH", "refresh-1")
    relay = make_relay(
        {
            "acme": connection_table(
                "factorial",
                factorial.url,
                _secret="expired-access-token",
                auth="oauth",
                oauth_client_id_env="FACTORIAL_CLIENT_ID",
                oauth_client_secret_env="FACTORIAL_CLIENT_SECRET",
                oauth_refresh_token_env="FACTORIAL_REFRESH",
            )
        }
    )
    await relay.start_worker()
    delivery_id = (await relay.post(application(attachments=[]))).json()["id"]
    record = await relay.wait_for(delivery_id, "delivered")
    assert record["failed_attempts"] == 0
    assert len(factorial.records()["candidates"]) == 1


def test_file_links_expire_and_resist_tampering() -> None:
    from app.privacy import file_links

    token = file_links.sign("s3cret", "dlv_1", 2, expires_at=1000)
    assert file_links.verify("s3cret", token, now=999) == ("dlv_1", 2)
    for bad_secret, bad_token, now in (
        ("other", token, 999),
        ("s3cret", token, 1001),
        ("s3cret", token.replace(".", ".x"), 999),
        ("s3cret", "garbage", 999),
    ):
        with pytest.raises(file_links.BadLink):
            file_links.verify(bad_secret, bad_token, now=now)
