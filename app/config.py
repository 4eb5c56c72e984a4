"""Configuration: a TOML file of connections, secrets only from the environment.

    [limits]                      # optional, service-wide defaults
    max_file_bytes = 10_000_000
    max_application_bytes = 25_000_000

    [connections.acme]
    connector = "factorial"        # factorial | flatchr | otys | laura
    base_url = "https://api.factorialhr.com"
    credentials_env = "ACME_FACTORIAL_API_KEY"   # the *name* of the variable holding the secret
    timeout_s = 20                 # per HTTP call, kept below the worker's job timeout
    concurrency = 10               # in-flight deliveries for this connection, across workers
    rate_per_s = 5                 # optional: delivery runs started per second, across workers
    status_callback_url = "https://board.example/applyrelay/status"   # optional: ATS status changes
    status_callback_secret_env = "ACME_STATUS_WEBHOOK_SECRET"          # its whsec_... signing secret
    retry_schedule = [15, 60, 300, 1800, 7200, 21600, 43200]
    api_version = "2026-07-01"     # any other key is a connector setting

A bad file fails at start with `ConfigError` naming the key at fault.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from connectors import CONNECTORS
from connectors.base import ConnectionSpec

DEFAULT_SCHEDULE = (15.0, 60.0, 300.0, 1800.0, 7200.0, 21600.0, 43200.0)
MB = 1_000_000


class ConfigError(ValueError):
    """A configuration problem; the message names the key at fault."""


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 10 * MB
    max_application_bytes: int = 25 * MB


@dataclass(frozen=True)
class RetryPolicyConfig:
    schedule: tuple[float, ...] = DEFAULT_SCHEDULE
    jitter: float = 0.2
    slow_floor_s: float = 60.0  # 429 and timeouts wait at least this long
    retry_after_cap_s: float = 6 * 3600.0

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1


@dataclass(frozen=True)
class Connection:
    id: str
    connector: str
    base_url: str
    credentials: str = field(repr=False)
    credentials_env: str
    timeout_s: float = 20.0
    concurrency: int = 10
    rate_per_s: float | None = None
    status_callback_url: str | None = None
    status_callback_secret: str | None = field(default=None, repr=False)
    retry: RetryPolicyConfig = RetryPolicyConfig()
    limits: Limits = Limits()
    fetch_allow_hosts: tuple[str, ...] = ()
    fetch_allow_http: bool = False
    settings: Mapping[str, Any] = field(default_factory=dict)

    def spec(self) -> ConnectionSpec:
        return ConnectionSpec(
            id=self.id,
            connector=self.connector,
            base_url=self.base_url.rstrip("/"),
            credentials=self.credentials,
            settings=self.settings,
            timeout_s=self.timeout_s,
        )


@dataclass(frozen=True)
class Config:
    connections: Mapping[str, Connection]
    limits: Limits = Limits()
    source: str = "<built-in>"


_COMMON_KEYS = {
    "connector",
    "base_url",
    "credentials_env",
    "timeout_s",
    "concurrency",
    "retry_schedule",
    "retry_jitter",
    "max_file_bytes",
    "max_application_bytes",
    "fetch_allow_hosts",
    "fetch_allow_http",
    "rate_per_s",
    "status_callback_url",
    "status_callback_secret_env",
}


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{key}: must be a positive integer")
    return value


def _positive_number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{key}: must be a positive number")
    return float(value)


def _limits(table: Mapping[str, Any], where: str, base: Limits) -> Limits:
    return Limits(
        max_file_bytes=_positive_int(table.get("max_file_bytes", base.max_file_bytes), f"{where}.max_file_bytes"),
        max_application_bytes=_positive_int(
            table.get("max_application_bytes", base.max_application_bytes), f"{where}.max_application_bytes"
        ),
    )


def _connection(
    conn_id: str, table: Any, env: Mapping[str, str], limits: Limits, secret_defaults: Mapping[str, str]
) -> Connection:
    where = f"connections.{conn_id}"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    connector = table.get("connector")
    if connector not in CONNECTORS:
        raise ConfigError(f"{where}.connector: must be one of {', '.join(sorted(CONNECTORS))}, got {connector!r}")
    base_url = table.get("base_url")
    if (
        not isinstance(base_url, str)
        or urlsplit(base_url).scheme not in ("http", "https")
        or not urlsplit(base_url).netloc
    ):
        raise ConfigError(f"{where}.base_url: must be an http(s) URL")
    cred_env = table.get("credentials_env")
    if not isinstance(cred_env, str) or not cred_env:
        raise ConfigError(f"{where}.credentials_env: must name the environment variable holding the secret")
    credentials = env.get(cred_env) or secret_defaults.get(cred_env)
    if not credentials:
        raise ConfigError(f"{where}.credentials_env: environment variable {cred_env} is not set")
    schedule = table.get("retry_schedule", list(DEFAULT_SCHEDULE))
    if not isinstance(schedule, list) or not schedule:
        raise ConfigError(f"{where}.retry_schedule: must be a non-empty list of seconds")
    retry = RetryPolicyConfig(
        schedule=tuple(_positive_number(s, f"{where}.retry_schedule") for s in schedule),
        jitter=float(table.get("retry_jitter", 0.2)),
    )
    if not 0 <= retry.jitter < 1:
        raise ConfigError(f"{where}.retry_jitter: must be between 0 and 1")
    allow = table.get("fetch_allow_hosts", [])
    if not isinstance(allow, list) or not all(isinstance(h, str) for h in allow):
        raise ConfigError(f"{where}.fetch_allow_hosts: must be a list of host names")
    timeout_s = _positive_number(table.get("timeout_s", 20), f"{where}.timeout_s")
    if timeout_s > 50:
        raise ConfigError(f"{where}.timeout_s: must stay below the worker's job timeout (50 s at most)")
    rate = table.get("rate_per_s")
    callback_url, callback_secret = _status_callback(table, where, env)
    return Connection(
        id=conn_id,
        connector=connector,
        base_url=base_url,
        credentials=credentials,
        credentials_env=cred_env,
        timeout_s=timeout_s,
        concurrency=_positive_int(table.get("concurrency", 10), f"{where}.concurrency"),
        rate_per_s=None if rate is None else _positive_number(rate, f"{where}.rate_per_s"),
        status_callback_url=callback_url,
        status_callback_secret=callback_secret,
        retry=retry,
        limits=_limits(table, where, limits),
        fetch_allow_hosts=tuple(allow),
        fetch_allow_http=bool(table.get("fetch_allow_http", False)),
        settings={k: v for k, v in table.items() if k not in _COMMON_KEYS},
    )


def _status_callback(table: Mapping[str, Any], where: str, env: Mapping[str, str]) -> tuple[str | None, str | None]:
    """Both or neither: the URL ATS status changes are posted to, and the env var of its secret."""
    url, secret_env = table.get("status_callback_url"), table.get("status_callback_secret_env")
    if url is None and secret_env is None:
        return None, None
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        raise ConfigError(f"{where}.status_callback_url: must be an http(s) URL (with status_callback_secret_env)")
    if not isinstance(secret_env, str) or not secret_env:
        raise ConfigError(f"{where}.status_callback_secret_env: must name the variable holding the whsec_ secret")
    secret = env.get(secret_env)
    if not secret:
        raise ConfigError(f"{where}.status_callback_secret_env: environment variable {secret_env} is not set")
    return url, secret


def parse_config(
    data: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    *,
    source: str = "<dict>",
    secret_defaults: Mapping[str, str] | None = None,
) -> Config:
    env = os.environ if env is None else env
    unknown = set(data) - {"connections", "limits"}
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown top-level key (expected connections, limits)")
    limits = _limits(data.get("limits", {}), "limits", Limits())
    tables = data.get("connections", {})
    if not isinstance(tables, dict):
        raise ConfigError("connections: must be a table of [connections.<id>] tables")
    connections = {cid: _connection(cid, t, env, limits, secret_defaults or {}) for cid, t in tables.items()}
    return Config(connections=connections, limits=limits, source=source)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"APPLYRELAY_CONFIG: file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_config(raw, env, source=str(path))


DEMO_SANDBOX_KEY = "sandbox"


def demo_config(env: Mapping[str, str] | None = None) -> Config:
    """The built-in development config: one connection per emulator on its default port.

    The sandbox key defaults to the emulators' public default ("sandbox") because these
    connections only ever reach the local emulators; real connections have no defaults."""
    env = os.environ if env is None else env
    defaults = {
        "APPLYRELAY_SANDBOX_FACTORIAL_KEY": DEMO_SANDBOX_KEY,
        "APPLYRELAY_SANDBOX_FLATCHR_KEY": DEMO_SANDBOX_KEY,
        "APPLYRELAY_SANDBOX_OTYS_KEY": DEMO_SANDBOX_KEY,
        "APPLYRELAY_SANDBOX_LAURA_KEY": DEMO_SANDBOX_KEY,
    }
    ports = {"factorial": 8091, "flatchr": 8092, "otys": 8093, "laura": 8094}
    settings: dict[str, dict[str, Any]] = {"flatchr": {"company_id": "Wy3EOp2NP3p1KMq8", "offerer_id": 75}}
    data = {
        "connections": {
            f"{name}-sandbox": {
                "connector": name,
                "base_url": env.get(f"APPLYRELAY_SANDBOX_{name.upper()}_URL", f"http://127.0.0.1:{port}"),
                "credentials_env": f"APPLYRELAY_SANDBOX_{name.upper()}_KEY",
                **settings.get(name, {}),
            }
            for name, port in ports.items()
        }
    }
    return parse_config(data, env, source="<built-in demo>", secret_defaults=defaults)
