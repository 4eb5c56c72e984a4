"""Builders shared by test modules: file bytes, base64, connection tables, a canonical application.

Test modules never import each other; whatever two of them need lives here (or in another
`tests.support` module)."""

from __future__ import annotations

import base64
from typing import Any

PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n" + bytes(range(256)) * 8
DOCX_BYTES = b"PK\x03\x04" + b"\x00" * 26 + b"[Content_Types].xml" + b"word/document.xml" + b"\x00" * 64


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def connection_table(connector: str, base_url: str, **extra: Any) -> dict[str, Any]:
    """One `[connections.<id>]` table of the relay's config; its secret comes from
    `TEST_<CONNECTOR>_KEY` (`_secret`, default "sandbox": see `harness.secrets_env`)."""
    return {
        "connector": connector,
        "base_url": base_url,
        "credentials_env": f"TEST_{connector.upper()}_KEY",
        "timeout_s": 3,
        **extra,
    }


def application(**overrides: Any) -> dict[str, Any]:
    """A canonical application for the Factorial emulator's seed (job 2001 and its questions):
    a CV, a cover letter, every answer type, a source and a GDPR consent; `overrides` replace
    top-level keys."""
    body: dict[str, Any] = {
        "connection_id": "acme",
        "candidate": {
            "first_name": "Zoë",
            "last_name": "Van der Berg-Ñúñez",
            "email_address": "zoe.vdb@example.org",
            "phone_number": "+34 612 345 678",
            "gender": "FEMALE",
        },
        "application": {"job_id": "2001"},
        "screening_question_answers": [
            {"question_id": "3001", "answer": "Because relays should never lose a CV."},
            {"question_id": "3002", "answer": 55000},
            {"question_id": "3003", "answer": True},
            {"question_id": "3004", "answer": ["Python", "Rust"]},
            {
                "question_id": "3005",
                "answer": {"name": "portfolio.pdf", "content_type": "application/pdf", "data": b64(PDF_BYTES)},
            },
        ],
        "attachments": [
            {"name": "Zoë CV.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(PDF_BYTES)},
            {"name": "letter.docx", "type": "COVER_LETTER", "data": b64(DOCX_BYTES)},
        ],
        "source": {"name": "LinkedIn"},
        "gdpr_consent": {"given": True, "expires_at": "2027-11-23"},
    }
    body.update(overrides)
    return body
