"""Settings (app/settings.py): every APPLYRELAY_* variable is read there, once, and a bad value
stops the start naming the variable."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from app.config import ConfigError
from app.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
BASE_ENV = {"APPLYRELAY_DATA_KEY": "dGVzdC1kYXRhLWtleS0wMDAwMDAwMDAwMDAwMDAwMDA", "REDIS_URL": "redis://127.0.0.1:1"}


def _environment_reads(path: Path) -> list[tuple[int, str]]:
    """(line, variable) of every `os.environ[...]`, `os.environ.get(...)`, `os.getenv(...)` or
    `env.get(...)` of a literal APPLYRELAY_* name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        name: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr in {"get", "getenv", "pop", "setdefault"}:
                name = node.args[0]
        elif isinstance(node, ast.Subscript):
            name = node.slice
        if isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value.startswith("APPLYRELAY_"):
            found.append((node.lineno, name.value))
    return found


def test_applyrelay_variables_are_read_only_in_settings() -> None:
    reads = {
        str(path.relative_to(REPO)): lines
        for path in sorted((REPO / "app").rglob("*.py"))
        if path.name != "settings.py" and (lines := _environment_reads(path))
    }
    assert reads == {}


def test_the_checker_sees_a_read(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('import os\nx = os.environ.get("APPLYRELAY_X")\ny = os.environ["APPLYRELAY_Y"]\n')
    assert _environment_reads(module) == [(2, "APPLYRELAY_X"), (3, "APPLYRELAY_Y")]


def test_the_operational_variables_land_in_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        **BASE_ENV,
        "APPLYRELAY_ADMIN_TOKEN": "admin-secret",
        "APPLYRELAY_INTAKE_TOKENS": "one,two",
        "APPLYRELAY_METRICS_PUBLIC": "1",
        "APPLYRELAY_DEGRADED_AFTER_S": "120",
        "APPLYRELAY_STATUS_SYNC_INTERVAL_S": "60",
        "APPLYRELAY_STATUS_SYNC_DAYS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("APPLYRELAY_CONFIG", raising=False)
    settings = load_settings(dev=False)
    assert settings.intake_tokens == ["one", "two"] and settings.metrics_public
    assert (settings.degraded_after_s, settings.status_sync_interval_s) == (120.0, 60.0)
    assert settings.status_sync_window_s == 2 * 86400.0 and settings.dev_generated == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [("APPLYRELAY_DEGRADED_AFTER_S", "soon"), ("APPLYRELAY_STATUS_SYNC_DAYS", "0"), ("APPLYRELAY_JOB_TIMEOUT_S", "-1")],
)
def test_a_bad_number_stops_the_start_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    for key, val in {**BASE_ENV, "APPLYRELAY_ADMIN_TOKEN": "admin-secret", name: value}.items():
        monkeypatch.setenv(key, val)
    with pytest.raises(ConfigError, match=name):
        load_settings(dev=False)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("relay.example.com", "scheme must be"),  # no scheme: every link would be relative
        ("ftp://relay.example.com", "scheme must be"),
        ("https://relay.example.com:99999", "port"),
        ("https://relay.example.com/?x=1", "no query or fragment"),
        ("https://relay.example.com/#top", "no query or fragment"),
        ("https://ops:pw@relay.example.com", "no credentials"),
        ("https://exam ple.com", "not a valid domain name"),
    ],
)
def test_a_public_url_no_link_could_be_built_on_stops_the_start(
    monkeypatch: pytest.MonkeyPatch, value: str, reason: str
) -> None:
    for key, val in {**BASE_ENV, "APPLYRELAY_ADMIN_TOKEN": "admin-secret", "APPLYRELAY_PUBLIC_URL": value}.items():
        monkeypatch.setenv(key, val)
    with pytest.raises(ConfigError, match=f"APPLYRELAY_PUBLIC_URL: .*{reason}"):
        load_settings(dev=False)


@pytest.mark.parametrize("value", ["https://relay.example.com", "http://127.0.0.1:8080/relay/"])
def test_a_public_url_is_kept_as_given(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    for key, val in {**BASE_ENV, "APPLYRELAY_ADMIN_TOKEN": "admin-secret", "APPLYRELAY_PUBLIC_URL": value}.items():
        monkeypatch.setenv(key, val)
    assert load_settings(dev=False).public_url == value


def test_the_blob_store_is_local_files_by_default_and_s3_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, val in {**BASE_ENV, "APPLYRELAY_ADMIN_TOKEN": "admin-secret"}.items():
        monkeypatch.setenv(key, val)
    for name in ("APPLYRELAY_BLOBS", "APPLYRELAY_CONFIG", "APPLYRELAY_S3_ENDPOINT", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    assert load_settings(dev=False).blobs.url.endswith("var/blobs") and load_settings(dev=False).blobs.kind == "file"
    for key, val in {
        "APPLYRELAY_BLOBS": "s3://cvs/relay",
        "APPLYRELAY_S3_ENDPOINT": "http://minio:9000",
        "AWS_REGION": "eu-west-3",
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }.items():
        monkeypatch.setenv(key, val)
    blobs = load_settings(dev=False).blobs
    assert (blobs.kind, blobs.endpoint, blobs.region, blobs.access_key_id) == (
        "s3",
        "http://minio:9000",
        "eu-west-3",
        "id",
    )
    assert "secret" not in repr(blobs)


@pytest.mark.parametrize("url", ["redis://x", "s3://", "/var/blobs"])
def test_a_bad_blob_store_url_stops_the_start(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    for key, val in {**BASE_ENV, "APPLYRELAY_ADMIN_TOKEN": "admin-secret", "APPLYRELAY_BLOBS": url}.items():
        monkeypatch.setenv(key, val)
    with pytest.raises(ConfigError, match="APPLYRELAY_BLOBS"):
        load_settings(dev=False)
