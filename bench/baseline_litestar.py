"""Baseline 1 for P1: a bare Litestar endpoint that validates the same msgspec Struct
(app.models.ApplicationIn) and answers 202 — no Redis, no file checks, no auth."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request, Response, post

from app.core.model import ApplicationIn

_decoder = msgspec.json.Decoder(ApplicationIn)


@post("/v1/applications")
async def accept(request: Request[Any, Any, Any]) -> Response[Any]:
    application = _decoder.decode(await request.body())
    return Response({"status": "queued", "job_id": application.application.job_id}, status_code=202)


app = Litestar([accept], request_max_body_size=40_000_000, openapi_config=None, logging_config=None)
