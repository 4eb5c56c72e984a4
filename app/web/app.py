"""The Litestar application: routes, problem+json errors, shared runtime in app.state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from litestar import Litestar, Router

from app.intake.accept import Intake
from app.runtime import Runtime
from app.web import connect
from app.web.api import (
    actions,
    catalog,
    connect_links,
    connection_secrets,
    connections,
    deliveries,
    destinations,
    files,
    hellowork,
    inbound,
    indeed_questions,
    privacy,
)
from app.web.api.applications import api_router
from app.web.apply import views as apply_pages
from app.web.dashboard import views as dashboard
from app.web.deps import answer_options
from app.web.openapi import config as openapi_config
from app.web.problems import EXCEPTION_HANDLERS

# The API's version in the OpenAPI document (/schema): the /v1 routes' contract, not the package's.
API_VERSION = "1.0"


def _max_body(runtime: Runtime) -> int:
    """Base64 grows files by 4/3; leave room for the JSON around them."""
    per_connection = [c.limits.max_application_bytes for c in runtime.config.connections.values()]
    largest = max(per_connection or [runtime.config.limits.max_application_bytes])
    return largest * 4 // 3 + 1_000_000


# Feature routers, each `router(runtime) -> Router`; one line per feature, imported (explicit
# registration: the import contract in tests/unit/test_layers.py sees every route module).
ROUTER_FACTORIES: list[Callable[[Runtime], Router]] = [
    actions.router,
    apply_pages.router,
    catalog.router,
    connections.router,
    connection_secrets.router,
    connect_links.router,
    connect.router,
    files.router,
    inbound.router,
    indeed_questions.router,
    hellowork.router,
    deliveries.router,
    destinations.router,
    dashboard.router,
    privacy.router,
]


# Pages for people, not the API: left out of the OpenAPI document (/schema).
NOT_IN_SCHEMA: set[Callable[[Runtime], Router]] = {dashboard.router, apply_pages.router, connect.router}  # HTML


def feature_routers(runtime: Runtime) -> list[Any]:
    return [_hidden(make(runtime)) if make in NOT_IN_SCHEMA else make(runtime) for make in ROUTER_FACTORIES]


def _hidden(router: Router) -> Router:
    return Router(path="/", route_handlers=[router], include_in_schema=False)


def create_app(runtime: Runtime, *, extra_routers: list[Any] | None = None) -> Litestar:
    intake = Intake(
        runtime.store, runtime.config, runtime.connectors.get, pseudonyms=runtime.pseudonyms, catalog=runtime.catalog
    )

    async def on_startup(_: Litestar) -> None:
        await runtime.start()  # the API's connections (docs/connections.md); refuses an evicting Redis

    async def on_shutdown(_: Litestar) -> None:
        await runtime.close()

    app = Litestar(
        route_handlers=[api_router(), *feature_routers(runtime), *(extra_routers or [])],
        exception_handlers=EXCEPTION_HANDLERS,
        on_startup=[on_startup],
        before_request=answer_options,  # OPTIONS lists every method of a path
        on_shutdown=[on_shutdown],
        debug=False,
        logging_config=None,
        openapi_config=openapi_config(API_VERSION),
    )
    app.state.runtime = runtime
    app.state.intake = intake
    app.state.max_body_bytes = _max_body(runtime)
    app.state.tokens = list(runtime.settings.tokens)
    app.state.intake_tokens = runtime.settings.intake_tokens
    return app
