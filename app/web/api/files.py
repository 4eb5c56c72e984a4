"""GET /v1/files/{token}: a stored attachment behind a signed, expiring link (Factorial's
`cv_upload = "link"`). The token is the only credential; it names no person."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from litestar import Request, Response, Router, get

from app.core.model import stored_as_data
from app.privacy import file_links
from app.runtime import Runtime
from app.web.openapi import ok, problems
from app.web.problems import problem


@get(
    "/v1/files/{token:str}",
    responses={200: ok(bytes, "The file, as its content type", "*/*"), **problems(404, 410, 503)},
)
async def download(request: Request[Any, Any, Any], token: str) -> Response[Any]:
    runtime: Runtime = request.app.state.runtime
    secret = runtime.settings.link_secret
    if not secret:
        return problem(404, "Not found", "file links are not enabled")
    try:
        delivery_id, index = file_links.verify(secret, token)
    except file_links.BadLink as exc:
        return problem(410 if str(exc) == "expired" else 404, "Link not valid", str(exc))
    raw, data = await runtime.store.load_payload(delivery_id), await runtime.store.load_file(delivery_id, index)
    if raw is None or not data:
        return problem(410, "Gone", "the file is no longer held by the relay")
    attachments = stored_as_data(raw).get("attachments") or []
    ref = next((a for a in attachments if isinstance(a, dict) and a.get("index") == index), None)
    if ref is None:
        return problem(404, "Not found", "no such file")
    return Response(
        data,
        media_type=str(ref.get("content_type") or "application/octet-stream"),
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(str(ref.get('name') or 'file'))}",
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


def router(_: Runtime) -> Router:
    return Router(path="/", route_handlers=[download])
