"""The connect page: `GET /connect/{token}` shows the connector's Connection Guide and
Prerequisites and asks for the credentials; `POST` checks them and makes the connection."""

from __future__ import annotations

from typing import Any

from app.runtime import Runtime


def route_handlers(runtime: Runtime) -> list[Any]:
    return []
