"""Builders shared by test modules: file bytes, base64, connection tables, a canonical application.

Test modules never import each other; whatever two of them need lives here (or in another
`tests.support` module)."""

from __future__ import annotations

import base64
import io
import zipfile
from typing import Any

PDF_BYTES = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n" + bytes(range(256)) * 8
DOCX_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="xml" ContentType="application/xml"/><Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)


def zip_bytes(parts: dict[str, bytes | str], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of `parts`, in order, byte for byte the same on every run (fixed dates)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in parts.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), data, compression)
    return buffer.getvalue()


def docx_bytes(**extra: bytes | str) -> bytes:
    """A minimal real Word document (app/core/files.py checks its parts), plus `extra` parts."""
    return zip_bytes(
        {
            "[Content_Types].xml": DOCX_CONTENT_TYPES,
            "_rels/.rels": "<Relationships/>",
            "word/document.xml": "<w:document><w:body><w:p>Dear team</w:p></w:body></w:document>",
            **extra,
        }
    )


def odt_bytes() -> bytes:
    """A minimal real OpenDocument text: `mimetype` first and stored, then its content."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        when = (2026, 1, 1, 0, 0, 0)
        archive.writestr(zipfile.ZipInfo("mimetype", when), "application/vnd.oasis.opendocument.text")
        archive.writestr(zipfile.ZipInfo("content.xml", when), "<office:document-content/>", zipfile.ZIP_DEFLATED)
        archive.writestr(zipfile.ZipInfo("META-INF/manifest.xml", when), "<manifest:manifest/>", zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


DOCX_BYTES = docx_bytes()
ODT_BYTES = odt_bytes()


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
