"""Per-connection secrets of the inbound routes: read from the environment variables the
connection names, compared in constant time. A route with no secret configured answers 404,
never accepts unsigned."""

from __future__ import annotations

import hmac
import os
from collections.abc import Sequence
from typing import Literal

from app.config import Connection
from app.core.problems import Problem


def configured_secrets(
    connection: Connection,
    setting: Literal["indeed_secret_env", "webhook_secret_env", "form_token_env", "hellowork_secret_env"],
    *,
    several: bool,
) -> list[str]:
    """The secret(s) for an inbound route: the environment variable named by `setting`.
    Empty when the setting or the variable is missing: the route then answers 404, never
    accepts unsigned. `several`: comma-separated values, for key rotation."""
    name: str | None = getattr(connection.inbound, setting)
    if not name:
        return []
    value = os.environ.get(name, "")
    if not several:
        return [value] if value else []
    return [v.strip() for v in value.split(",") if v.strip()]


def not_configured(route: str) -> Problem:
    return Problem(404, "Not found", f"no {route} intake is configured for this connection")


def matches_any(presented: str, secrets: Sequence[str]) -> bool:
    """Constant-time comparison against every configured secret (no early exit)."""
    results = [hmac.compare_digest(presented.encode(), s.encode()) for s in secrets]
    return any(results)
