"""The Litestar application: routes, problem+json errors, shared runtime in app.state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Litestar, Router

from app.blobs.capacity import refuse_evicting_policy
from app.intake.accept import Intake
from app.runtime import Runtime
from app.web.api import actions, connections, deliveries, files, inbound, privacy
from app.web.api.applications import api_router
from app.web.dashboard import views as dashboard
from app.web.problems import EXCEPTION_HANDLERS


def _max_body(runtime: Runtime) -> int:
    """Base64 grows files by 4/3; leave room for the JSON around them."""
    per_connection = [c.limits.max_application_bytes for c in runtime.config.connections.values()]
    largest = max(per_connection or [runtime.config.limits.max_application_bytes])
    return largest * 4 // 3 + 1_000_000


# Feature routers, each `router(runtime) -> Router`; one line per feature, imported (explicit
# registration: the import contract in tests/unit/test_layers.py sees every route module).
ROUTER_FACTORIES: list[Callable[[Runtime], Router]] = [
    actions.router,
    connections.router,
    files.router,
    inbound.router,
    deliveries.router,
    dashboard.router,
    privacy.router,
]


def feature_routers(runtime: Runtime) -> list[Any]:
    return [make(runtime) for make in ROUTER_FACTORIES]


def create_app(runtime: Runtime, *, extra_routers: list[Any] | None = None) -> Litestar:
    intake = Intake(runtime.store, runtime.config, runtime.connectors.get, pseudonyms=runtime.pseudonyms)

    async def on_startup(_: Litestar) -> None:
        await refuse_evicting_policy(runtime.redis)  # an evicted delivery is a lost application

    async def on_shutdown(_: Litestar) -> None:
        await runtime.close()

    app = Litestar(
        route_handlers=[api_router(), *feature_routers(runtime), *(extra_routers or [])],
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=[on_startup],
        on_shutdown=[on_shutdown],
        debug=False,
        logging_config=None,
        openapi_config=None,
    )
    app.state.runtime = runtime
    app.state.intake = intake
    app.state.max_body_bytes = _max_body(runtime)
    app.state.tokens = list(runtime.settings.tokens)
    app.state.intake_tokens = runtime.settings.intake_tokens
    return app
