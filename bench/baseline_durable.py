"""P1's durable limit (issue 21): a bare Litestar endpoint that writes the raw body to Redis with
one SET (the bench's Redis runs with AOF, everysec) before it answers 202 — the least any intake
that means "accepted is durable" must do. No validation, no auth, no idempotency, no queue."""

from __future__ import annotations

import os
import uuid
from typing import Any

from litestar import Litestar, Request, Response, post
from redis.asyncio import Redis

_redis: dict[str, Redis] = {}


async def connect() -> None:
    _redis["client"] = Redis.from_url(os.environ["REDIS_URL"])


async def close() -> None:
    await _redis["client"].aclose()


@post("/v1/applications")
async def accept(request: Request[Any, Any, Any]) -> Response[Any]:
    key = request.headers.get("idempotency-key") or uuid.uuid4().hex
    await _redis["client"].set("raw:" + key, await request.body())
    return Response({"status": "queued", "id": key}, status_code=202)


app = Litestar(
    [accept],
    on_startup=[connect],
    on_shutdown=[close],
    request_max_body_size=40_000_000,
    openapi_config=None,
    logging_config=None,
)
