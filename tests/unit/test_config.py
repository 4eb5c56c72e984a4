"""Configuration (app/config.py): every error names the key at fault; the file is TOML, secrets come
from the environment and never show in a repr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.config import ConfigError, load_config, parse_config
from app.core import files
from connectors.factorial import FactorialSettings


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
        (conn(retry_schedule=[60] * 51), "connections.acme.retry_schedule"),
        (conn(retry_schedule=[1e300]), "connections.acme.retry_schedule[0]"),
        (conn(fetch_allow_hosts=["*"]), "connections.acme.fetch_allow_hosts[0]"),
        (conn(fetch_allow_hosts=["files.example.org/cv"]), "connections.acme.fetch_allow_hosts[0]"),
        (conn(fetch_allow_hosts=["[fd00::1]"]), "connections.acme.fetch_allow_hosts[0]"),  # never matches a host
        (conn(max_file_bytes=-1), "connections.acme.max_file_bytes"),
        (conn(allowed_attachment_types=["image/svg+xml"]), "connections.acme.allowed_attachment_types[0]"),
        (conn(allowed_attachment_types=[]), "connections.acme.allowed_attachment_types"),
        ({"connectionz": {}}, "connectionz"),
    ],
)
def test_bad_config_names_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(data, {"ACME_KEY": "k"})
    assert str(error.value).startswith(key)


def test_allowed_hosts_take_names_addresses_and_ports() -> None:
    hosts = ["files.example.org", "cdn.example.org:8443", "10.0.0.5", "fd00::1", "fd00::1:8443"]  # as compared
    parsed = parse_config(conn(fetch_allow_hosts=hosts), {"ACME_KEY": "k"}).connections["acme"]
    assert parsed.fetch_allow_hosts == tuple(hosts)


def test_allowed_attachment_types_default_to_the_safe_list() -> None:
    default = parse_config(conn(), {"ACME_KEY": "k"}).connections["acme"]
    assert default.allowed_attachment_types == files.DEFAULT_ALLOWED and files.GIF not in files.DEFAULT_ALLOWED
    chosen = parse_config(conn(allowed_attachment_types=["application/pdf", "image/gif"]), {"ACME_KEY": "k"})
    assert chosen.connections["acme"].allowed_attachment_types == ("application/pdf", "image/gif")


def test_config_file_and_secrets_from_env(tmp_path: Path) -> None:
    path = tmp_path / "applyrelay.toml"
    path.write_text(
        '[connections.acme]\nconnector = "factorial"\nbase_url = "https://x.example"\n'
        'credentials_env = "ACME_KEY"\napi_version = "2026-04-01"\n'
    )
    config = load_config(path, {"ACME_KEY": "s3cret"})
    acme = config.connections["acme"]
    assert acme.credentials == "s3cret" and acme.settings == FactorialSettings(api_version="2026-04-01")
    assert "s3cret" not in repr(acme)
    path.write_text("[connections.acme\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, {})
