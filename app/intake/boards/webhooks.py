"""Standard Webhooks: the canonical JSON, signed with `webhook-id`, `webhook-timestamp`,
`webhook-signature` (standardwebhooks.com; docs/inbound.md), verified with the
`standardwebhooks` package.

Connection settings:
    webhook_secret_env = "ACME_WEBHOOK_SECRETS"   # whsec_... values, comma-separated for rotation;
                                                  # unset → the route answers 404
    webhook_max_body_bytes = 34_000_000           # default: the application limit, base64-sized

The body is the canonical application, bare or in the spec's envelope {type, timestamp, data};
`connection_id` may be left out (the path names it). `webhook-id` is the idempotency key.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import structlog
from standardwebhooks import Webhook

from app.core.model import ApplicationIn, Origin
from app.core.problems import FieldError, Problem
from app.intake.boards.draft import board_application

log = structlog.get_logger("applyrelay.inbound")
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
MESSAGE_ID = re.compile(r"^[\x21-\x7e]{1,255}$")


def verifiers(secrets: Sequence[str], connection_id: str) -> list[Webhook]:
    """One verifier per configured secret; a malformed secret is skipped and logged (by the
    connection, never the value) — with none left the route is treated as not configured."""
    out = []
    for index, secret in enumerate(secrets):
        try:
            out.append(Webhook(secret))
        except Exception:  # the package raises binascii.Error, ValueError or its own errors
            log.warning("inbound.webhook_secret_invalid", connection=connection_id, secret_index=index)
    return out


def verify(body: bytes, headers: Mapping[str, str], hooks: Sequence[Webhook]) -> str:
    """The message id, once one of the secrets verifies the signature and the timestamp is
    within ±5 min. Every failure is a 401: the package raises several exception types on
    malformed input (ValueError, binascii.Error, UnicodeDecodeError), all caught here."""
    presented = {name: headers[name] for name in HEADERS if headers.get(name)}
    missing = [name for name in HEADERS if name not in presented]
    if missing:
        raise Problem(
            401, "Unauthorized", f"{missing[0]} header is missing", [FieldError(name, "missing") for name in missing]
        )
    for hook in hooks:
        try:
            hook.verify(body, presented, json_parse=False)
        except Exception:  # noqa: S112 - any failure means "not this secret"; decided after the loop
            continue
        break
    else:
        raise Problem(
            401,
            "Unauthorized",
            "webhook-signature does not match, or webhook-timestamp is outside ±5 minutes",
            [FieldError("webhook-signature", "no valid signature")],
        )
    message_id = presented["webhook-id"]
    if not MESSAGE_ID.match(message_id):
        raise Problem.invalid("webhook-id", "1 to 255 printable ASCII characters", 400)
    return message_id


def to_application(body: bytes, connection_id: str, message_id: str) -> tuple[ApplicationIn, Origin]:
    try:
        document: Any = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise Problem.malformed_json(str(exc)) from None
    if isinstance(document, dict) and isinstance(document.get("data"), dict) and "type" in document:
        document = document["data"]
    if not isinstance(document, dict):
        raise Problem.invalid("$", "the body must be a JSON object (the canonical application)")
    given = document.setdefault("connection_id", connection_id)
    if given != connection_id:
        raise Problem.invalid("connection_id", "differs from the connection in the URL")
    application = board_application(document)
    origin = Origin(channel="webhook", received_at=time.time(), board="webhook", board_application_id=message_id)
    return application, origin
