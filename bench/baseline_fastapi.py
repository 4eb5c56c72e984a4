"""Baseline 2 for P1: the same intake as FastAPI + Pydantic + arq, kept small and fair.

It does what the relay's intake does in kind: bearer-token check, validation of the same shape
(Pydantic models mirroring app.models), base64 check of the CV, idempotency (arq's job id) and a
durable enqueue of the whole application in Redis — then 202.
"""

from __future__ import annotations

import base64
import hmac
import os
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from arq import create_pool
from arq.connections import RedisSettings
from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

TOKEN = os.environ.get("APPLYRELAY_ADMIN_TOKEN", "bench-admin-token")
Str200 = Annotated[str, Field(min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Location(Strict):
    city: str | None = Field(None, max_length=200)
    country: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    zip_code: str | None = Field(None, max_length=20)


class Candidate(Strict):
    first_name: Str200
    last_name: Str200
    email_address: Annotated[str, Field(max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")]
    phone_number: str | None = Field(None, pattern=r"^[+0-9 ().\-/]{3,40}$")
    company: str | None = Field(None, max_length=200)
    location: Location | None = None
    gender: Literal["MALE", "FEMALE", "OTHER"] | None = None
    availability_date: str | None = None


class JobRef(Strict):
    job_id: Str200
    stage_id: str | None = None


class Attachment(Strict):
    name: Annotated[str, Field(min_length=1, max_length=255)]
    type: Literal["CV", "COVER_LETTER", "OTHER"]
    content_type: str | None = None
    data: str | None = None
    data_url: str | None = None


class Source(Strict):
    id: str | None = None
    name: str | None = None
    unified_key: str | None = None


class Consent(Strict):
    given: bool
    expires_at: str | None = None


class Application(Strict):
    connection_id: Str200
    candidate: Candidate
    application: JobRef
    screening_question_answers: list[dict[str, Any]] = []
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    source: Source | None = None
    gdpr_consent: Consent | None = None
    remote_fields: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
    app.state.arq = await create_pool(RedisSettings.from_dsn(os.environ["REDIS_URL"]))
    yield
    await app.state.arq.aclose()


app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/v1/applications", status_code=202)
async def accept(
    body: Application, authorization: str = Header(""), idempotency_key: str = Header(...)
) -> JSONResponse:
    if not hmac.compare_digest(authorization.encode(), f"Bearer {TOKEN}".encode()):
        raise HTTPException(401)
    for attachment in body.attachments:
        if attachment.data is not None:
            base64.b64decode(attachment.data, validate=True)
    job = await app.state.arq.enqueue_job("deliver", body.model_dump(exclude_none=True), _job_id=idempotency_key)
    return JSONResponse({"id": idempotency_key, "status": "queued", "duplicate": job is None}, status_code=202)
