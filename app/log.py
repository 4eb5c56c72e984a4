"""structlog JSON logs. Events carry ids, statuses and timings only: the PII filter below is a
second line of defence that drops any key named like personal data, should one ever be bound."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

PII_KEYS = frozenset(
    {
        "first_name",
        "last_name",
        "name",
        "email",
        "email_address",
        "phone",
        "phone_number",
        "answer",
        "answers",
        "data",
        "body",
        "content",
        "candidate",
        "file",
        "bytes",
    }
)


def drop_pii(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    for key in PII_KEYS & event.keys():
        event[key] = "[redacted]"
    return event


def configure(level: str = "INFO", stream: Any = None) -> None:
    logging.basicConfig(format="%(message)s", stream=stream or sys.stdout, level=level, force=True)
    for noisy in ("httpx", "httpcore", "arq.worker", "arq.jobs", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            drop_pii,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
