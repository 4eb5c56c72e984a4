"""Bearer-token guard for the admin API (constant-time comparison against every known token)."""

from __future__ import annotations

import hmac
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler


def token_name(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The name of the admin token presented (header `Authorization: Bearer ...`), or None."""
    tokens: dict[str, str] = connection.app.state.admin_tokens
    header = connection.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return None
    found = None
    for name, token in tokens.items():
        if hmac.compare_digest(presented.encode(), token.encode()):
            found = name
    return found


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if token_name(connection) is None:
        raise NotAuthorizedException("a valid admin token is required (Authorization: Bearer <token>)")
