"""Connect with Factorial: the authorization-code flow started from a connect link, its
callback exchanging the code, the tokens kept sealed per connection (app/connections/oauth.py)."""

from __future__ import annotations

from typing import Any

from app.runtime import Runtime


def route_handlers(runtime: Runtime) -> list[Any]:
    return []
