"""Typed connection tables: a typo, a bad value or a wrong type stops the service at start, naming
the key; the connectors receive their decoded settings; the documented examples still parse."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import CONNECTION_KEYS, ConfigError, demo_config, parse_config
from app.runtime import ConnectorPool
from connectors import CONNECTORS, connector_class
from connectors.base import ConnectionSpec
from connectors.factorial import FactorialConnector, FactorialSettings
from connectors.flatchr import FlatchrSettings, SourceRule

REPO = Path(__file__).resolve().parents[2]


def table(connector: str = "factorial", **keys: Any) -> dict[str, Any]:
    return {
        "connections": {
            "acme": {
                "connector": connector,
                "base_url": "https://ats.example",
                "credentials_env": "ACME_KEY",
                **keys,
            }
        }
    }


def error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, {"ACME_KEY": "k"})
    return str(caught.value)


def test_a_typo_names_the_key_and_the_likely_one() -> None:
    message = error(table(concurency=3))
    assert message.startswith("connections.acme.concurency: unknown key (did you mean concurrency?)")
    assert "api_version" in message  # the connector's settings are listed
    assert error(table("laura", drop_attachment=True)).startswith(
        "connections.acme.drop_attachment: unknown key (did you mean drop_attachments?)"
    )
    # a key of another connector is unknown to this one
    assert error(table("factorial", company_id="x")).startswith("connections.acme.company_id: unknown key")


def test_a_bad_cv_upload_names_the_key_and_what_it_takes() -> None:
    assert error(table(cv_upload="email")) == (
        "connections.acme.cv_upload: must be one of 'message', 'legacy_cv_part', 'link', got 'email'"
    )


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"concurrency": "3"}, "connections.acme.concurrency: must be an integer, got a string"),
        ({"concurrency": True}, "connections.acme.concurrency: must be an integer, got true or false"),
        ({"concurrency": 0}, "connections.acme.concurrency: must be an integer >= 1"),
        ({"cv_link_ttl_days": "7"}, "connections.acme.cv_link_ttl_days: must be a number, got a string"),
        ({"api_version": "latest"}, "connections.acme.api_version: must be a dated API version, YYYY-MM-DD"),
        ({"retry_schedule": [15, -1]}, "connections.acme.retry_schedule[1]: must be a number > 0.0"),
        ({"timeout_s": 120}, "connections.acme.timeout_s: must be a number <= 50.0"),
        ({"fetch_allow_http": "yes"}, "connections.acme.fetch_allow_http: must be true or false, got a string"),
        ({"indeed_jobs": "REQ-1"}, "connections.acme.indeed_jobs: must be a table, got a string"),
        ({"form_rate_limit": -1}, "connections.acme.form_rate_limit: must be an integer >= 0"),
    ],
)
def test_a_wrong_type_or_value_names_the_key(keys: dict[str, Any], expected: str) -> None:
    assert error(table(**keys)).startswith(expected)


@pytest.mark.parametrize(
    ("connector", "keys", "expected"),
    [
        ("flatchr", {}, "connections.acme.company_id: required"),
        ("flatchr", {"company_id": "a/b"}, "connections.acme.company_id: must be a Flatchr company key"),
        ("flatchr", {"company_id": "c", "offerer_id": "x"}, "connections.acme.offerer_id: must be an integer job"),
        (
            "flatchr",
            {"company_id": "c", "source_by_origin": {"indeed": {"offerr_id": 8}}},
            "connections.acme.source_by_origin[...].offerr_id: unknown key",
        ),
        (
            "flatchr",
            {"company_id": "c", "source_by_origin": {"indeed": "board"}},
            "connections.acme.source_by_origin[...]: must be one of 'offerer_id', 'source_id', 'none'",
        ),
        ("otys", {"gender_map": {"MAL": "m"}}, "connections.acme.gender_map: keys must be one of 'MALE'"),
        ("otys", {"document_types": {"CV": "1"}}, "connections.acme.document_types[...]: must be an integer"),
        ("laura", {"api_path": "api"}, "connections.acme.api_path: must be a path starting with /"),
    ],
)
def test_connector_settings_are_checked(connector: str, keys: dict[str, Any], expected: str) -> None:
    assert error(table(connector, **keys)).startswith(expected)


def test_limits_refuse_unknown_keys_too() -> None:
    assert error({"limits": {"max_file_byte": 1}, "connections": {}}) == "limits.max_file_byte: unknown key"


def test_the_connector_receives_its_decoded_settings() -> None:
    data = table(cv_upload="link", cv_link_ttl_days=2, form_rate_limit=3, indeed_jobs={"REQ-1": 2001})
    connection = parse_config(data, {"ACME_KEY": "k"}).connections["acme"]
    assert connection.settings == FactorialSettings(cv_upload="link", cv_link_ttl_days=2.0)
    assert connection.inbound.form_rate_limit == 3 and connection.inbound.indeed_jobs == {"REQ-1": 2001}
    connector = ConnectorPool(parse_config(data, {"ACME_KEY": "k"}), httpx.AsyncClient()).get("acme")
    assert isinstance(connector, FactorialConnector) and connector.settings.cv_upload == "link"
    assert connector.cv_link_ttl_s == 2 * 86400
    flatchr = parse_config(
        table("flatchr", company_id="c", offerer_id=75, source_by_origin={"indeed": {"offerer_id": 8}, "form": "none"}),
        {"ACME_KEY": "k"},
    ).connections["acme"]
    assert flatchr.settings == FlatchrSettings(
        company_id="c", offerer_id=75, source_by_origin={"indeed": SourceRule(offerer_id=8), "form": "none"}
    )


def test_a_raw_dict_is_no_connector_settings() -> None:
    spec = ConnectionSpec("acme", "factorial", "https://ats.example", "k", {"cv_upload": "link"})
    with pytest.raises(TypeError, match="FactorialSettings"):
        FactorialConnector(spec, httpx.AsyncClient())  # type: ignore[arg-type]


def test_no_connector_setting_shadows_a_connection_key() -> None:
    for name in CONNECTORS:
        assert not CONNECTION_KEYS & set(connector_class(name).settings_type.__struct_fields__), name


def test_the_demo_config_parses() -> None:
    assert set(demo_config({}).connections) == {f"{name}-sandbox" for name in CONNECTORS}


class _AnySecret(Mapping[str, str]):
    """Every variable a documented example names is set."""

    def __getitem__(self, key: str) -> str:
        return "whsec_c2VjcmV0"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _documented_tables() -> Iterator[tuple[str, str]]:
    for path in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]:
        for block in re.findall(r"```toml\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
            if "[connections." in block:
                yield path.relative_to(REPO).as_posix(), block
    yield "deploy/applyrelay.example.toml", (REPO / "deploy" / "applyrelay.example.toml").read_text()


@pytest.mark.parametrize(("where", "text"), list(_documented_tables()))
def test_every_documented_connection_table_is_valid(where: str, text: str) -> None:
    import tomllib

    parse_config(tomllib.loads(text), _AnySecret(), source=where)


BAD_FILE = '[connections.acme]\nconnector = "factorial"\nbase_url = "https://x.example"\n'
BAD_FILE += 'credentials_env = "ACME_KEY"\nconcurency = 3\n'


@pytest.mark.parametrize("command", [["worker"], ["web", "--port", "1"], ["run", "--port", "1"]])
def test_a_bad_file_stops_the_command_before_anything_starts(tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "applyrelay.toml"
    config.write_text(BAD_FILE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPLYRELAY_", "REDIS_"))}
    env.update({"PYTHONPATH": str(REPO), "APPLYRELAY_CONFIG": str(config), "ACME_KEY": "k"})
    if command[0] != "run":
        env["REDIS_URL"] = "redis://127.0.0.1:1/0"  # nothing listens: a start would fail differently
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *command], cwd=tmp_path, env=env, capture_output=True, timeout=60
    )
    assert done.returncode != 0
    assert b"connections.acme.concurency: unknown key" in done.stderr, done.stderr
    assert not (tmp_path / "var").exists()  # `run` did not start its embedded Redis
    assert b"embedded Redis" not in done.stdout
