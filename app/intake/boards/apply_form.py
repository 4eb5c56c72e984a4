"""What the hosted apply page (app/web/apply/, docs/apply-pages.md) adds to the forms route: a
form token scoped to one connection and job that expires, the answers typed by their question's
format, and answers to questions whose precondition does not hold dropped (without JavaScript
every question is shown, so a candidate may answer one that does not apply).

The token is `ap1.<expiry>.<hmac>`: HMAC-SHA256 under the connection's first form token
(`form_token_env`) of (connection, job, expiry). The page never shows the form token itself, and
a token copied from one job's page cannot post to another job.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from app.core import files
from app.core.answers import number_from_text
from app.core.catalog import ScreeningQuestion
from app.core.problems import FieldError, Problem
from app.delivery.staging import StagedFile
from app.intake.boards.draft import Draft, FileValue

PREFIX = "ap1."
ANSWERED_TYPES = ("TEXT", "NUMBER", "SINGLE_SELECT", "MULTI_SELECT", "BOOLEAN", "DATE", "FILE")
# The page's own refusals: short, fixed English phrases the page translates (app/web/apply/i18n.py).
REQUIRED = "required"
NOT_A_NUMBER = "must be a number"
NOT_AN_OPTION = "not one of the options"
NOT_A_DATE = "must be a date (YYYY-MM-DD)"
NOT_YES_NO = "must be yes or no"
FILE_TYPE = "this file type is not accepted"


def field_name(question_id: str, several: bool = False) -> str:
    """The form field of a question (the forms route's `question_<id>` convention)."""
    return f"question_{question_id}" + ("[]" if several else "")


# -- the page's form token --------------------------------------------------------------------------


def _mac(secret: str, connection_id: str, job_id: str, expires: int) -> str:
    message = f"apply\0{connection_id}\0{job_id}\0{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:40]


def sign(secret: str, connection_id: str, job_id: str, now: float, ttl_s: int) -> str:
    expires = int(now) + ttl_s
    return f"{PREFIX}{expires}.{_mac(secret, connection_id, job_id, expires)}"


def is_page_token(value: str | None) -> bool:
    return bool(value) and str(value).startswith(PREFIX)


def verify(value: str | None, secrets: Sequence[str], connection_id: str, job_id: str, now: float) -> bool:
    """A page token for this connection and job, not expired, signed with one of the
    connection's form tokens (so rotating them keeps open pages working)."""
    if not value or not value.startswith(PREFIX):
        return False
    expires_text, _, mac = value[len(PREFIX) :].partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12 or int(expires_text) < now:
        return False
    expires = int(expires_text)
    return any(hmac.compare_digest(mac, _mac(s, connection_id, job_id, expires)) for s in secrets)


# -- preconditions ----------------------------------------------------------------------------------


def _tokens(value: Any) -> set[str]:
    """An answer as the strings a precondition names (option ids; "true"/"false")."""
    if isinstance(value, bool):
        return {"true" if value else "false"}
    if isinstance(value, list):
        return {str(v) for v in value}
    if isinstance(value, FileValue) or value is None:
        return set()
    return {str(value).strip().lower() if str(value).strip().lower() in ("true", "false") else str(value)}


def _option_tokens(options: Sequence[str | bool] | None) -> set[str]:
    return {("true" if o else "false") if isinstance(o, bool) else str(o) for o in options or []}


def active(question: ScreeningQuestion, answers: Mapping[str, Any], by_id: Mapping[str, ScreeningQuestion]) -> bool:
    """Is `question` asked, given `answers` (question id → value)? Chains: its parent must be
    asked too. A precondition on a question the job does not have is taken as met."""
    seen: set[str] = set()
    current = question
    while current.precondition_question_id is not None:
        parent_id = current.precondition_question_id
        if parent_id in seen or parent_id not in by_id:
            return True
        seen.add(parent_id)
        wanted = _option_tokens(current.precondition_options)
        given = answers.get(parent_id)
        if given is None or given == "" or given == []:
            return False
        if wanted and not (_tokens(given) & wanted):
            return False
        current = by_id[parent_id]
    return True


# -- typing and checking the answers ----------------------------------------------------------------


def _typed(question: ScreeningQuestion, raw: Any) -> Any:
    """The form's text as the question's format wants it (docs/apply-pages.md, "Answers");
    raises ValueError with the refusal's message."""
    fmt = question.format
    kind = fmt.type
    if kind == "FILE":
        if not isinstance(raw, FileValue):
            raise ValueError(REQUIRED)
        data = raw.data  # bytes, or the blob the form route streamed them to
        size = data.size if isinstance(data, StagedFile) else len(data)
        if fmt.max_file_size_bytes is not None and size > fmt.max_file_size_bytes:
            raise ValueError(f"file larger than {fmt.max_file_size_bytes} bytes")
        try:
            actual = data.sniff() if isinstance(data, StagedFile) else files.sniff(data)
        except files.FileRejected as exc:
            raise ValueError(str(exc)) from None
        if fmt.accepted_mime_types and actual not in fmt.accepted_mime_types:
            raise ValueError(FILE_TYPE)
        return raw
    if isinstance(raw, FileValue):
        raise ValueError(REQUIRED)
    values = raw if isinstance(raw, list) else [raw]
    option_ids = {o.id for o in fmt.options or []}
    if kind == "MULTI_SELECT":
        if any(v not in option_ids for v in values):
            raise ValueError(NOT_AN_OPTION)
        return list(dict.fromkeys(values))
    text = str(values[0]).strip()
    if kind == "SINGLE_SELECT":
        if text not in option_ids:
            raise ValueError(NOT_AN_OPTION)
        return text
    if kind == "BOOLEAN":
        if text.lower() not in ("true", "false"):
            raise ValueError(NOT_YES_NO)
        return text.lower() == "true"
    if kind == "NUMBER":
        number = number_from_text(text)
        if number is None:
            raise ValueError(NOT_A_NUMBER)
        low, high = fmt.min, fmt.max
        if (low is not None and number < low) or (high is not None and number > high):
            raise ValueError(f"must be between {_show(low)} and {_show(high)}")
        return number
    if kind == "DATE":
        try:
            return dt.date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError(NOT_A_DATE) from None
    if fmt.max_length is not None and len(text) > fmt.max_length:
        raise ValueError(f"at most {fmt.max_length} characters")
    return text


def _show(bound: float | None) -> str:
    if bound is None:
        return "…"
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def shape(draft: Draft, questions: Sequence[ScreeningQuestion]) -> None:
    """Type the draft's answers by the job's questions, drop those whose precondition does not
    hold (and those to questions that take no answer), and refuse (422, one error per form field)
    a missing required answer of an asked question or a value its format does not allow."""
    by_id = {q.id: q for q in questions}
    given = {qid: value for qid, value in draft.answers if value not in ("", [])}
    fields = {
        qid: draft.board_fields.get(f"screening_question_answers[{i}]") for i, (qid, _) in enumerate(draft.answers)
    }
    # Preconditions are judged on typed values (a BOOLEAN parent "true" is True).
    typed: dict[str, Any] = {}
    errors: list[FieldError] = []
    for question in questions:
        if question.id in given and question.format.type in ANSWERED_TYPES:
            try:
                typed[question.id] = _typed(question, given[question.id])
            except ValueError as exc:
                typed[question.id] = given[question.id]
                errors.append(FieldError(fields.get(question.id) or field_name(question.id), str(exc)))
    kept: list[tuple[str, Any]] = []
    asked_errors: list[FieldError] = []
    for question in sorted(questions, key=lambda q: q.index if q.index is not None else 1 << 30):
        if question.format.type not in ANSWERED_TYPES or not active(question, typed, by_id):
            continue
        name = field_name(question.id, question.format.type == "MULTI_SELECT")
        if question.id not in typed:
            if question.required:
                asked_errors.append(FieldError(name, REQUIRED))
            continue
        kept.append((question.id, typed[question.id]))
    # Errors of questions that are not asked (their precondition fails) are dropped with them.
    asked = {name for q, _ in kept for name in (field_name(q), field_name(q, True))}
    errors = [e for e in errors if e.field in asked] + asked_errors
    if errors:
        raise Problem(422, "Invalid answers", "; ".join(f"{e.field}: {e.message}" for e in errors), errors)
    draft.answers = []
    draft.board_fields = {k: v for k, v in draft.board_fields.items() if not k.startswith("screening_question_")}
    for qid, value in kept:
        draft.add_answer(qid, value, fields.get(qid) or field_name(qid))


def consent(draft: Draft, given: bool, required: bool, days: int, now: float) -> None:
    """The page's GDPR consent: refused when the connection requires it and it is not given; its
    expiry (`consent_days` after now) sent where the connection sets one."""
    if not given:
        if required:
            raise Problem(422, "Consent required", "gdpr_consent: required", [FieldError("gdpr_consent", REQUIRED)])
        draft.gdpr_consent = None
        return
    draft.gdpr_consent = {"given": True}
    if days > 0:
        expires = dt.datetime.fromtimestamp(now, dt.UTC) + dt.timedelta(days=days)
        draft.gdpr_consent["expires_at"] = expires.isoformat().replace("+00:00", "Z")
