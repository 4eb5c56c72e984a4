"""Bearer-token guards for the admin API: who is calling (for the audit log) and with which scopes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from app.tokens import ApiToken, find_token

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], None]


def current_token(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiToken | None:
    """The token presented as `Authorization: Bearer ...` (or set by another auth layer, such as
    the dashboard's session, in `connection.scope["applyrelay_token"]`)."""
    preset = connection.scope.get("applyrelay_token")
    if isinstance(preset, ApiToken):
        return preset
    scheme, _, presented = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return None
    return find_token(connection.app.state.tokens, presented)


def require_scope(scope: str) -> Guard:
    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        token = current_token(connection)
        if token is None:
            raise NotAuthorizedException("a valid admin token is required (Authorization: Bearer <token>)")
        if scope not in token.scopes:
            raise PermissionDeniedException(f"this token lacks the {scope!r} scope")

    return guard


admin_guard = require_scope("admin")
retry_guard = require_scope("retry")
