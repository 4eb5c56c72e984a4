"""Operator tokens from the environment (app/tokens.py): the admin token has every scope, named
tokens carry theirs, bad definitions are refused naming the item, and lookups compare every
secret."""

from __future__ import annotations

import pytest

from app.tokens import SCOPES, ApiToken, TokenConfigError, find_token, parse_tokens

OPS_SECRET = "ops-secret-0123456789"
DPO_SECRET = "dpo-secret-abcdefghij"


def test_admin_and_named_tokens() -> None:
    tokens = parse_tokens("admin-secret", f" ops:read+retry:{OPS_SECRET}, ,dpo:read+pii+erase:{DPO_SECRET},")
    assert tokens == [
        ApiToken("admin", "admin-secret", SCOPES),
        ApiToken("ops", OPS_SECRET, frozenset({"read", "retry"})),
        ApiToken("dpo", DPO_SECRET, frozenset({"read", "pii", "erase"})),
    ]
    assert SCOPES == {"read", "pii", "retry", "erase", "admin"}
    assert parse_tokens(None, "") == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ops", r"APPLYRELAY_TOKENS\[0\]: expected name:scope\+scope:secret"),
        (f"ops::{OPS_SECRET}", r"APPLYRELAY_TOKENS\[0\]: expected"),
        (f":read:{OPS_SECRET}", r"APPLYRELAY_TOKENS\[0\]: expected"),
        (f"ops:read:{OPS_SECRET},dpo:read+root:{DPO_SECRET}", r"APPLYRELAY_TOKENS\[1\]: unknown scope 'root'"),
        ("ops:read:short-secret", r"APPLYRELAY_TOKENS\[0\]: the secret must have at least 16 characters"),
    ],
)
def test_bad_token_definitions_name_the_item(value: str, message: str) -> None:
    with pytest.raises(TokenConfigError, match=message):
        parse_tokens(None, value)


def test_a_secret_with_colons_is_kept_whole() -> None:
    [token] = parse_tokens(None, "ops:read:part-one:part-two-0123")
    assert token.secret == "part-one:part-two-0123"


def test_find_token_and_repr_without_the_secret() -> None:
    tokens = parse_tokens(None, f"ops:read:{OPS_SECRET},dpo:pii:{DPO_SECRET}")
    assert find_token(tokens, DPO_SECRET) is tokens[1]
    assert find_token(tokens, OPS_SECRET) is tokens[0]
    assert (
        find_token(tokens, OPS_SECRET[:-1]) is None and find_token(tokens, "") is None and find_token([], "x") is None
    )
    assert OPS_SECRET not in repr(tokens[0]) and repr(tokens[0]) == "ApiToken(name='ops', scopes=['read'])"
