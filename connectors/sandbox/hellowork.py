"""HelloWork ATS Partner emulator: the status API an ATS calls back (docs/boards.md).

HelloWork's "envoi changements de statut" page (ats-partner.hellowork.com/v1/sending-status):
``POST /v1/applications/{applicationId}/status`` with ``{status, eventDate, created, jobId,
source}`` — `status` a free label (required), `eventDate` and `created` dates (required), `jobId`
the ATS's job id (required), `source` a string or an object (optional). The page names no
authentication and no answer codes: the emulator answers 200 ``{"ok": true}`` to a valid body and
400 (``{"error": {...}}``) to an invalid one, and records every valid status in order.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, post

from connectors.sandbox.common import sandbox_app

REQUIRED = ("status", "eventDate", "created", "jobId")


def _date(value: Any) -> bool:
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def status_errors(body: Any) -> list[str]:
    """What HelloWork's documented shape refuses in a status body."""
    if not isinstance(body, dict):
        return ["the body must be a JSON object"]
    errors = [f"{name}: required" for name in REQUIRED if body.get(name) in (None, "")]
    if body.get("status") not in (None, "") and not isinstance(body["status"], str):
        errors.append("status: must be a string")
    for name in ("eventDate", "created"):
        if name in body and body[name] not in (None, "") and not _date(body[name]):
            errors.append(f"{name}: must be an ISO 8601 date")
    if "jobId" in body and body["jobId"] not in (None, "") and not isinstance(body["jobId"], str):
        errors.append("jobId: must be a string")
    if body.get("source") is not None and not isinstance(body["source"], str | dict):
        errors.append("source: must be a string or an object")
    unknown = sorted(set(body) - {*REQUIRED, "source"})
    errors.extend(f"{name}: unknown field" for name in unknown)
    return errors


class HelloWorkState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.statuses: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []

    def records(self) -> dict[str, Any]:
        with self.lock:
            return {"statuses": list(self.statuses), "refused": list(self.refused)}


def create_app(api_key: str = "sandbox", **options: Any) -> Litestar:
    """The HelloWork emulator (`api_key` is accepted for the CLI's sake: the page names no auth)."""
    state = HelloWorkState()

    @post("/v1/applications/{application_id:str}/status", status_code=200)
    async def receive_status(request: Request[Any, Any, Any], application_id: str) -> Response[Any]:
        raw = await request.body()
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return Response({"error": {"message": "the body is not JSON"}}, status_code=400)
        errors = status_errors(body)
        with state.lock:
            if errors:
                state.refused.append({"applicationId": application_id, "errors": errors})
                return Response({"error": {"message": "; ".join(errors)}}, status_code=400)
            state.statuses.append({"applicationId": application_id, **body})
        return Response({"ok": True}, status_code=200)

    return sandbox_app(name="hellowork", routes=[receive_status], records=state.records, reset=state.reset)
