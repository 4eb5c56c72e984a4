"""The one refusal type: a `Problem` is raised anywhere below the web layer and leaves as RFC 9457
problem+json (app/web/problems.py renders it once), naming every field at fault.

`code` is a Kombo-style machine code where one fits (`PLATFORM.INPUT_INVALID`, ...): see the
README's error codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
