"""Process settings, all from the environment (secrets never from files in the repo)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from app.config import Config, ConfigError, demo_config, load_config
from app.tokens import SCOPES, ApiToken, TokenConfigError, parse_tokens

VAR_DIR = Path(os.environ.get("APPLYRELAY_VAR_DIR", "var"))


@dataclass
class Settings:
    redis_url: str
    config: Config
    tokens: list[ApiToken] = field(repr=False, default_factory=list)
    job_timeout_s: float = 45.0
    keep_files_after_delivery: bool = False
    dev: bool = False
    public_url: str | None = None  # where ATS users can reach GET /v1/files/{token}
    link_secret: str | None = field(repr=False, default=None)

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


def load_settings(redis_url: str | None = None, *, dev: bool | None = None) -> Settings:
    env = os.environ
    dev = (not env.get("APPLYRELAY_CONFIG")) if dev is None else dev
    config_path = env.get("APPLYRELAY_CONFIG")
    config = load_config(config_path) if config_path else demo_config()
    try:
        tokens = parse_tokens(env)
    except TokenConfigError as exc:
        raise ConfigError(str(exc)) from None
    if not any(t.name == "admin" for t in tokens):
        if dev:
            tokens.append(ApiToken("admin", _dev_admin_token(), SCOPES))
        elif not tokens:
            raise ConfigError("APPLYRELAY_ADMIN_TOKEN: must be set (the dashboard and admin API need it)")
    url = redis_url or env.get("REDIS_URL")
    if not url:
        raise ConfigError("REDIS_URL: not set (use `applyrelay run` for an embedded Redis)")
    try:
        job_timeout = float(env.get("APPLYRELAY_JOB_TIMEOUT_S", "45"))
    except ValueError:
        raise ConfigError("APPLYRELAY_JOB_TIMEOUT_S: must be a number of seconds") from None
    return Settings(
        redis_url=url, config=config, tokens=tokens, job_timeout_s=job_timeout,
        keep_files_after_delivery=env.get("APPLYRELAY_KEEP_FILES", "0") == "1", dev=dev,
        public_url=env.get("APPLYRELAY_PUBLIC_URL"), link_secret=env.get("APPLYRELAY_LINK_SECRET"),
    )
