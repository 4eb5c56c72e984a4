"""The inbound routes' secrets of a connection made through the API: listed, rotated with a grace
period, revoked (docs/connections.md)."""

from __future__ import annotations

from litestar import Router

from app.runtime import Runtime


def router(runtime: Runtime) -> Router:
    return Router(path="/", route_handlers=[])
