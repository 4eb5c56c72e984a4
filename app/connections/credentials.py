"""What each connector takes as credentials when a connection is made through the API or the
connect page (docs/connections.md; where to find each in the ATS: docs/connectors/<ats>.md).

    factorial   {"api_key"}  or  {"access_token", "refresh_token"}  (OAuth: the relay keeps the chain)
    flatchr     {"api_key"}
    otys        {"api_key"}   (the key OTYS's loginByUid takes)
    laura       {"token"}

Only which kind is set, and when, is ever shown again; the values are sealed (store.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Secret = Annotated[str, Meta(min_length=1, max_length=4096, pattern=r"^[\x21-\x7e]+$")]
CredentialKind = Literal["api_key", "oauth", "token"]


class CredentialsError(ValueError):
    """Credentials that do not fit the connector: `field` names the part at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class FactorialCredentials(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api_key: Secret | None = None
    access_token: Secret | None = None
    refresh_token: Secret | None = None


class ApiKeyCredentials(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    api_key: Secret


class TokenCredentials(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    token: Secret


Credentials = FactorialCredentials | ApiKeyCredentials | TokenCredentials

CREDENTIAL_TYPES: dict[str, type[Credentials]] = {
    "factorial": FactorialCredentials,
    "flatchr": ApiKeyCredentials,
    "otys": ApiKeyCredentials,
    "laura": TokenCredentials,
}


def decode_credentials(connector: str, raw: Any) -> Credentials:
    """`raw` (the request's `credentials` object) as the connector's type, or CredentialsError
    naming the field (``credentials.api_key``)."""
    type_ = CREDENTIAL_TYPES.get(connector)
    if type_ is None:
        raise CredentialsError("connector", f"unknown connector {connector!r}")
    if not isinstance(raw, dict):
        raise CredentialsError("credentials", "must be an object")
    try:
        creds = msgspec.convert(raw, type_, strict=True)
    except msgspec.ValidationError as exc:
        text = str(exc)
        path = text.rsplit("at `$.", 1)[1].rstrip("`") if "at `$." in text else ""
        if "Object missing required field" in text:
            path = text.split("`")[1]
        elif "unknown field" in text:
            path = text.split("`")[1]
        field = f"credentials.{path}" if path else "credentials"
        if "matching regex" in text or "length" in text:
            text = "must be 1 to 4096 printable characters, no spaces"
        raise CredentialsError(field, text.split(" - at ")[0]) from None
    if isinstance(creds, FactorialCredentials):
        oauth = creds.access_token is not None or creds.refresh_token is not None
        if creds.api_key is not None and oauth:
            raise CredentialsError("credentials", "either api_key, or access_token and refresh_token, not both")
        if creds.api_key is None and not (creds.access_token and creds.refresh_token):
            raise CredentialsError(
                "credentials",
                "Factorial takes api_key, or access_token and refresh_token (OAuth: or connect with Factorial)",
            )
    return creds


def kind(creds: Credentials) -> CredentialKind:
    if isinstance(creds, FactorialCredentials) and creds.api_key is None:
        return "oauth"
    return "token" if isinstance(creds, TokenCredentials) else "api_key"


def primary(creds: Credentials) -> str:
    """The value the connector sends with every call; empty for OAuth (the token chain has it)."""
    if isinstance(creds, TokenCredentials):
        return creds.token
    return creds.api_key or ""


def to_builtins(creds: Credentials) -> dict[str, str]:
    return {k: v for k, v in msgspec.structs.asdict(creds).items() if v is not None}
