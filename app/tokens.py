"""Operator tokens: named, with scopes, from the environment.

    APPLYRELAY_ADMIN_TOKEN=<secret>                      → token "admin" with every scope
    APPLYRELAY_TOKENS=ops:read+retry:<secret>,dpo:read+pii+erase:<secret>

Scopes: read (list and inspect deliveries, no PII), pii (see candidate data), retry (retry,
retry attachments, actions), erase (erasure, purge), admin (connections, passthrough, keys).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass

SCOPES = frozenset({"read", "pii", "retry", "erase", "admin"})


class TokenConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ApiToken:
    name: str
    secret: str
    scopes: frozenset[str]

    def __repr__(self) -> str:
        return f"ApiToken(name={self.name!r}, scopes={sorted(self.scopes)})"


def parse_tokens(admin_token: str | None, tokens_text: str) -> list[ApiToken]:
    """The admin token (`APPLYRELAY_ADMIN_TOKEN`, every scope) and the scoped ones
    (`APPLYRELAY_TOKENS` = name:scope+scope:secret,...), as app/settings.py read them."""
    tokens: list[ApiToken] = []
    if admin_token:
        tokens.append(ApiToken("admin", admin_token, SCOPES))
    for i, item in enumerate(filter(None, (t.strip() for t in tokens_text.split(",")))):
        name, _, rest = item.partition(":")
        scopes_text, _, secret = rest.partition(":")
        scopes = frozenset(s for s in scopes_text.split("+") if s)
        if not name or not secret or not scopes:
            raise TokenConfigError(f"APPLYRELAY_TOKENS[{i}]: expected name:scope+scope:secret")
        if scopes - SCOPES:
            raise TokenConfigError(f"APPLYRELAY_TOKENS[{i}]: unknown scope {sorted(scopes - SCOPES)[0]!r}")
        if len(secret) < 16:
            raise TokenConfigError(f"APPLYRELAY_TOKENS[{i}]: the secret must have at least 16 characters")
        tokens.append(ApiToken(name, secret, scopes))
    return tokens


def find_token(tokens: Iterable[ApiToken], presented: str) -> ApiToken | None:
    """Constant-time comparison against every token (no early exit on a match)."""
    found = None
    for token in tokens:
        if hmac.compare_digest(presented.encode(), token.secret.encode()):
            found = token
    return found
