"""Indeed emulator: OAuth client credentials and the Disposition Sync GraphQL API (docs/boards.md).

At Indeed's own paths:

* ``POST /oauth/v2/tokens`` — form-encoded ``grant_type=client_credentials``, ``client_id``,
  ``client_secret`` (or HTTP Basic), as docs.indeed.com "Client credentials grant type" shows;
  answers ``{access_token, token_type: "Bearer", expires_in, scope}``. Tokens last
  ``token_ttl_s`` (Indeed: one hour; settable short) and 401 once expired.
* ``POST /graphql`` — ``{query, variables}`` with ``Authorization: Bearer``; only the
  ``partnerDisposition { send(input: $input) {...} }`` mutation. The input is checked against the
  documented shape: ``dispositions`` (1..25, sorted by ``statusChangeDateTime``), each with
  ``identifiedBy`` holding exactly one of ``indeedApplyID`` / ``ittk`` / ``universalApplyId`` /
  ``alternateIdentifier``, ``dispositionStatus`` in ``IndeedDispositionStatus``,
  ``rawDispositionStatus`` and ``atsName`` (required), ``rawDispositionDetails``,
  ``applicationSourceName``, ``statusChangeDateTime`` (optional); anything else is a GraphQL
  validation error. "A disposition will not be considered approved if it contains Personal Data
  excluding the ApplyID": a value that looks like an email or a phone number, or a field naming a
  person, refuses the whole request (recorded under ``pii_refused``).
  Answers ``{data: {partnerDisposition: {send: {numberGoodDispositions, failedDispositions}}}}``.

Sandbox-only: ``POST /_sandbox/indeed/settings`` ``{"token_ttl_s"?, "expire_after_requests"?,
"fail_ids"?}`` — shorten tokens, make every issued token expire after N more GraphQL requests
(a token expiring mid-batch), or answer ``failedDispositions`` for some apply ids.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import re
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qs

import msgspec
from litestar import Litestar, Request, Response, post

from connectors.sandbox.common import sandbox_app

STATUSES = frozenset(
    {
        "NEW",
        "REVIEW",
        "LIKED",
        "CONTACTED",
        "SCREEN",
        "POSITIVELY_SCREENED",
        "ASSESS_QUALIFICATIONS",
        "VERIFY_ELIGIBILITY",
        "INTERVIEW",
        "BACKGROUND_CHECK",
        "OFFER_MADE",
        "OFFER_DECLINED",
        "HIRED",
        "ONBOARDED",
        "NOT_SELECTED",
        "WITHDRAWN",
        "INCOMPLETE",
        "JOB_INACTIVE",
        "JOB_CLOSED",
        "UNABLE_TO_MAP",
        "DROPPED_DUPLICATE",
        "DROPPED_JOB_EXPIRED",
        "DROPPED_FRAUD_SPAM",
    }
)
IDENTIFIERS = ("indeedApplyID", "ittk", "universalApplyId", "alternateIdentifier")
FIELDS = frozenset(
    {
        "identifiedBy",
        "dispositionStatus",
        "rawDispositionStatus",
        "rawDispositionDetails",
        "atsName",
        "applicationSourceName",
        "statusChangeDateTime",
    }
)
MAX_PER_REQUEST = 25
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = re.compile(r"^\+?[0-9][0-9 ().\-/]{6,}$")
PERSON_FIELDS = re.compile(r"(first|last|full|given|family|candidate|applicant)_?name|email|phone", re.I)


def _gql_error(message: str, status: int = 200, code: str = "GRAPHQL_VALIDATION_FAILED") -> Response[Any]:
    return Response({"errors": [{"message": message, "extensions": {"code": code}}], "data": None}, status_code=status)


def pii_found(value: Any, path: str = "") -> list[str]:
    """Where a disposition carries personal data (emails, phones, a person's name field)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            where = f"{path}.{key}" if path else key
            if PERSON_FIELDS.search(key) or key == "emailAddress":
                found.append(where)
            found.extend(pii_found(inner, where))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found.extend(pii_found(inner, f"{path}[{i}]"))
    elif isinstance(value, str):
        # the apply id is the one identifier allowed, even when it is all digits
        if EMAIL.search(value) or (PHONE.match(value.strip()) and ".identifiedBy." not in path):
            found.append(path)
    return found


def disposition_errors(index: int, item: Any) -> list[str]:
    where = f"dispositions[{index}]"
    if not isinstance(item, dict):
        return [f"{where}: must be a PartnerDispositionInput object"]
    errors = [f"{where}.{k}: not a field of PartnerDispositionInput" for k in sorted(set(item) - FIELDS)]
    ident = item.get("identifiedBy")
    if not isinstance(ident, dict):
        errors.append(f"{where}.identifiedBy: required")
    else:
        given = [k for k in IDENTIFIERS if ident.get(k) not in (None, "")]
        unknown = sorted(set(ident) - set(IDENTIFIERS))
        errors.extend(f"{where}.identifiedBy.{k}: not a field" for k in unknown)
        if len(given) != 1:
            errors.append(f"{where}.identifiedBy: exactly one identifier, got {len(given)}")
    if item.get("dispositionStatus") not in STATUSES:
        errors.append(f"{where}.dispositionStatus: not an IndeedDispositionStatus")
    for name in ("rawDispositionStatus", "atsName"):
        if not isinstance(item.get(name), str) or not item[name].strip():
            errors.append(f"{where}.{name}: String! required")
    for name in ("rawDispositionDetails", "applicationSourceName", "statusChangeDateTime"):
        if item.get(name) is not None and not isinstance(item[name], str):
            errors.append(f"{where}.{name}: must be a String")
    when = item.get("statusChangeDateTime")
    if isinstance(when, str):
        try:
            dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            errors.append(f"{where}.statusChangeDateTime: must be an ISO 8601 date-time")
    return errors


class IndeedState:
    def __init__(self, token_ttl_s: float) -> None:
        self.lock = threading.Lock()
        self.default_ttl = token_ttl_s
        self.reset()

    def reset(self) -> None:
        self.token_ttl_s = self.default_ttl
        self.tokens: dict[str, float] = {}  # token -> expires at (monotonic)
        self.expire_after: int | None = None  # GraphQL requests left before every token expires
        self.fail_ids: dict[str, str] = {}
        self.tokens_issued = 0
        self.dispositions: list[dict[str, Any]] = []
        self.batches: list[dict[str, Any]] = []
        self.pii_refused: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.unauthorized = 0

    def records(self) -> dict[str, Any]:
        with self.lock:
            return {
                "tokens_issued": self.tokens_issued,
                "dispositions": list(self.dispositions),
                "batches": list(self.batches),
                "pii_refused": list(self.pii_refused),
                "refused": list(self.refused),
                "unauthorized": self.unauthorized,
            }


def create_app(
    api_key: str = "sandbox", client_id: str = "sandbox-client", token_ttl_s: float = 3600.0, **options: Any
) -> Litestar:
    """The Indeed emulator; `api_key` is the client secret it accepts for `client_id`."""
    state = IndeedState(token_ttl_s)

    @post("/oauth/v2/tokens", status_code=200)
    async def tokens(request: Request[Any, Any, Any]) -> Response[Any]:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode(errors="replace")).items()}
        presented_id, presented_secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                presented_id, _, presented_secret = base64.b64decode(basic[6:]).decode().partition(":")
            except ValueError:
                pass
        if form.get("grant_type") != "client_credentials":
            return Response(
                {"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"},
                status_code=400,
            )
        good = hmac.compare_digest(presented_id.encode(), client_id.encode()) & hmac.compare_digest(
            presented_secret.encode(), api_key.encode()
        )
        if not good:
            return Response({"error": "invalid_client", "error_description": "bad client credentials"}, status_code=401)
        token = secrets.token_urlsafe(24)
        with state.lock:
            state.tokens[token] = time.monotonic() + state.token_ttl_s
            state.tokens_issued += 1
        return Response(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": max(1, round(state.token_ttl_s)),
                "scope": form.get("scope", ""),
            },
            status_code=200,
            headers={"cache-control": "no-store"},
        )

    def _authorized(request: Request[Any, Any, Any]) -> bool:
        header = request.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else ""
        with state.lock:
            if state.expire_after is not None:
                if state.expire_after <= 0:
                    state.tokens.clear()
                    state.expire_after = None
                else:
                    state.expire_after -= 1
            expires = state.tokens.get(token)
            ok = expires is not None and expires > time.monotonic()
            if not ok:
                state.unauthorized += 1
            return ok

    @post("/graphql", status_code=200)
    async def graphql(request: Request[Any, Any, Any]) -> Response[Any]:
        if not _authorized(request):
            return _gql_error("invalid or expired access token", 401, "UNAUTHENTICATED")
        try:
            body = msgspec.json.decode(await request.body())
        except msgspec.DecodeError:
            return _gql_error("the body is not JSON", 400, "BAD_REQUEST")
        query = body.get("query") if isinstance(body, dict) else None
        if not isinstance(query, str) or not re.search(r"partnerDisposition\s*\{\s*send\s*\(", query):
            return _gql_error("only the partnerDisposition.send mutation is emulated")
        variables = body.get("variables") or {}
        payload = variables.get("input") if isinstance(variables, dict) else None
        dispositions = payload.get("dispositions") if isinstance(payload, dict) else None
        if not isinstance(dispositions, list) or not 1 <= len(dispositions) <= MAX_PER_REQUEST:
            return _gql_error(f"input.dispositions: 1 to {MAX_PER_REQUEST} PartnerDispositionInput")
        pii = pii_found(payload)
        if pii:
            with state.lock:
                state.pii_refused.append({"paths": pii})
            return _gql_error("dispositions may carry no personal data but the apply id: " + ", ".join(pii))
        errors = [e for i, d in enumerate(dispositions) for e in disposition_errors(i, d)]
        times = [d.get("statusChangeDateTime") for d in dispositions if isinstance(d, dict)]
        stamps = [t for t in times if isinstance(t, str)]
        if not errors and stamps != sorted(stamps, key=lambda t: dt.datetime.fromisoformat(t.replace("Z", "+00:00"))):
            errors.append("dispositions must be sorted by statusChangeDateTime, oldest first")
        if errors:
            with state.lock:
                state.refused.append({"errors": errors})
            return _gql_error("; ".join(errors))
        failed, good = [], 0
        with state.lock:
            state.batches.append({"count": len(dispositions)})
            for item in dispositions:
                ident = item["identifiedBy"]
                apply_id = next(str(ident[k]) for k in IDENTIFIERS if ident.get(k) not in (None, ""))
                if apply_id in state.fail_ids:
                    failed.append({"identifiedBy": ident, "rationale": state.fail_ids[apply_id]})
                    continue
                good += 1
                state.dispositions.append(item)
        send = {"numberGoodDispositions": good, "failedDispositions": failed}
        return Response({"data": {"partnerDisposition": {"send": send}}}, status_code=200)

    @post("/_sandbox/indeed/settings", status_code=200)
    async def settings(data: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            if "token_ttl_s" in data:
                state.token_ttl_s = float(data["token_ttl_s"])
            if "expire_after_requests" in data:
                state.expire_after = int(data["expire_after_requests"])
            if "fail_ids" in data:
                state.fail_ids = {str(k): str(v) for k, v in dict(data["fail_ids"]).items()}
        return {"token_ttl_s": state.token_ttl_s, "expire_after_requests": state.expire_after}

    return sandbox_app(name="indeed", routes=[tokens, graphql, settings], records=state.records, reset=state.reset)
