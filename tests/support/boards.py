"""Shared by the board tests: HelloWork payloads and posting, connection tables with a board's
settings (tests/integration/boards/)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.support.builders import PDF_BYTES, b64
from tests.support.harness import Relay

HELLOWORK_KEY = "hw-api-key-0123456789"


def hellowork_payload(application_id: str = "hw-1001", job_id: str = "2001", **overrides: Any) -> dict[str, Any]:
    """A HelloWork reception body for the Factorial seed's job 2001 (its questions 3001-3004)."""
    body: dict[str, Any] = {
        "applicationId": application_id,
        "job": {"jobId": job_id, "jobAtsUrl": f"https://careers.example.fr/jobs/{job_id}"},
        "applicant": {
            "firstName": "Élodie",
            "lastName": "Martin-Dupré",
            "email": f"elodie.{application_id}@example.fr",
            "phoneNumber": "+33 6 12 34 56 78",
        },
        "resume": {"file": {"fileName": "CV Élodie.pdf", "contentType": "application/pdf", "data": b64(PDF_BYTES)}},
        "source": {"name": "HelloWork", "product": "ats-connect"},
        "statusApiUrl": f"https://ats-partner.hellowork.com/v1/applications/{application_id}/status",
        "screenerQuestions": [
            {"id": "3001", "question": "Why do you want to join us?", "type": "textarea", "answer": "Le relais."},
            {"id": "hw-salary", "question": "Your expected salary", "type": "number", "answer": 42000},
            {
                "id": "hw-permit",
                "question": "Do you hold an EU work permit?",
                "type": "select",
                "answer": "y",
                "options": [{"value": "y", "label": "Yes"}, {"value": "n", "label": "No"}],
            },
            {
                "id": "3004",
                "question": "Which languages do you write?",
                "type": "multiselect",
                "answer": ["py", "go"],
                "options": [{"value": "py", "label": "Python"}, {"value": "go", "label": "Go"}],
            },
            {"id": "hw-other", "question": "Anything else?", "type": "text", "answer": ""},
        ],
    }
    body.update(overrides)
    return body


async def post_hellowork(
    relay: Relay,
    payload: Any,
    *,
    connection: str = "acme",
    key: str | None = HELLOWORK_KEY,
    header: str = "X-Api-Key",
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers[header] = key
    body = json.dumps(payload, ensure_ascii=False).encode()
    return await relay.client.post(f"/inbound/hellowork/{connection}", content=body, headers=headers)
