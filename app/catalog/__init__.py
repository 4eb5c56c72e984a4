"""The catalog: what the relay reads from an ATS (jobs, screening questions, stages, sources),
cached in Redis for every process, one ATS call per key at a time (docs/catalog.md).

`Catalog` (service.py) is the one entry point: the read routes (app/web/api/catalog.py), the CLI
(app/cli/jobs.py) and intake's answer check go through it, so they share one cache and one
single flight. It lives on the `Runtime` as `runtime.catalog`.
"""

from __future__ import annotations

from app.catalog.ids import INPUT_INVALID, parse_job_id
from app.catalog.service import (
    ACTION_NOT_AVAILABLE,
    AUTHENTICATION_INVALID,
    INTEGRATION_NOT_FOUND,
    JOB_NOT_FOUND,
    SERVICE_UNAVAILABLE,
    Cached,
    Catalog,
    CatalogUnavailable,
)

__all__ = [
    "ACTION_NOT_AVAILABLE",
    "AUTHENTICATION_INVALID",
    "INPUT_INVALID",
    "INTEGRATION_NOT_FOUND",
    "JOB_NOT_FOUND",
    "SERVICE_UNAVAILABLE",
    "Cached",
    "Catalog",
    "CatalogUnavailable",
    "parse_job_id",
]
