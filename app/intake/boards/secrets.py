"""Per-connection secrets of the inbound routes, compared in constant time: a file connection's
from the environment variables it names, a connection made through the API's from its sealed
secrets, only those valid now (docs/connections.md, "Inbound secrets"). A route with no secret
configured answers 404, never accepts unsigned."""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Sequence
from typing import Literal

from app.config import INBOUND_SETTING, Connection
from app.core.problems import Problem


def configured_secrets(
    connection: Connection,
    setting: Literal["indeed_secret_env", "webhook_secret_env", "form_token_env", "hellowork_secret_env"],
    *,
    several: bool,
    now: float | None = None,
) -> list[str]:
    """The secret(s) for an inbound route. A file connection's: the environment variable named by
    `setting` (`several`: comma-separated values, for key rotation). A connection made through the
    API's: its secrets of that kind still valid at `now`, newest first (several during a rotation's
    grace, whatever `several`: the first one is the one to sign with). Empty when none: the route
    then answers 404, never accepts unsigned."""
    if connection.origin == "api":
        at = time.time() if now is None else now
        return [s.value for s in connection.inbound_secrets.get(INBOUND_SETTING[setting], ()) if s.valid(at)]
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
