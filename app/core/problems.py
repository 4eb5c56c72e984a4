"""The one refusal type: a `Problem` is raised anywhere below the web layer and leaves as RFC 9457
problem+json (app/web/problems.py renders it once), naming every field at fault.

`code` is a Kombo-style machine code where one fits (`PLATFORM.INPUT_INVALID`, ...): see the
README's error codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Kombo's error codes that apply to an ATS relay (https://docs.kombo.dev/guides/errors), the values
# a problem's `code` may take: the OpenAPI document's enum on it (app/web/openapi.py) and the
# README's list. Add to it; a code used in a `Problem` must be listed here.
CODES: tuple[str, ...] = (
    "PLATFORM.RATE_LIMIT_EXCEEDED",
    "PLATFORM.CONCURRENCY_LIMIT_EXCEEDED",
    "PLATFORM.INTEGRATION_NOT_FOUND",
    "PLATFORM.INPUT_INVALID",
    "PLATFORM.UNKNOWN_ERROR",
    "PLATFORM.AUTHENTICATION_INVALID",
    "PLATFORM.TASK_TIMED_OUT",
    "INTEGRATION.AUTHENTICATION_INVALID",
    "INTEGRATION.ACTION_NOT_AVAILABLE",
    "REMOTE.SERVICE_UNAVAILABLE",
    "REMOTE.RATE_LIMIT_EXCEEDED",
    "REMOTE.INPUT_INVALID",
    "REMOTE.UNKNOWN_HTTP_ERROR",
    "ATS.JOB_CLOSED",
    "ATS.APPLICATION_ALREADY_EXISTS",
    # The relay's own, where none of Kombo's fits (README, "Error codes").
    "ATS.JOB_NOT_FOUND",
    "PLATFORM.NOT_FOUND",
    "PLATFORM.FORBIDDEN",
    "PLATFORM.METHOD_NOT_ALLOWED",
    "PLATFORM.REQUEST_TIMEOUT",
    "PLATFORM.CONFLICT",
    "PLATFORM.PAYLOAD_TOO_LARGE",
    "PLATFORM.UNSUPPORTED_MEDIA_TYPE",
    "PLATFORM.NOT_SUPPORTED",
    "PLATFORM.UNAVAILABLE",
    "PLATFORM.LIMIT_EXCEEDED",
    "PLATFORM.IDEMPOTENCY_KEY_REUSED",
    "PLATFORM.FILTER_REQUIRED",
    # An attachment refused for what it is (app/core/files.py; README, "Attachments").
    "FILE.ARCHIVE",
    "FILE.ARCHIVE_BOMB",
    "FILE.ARCHIVE_PATH",
    "FILE.BINARY_TEXT",
    "FILE.DAMAGED",
    "FILE.EMPTY",
    "FILE.EXECUTABLE",
    "FILE.MACROS",
    "FILE.SCRIPT",
    "FILE.TYPE_MISMATCH",
    "FILE.TYPE_NOT_ALLOWED",
    "FILE.TYPE_REFUSED",
)


@dataclass
class FieldError:
    field: str
    message: str


@dataclass
class Problem(Exception):
    status: int
    title: str
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.detail)

    def __str__(self) -> str:
        return self.detail

    @classmethod
    def invalid(cls, field_path: str, message: str, status: int = 422, title: str = "Invalid application") -> Problem:
        """One field at fault."""
        return cls(status, title, f"{field_path}: {message}", [FieldError(field_path, message)])

    @classmethod
    def malformed_json(cls, why: str = "") -> Problem:
        """A body that is not JSON: the field at fault is the whole body, `$` (one nested past the
        decoder's depth is a 422 over our bound, app/web/problems.py). `why`: the decoder's own
        words, which quote no value."""
        detail = f"the body is not valid JSON ({why})" if why else "the body is not valid JSON"
        errors = [FieldError("$", why or "not valid JSON")]
        return cls(400, "Malformed JSON", detail, errors, code="PLATFORM.INPUT_INVALID")
