"""Shared by the inbound tests: connections with every inbound secret, payload builders, signing."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import msgspec
from standardwebhooks import Webhook

from app.core.model import StoredApplication, stored_decoder
from app.intake.boards import indeed
from tests.support.builders import PDF_BYTES, connection_table
from tests.support.harness import Relay

INDEED_SECRET = "Y0ur api secret key not shared &$%@"
WEBHOOK_SECRET = "whsec_cmVsYXktZGVtby1zZWNyZXQtMDEyMzQ1Njc4OWFiY2Q="
WEBHOOK_SECRET_NEW = "whsec_" + base64.b64encode(b"a-newer-secret-for-rotation-0123").decode()
FORM_TOKEN = "form-token-0123456789"
EXE = b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 200


def inbound_env(monkeypatch: Any) -> None:
    monkeypatch.setenv("TEST_INDEED_SECRET", INDEED_SECRET)
    monkeypatch.setenv("TEST_WEBHOOK_SECRETS", f"{WEBHOOK_SECRET}, {WEBHOOK_SECRET_NEW}")
    monkeypatch.setenv("TEST_FORM_TOKENS", f"old-token,{FORM_TOKEN}")


def inbound_connection(url: str, **extra: Any) -> dict[str, Any]:
    secrets = {
        "indeed_secret_env": "TEST_INDEED_SECRET",
        "webhook_secret_env": "TEST_WEBHOOK_SECRETS",
        "form_token_env": "TEST_FORM_TOKENS",
    }
    return connection_table("factorial", url, **{**secrets, **extra})


# -- Indeed ---------------------------------------------------------------------------------------


def indeed_payload(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "3f1c0d" + "a" * 58,
        "appliedOnMillis": 1720000000000,
        "locale": "en_US",
        "job": {
            "jobId": "2001",
            "jobKey": "0123456789abcdef",
            "jobTitle": "Backend Engineer",
            "jobCompany": "Example Co",
            "jobMeta": "tenant=acme",
        },
        "applicant": {
            "fullName": "Zoë Van der Berg",
            "email": "zoe@example.org",
            "phoneNumber": "+34 612 345 678",
            "coverletter": "Dear team, 我想加入。",
            "resume": {
                "file": {
                    "fileName": "Zoë CV — 履歴書.pdf",
                    "contentType": "application/pdf",
                    "data": lenient_b64(PDF_BYTES),
                }
            },
        },
        "analytics": {"ip": "203.0.113.7", "device": "desktop"},
        "screenerQuestionsAndAnswers": {
            "schemaVersion": "1.3",
            "questionsAndAnswers": [
                {
                    "question": {"id": "q_why", "type": "textarea", "question": "Why do you want to JOIN us"},
                    "answer": "Because relays never lose a CV.",
                },
                {
                    "question": {
                        "id": "q_permit",
                        "type": "select",
                        "question": "Do you hold an EU work-permit?",
                        "options": [{"value": "1", "label": "Yes"}, {"value": "0", "label": "No"}],
                    },
                    "answer": {"value": "1", "label": "Yes"},
                },
                {
                    "question": {"id": "q_langs", "type": "multiselect", "question": "Which languages do you write?"},
                    "answer": [{"value": "py", "label": "Python"}, {"value": "rs", "label": "rust"}],
                },
                {
                    "question": {"id": "q_portfolio", "type": "file", "question": "Portfolio file"},
                    "answer": {
                        "fileName": "portfolio.pdf",
                        "contentType": "application/pdf",
                        "data": base64.b64encode(PDF_BYTES).decode(),
                    },
                },
                {"question": {"id": "q_optional", "type": "text", "question": "Anything else?"}, "answer": ""},
            ],
        },
        "demographicQuestionsAndAnswers": {
            "questionsAndAnswers": [
                {
                    "question": {"id": "veteran", "type": "select", "question": "Veteran status"},
                    "answer": {"value": "3", "label": "Prefer not to say"},
                }
            ]
        },
    }
    body.update(overrides)
    return body


def lenient_b64(data: bytes) -> str:
    """How boards send base64: wrapped at 76 columns, padding dropped."""
    text = base64.b64encode(data).decode().rstrip("=")
    return "\n".join(text[i : i + 76] for i in range(0, len(text), 76))


def indeed_body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


async def post_indeed(
    relay: Relay,
    payload: Any = None,
    *,
    raw: bytes | None = None,
    secret: str = INDEED_SECRET,
    signature: str | None = None,
    connection: str = "acme",
    sign: bool = True,
) -> Any:
    body = raw if raw is not None else indeed_body(payload if payload is not None else indeed_payload())
    headers = {
        "content-type": "application/json; charset=UTF-8",
        "user-agent": "IndeedApply/abc123 (+http://www.indeed.com/hire/indeed-apply)",
    }
    if sign:
        headers["x-indeed-signature"] = signature if signature is not None else indeed.sign(body, secret)
    return await relay.client.post(f"/inbound/indeed/{connection}", content=body, headers=headers)


# -- Standard Webhooks ------------------------------------------------------------------------------


def webhook_headers(
    body: bytes, *, msg_id: str = "msg_0001", secret: str = WEBHOOK_SECRET, at: dt.datetime | None = None
) -> dict[str, str]:
    when = at or dt.datetime.now(tz=dt.UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


# -- reading what was stored ------------------------------------------------------------------------


async def stored(relay: Relay, delivery_id: str) -> StoredApplication:
    payload = await relay.store.load_payload(delivery_id)  # the test loop's client, sealing like the relay
    assert payload is not None
    return stored_decoder.decode(payload)


def answers_of(application: StoredApplication) -> dict[str, Any]:
    return {a.question_id: msgspec.to_builtins(a.answer) for a in application.screening_question_answers}


async def assert_nothing_stored(relay: Relay) -> None:
    assert await relay.queued_jobs() == 0
    assert await relay.redis.keys("ar:d:*") == []
    assert await relay.redis.keys("ar:idem:*") == []
