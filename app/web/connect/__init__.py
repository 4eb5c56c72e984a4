"""The hosted connect page an employer opens from a connect link, and Factorial's OAuth flow
(docs/connections.md): `pages.py` asks for and checks the credentials, `oauth.py` runs
"Connect with Factorial"."""

from __future__ import annotations

from litestar import Router

from app.runtime import Runtime
from app.web.connect import oauth, pages


def router(runtime: Runtime) -> Router:
    return Router(path="/", route_handlers=[*pages.route_handlers(runtime), *oauth.route_handlers(runtime)])
