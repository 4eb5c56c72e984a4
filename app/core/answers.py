"""Screening answers checked against a job's questions, as Kombo checks them
(docs/answers.md): pure, no I/O, linear in the number of answers.

Intake runs it against the catalog's cached questions before the 202 (app/intake/accept.py); the
worker runs it against the connector's `job_questions` before anything is written to the ATS when
intake could not (app/delivery/engine.py); Laura encodes the answers it keeps (connectors/laura.py).

The rules, per answer at index i (`FieldError.field` is ``screening_question_answers[i].answer``,
or ``[i].question_id`` for a repeat; the message names the question id, never the value):

- the answer's type matches the question's format: TEXT a string within `max_length`; NUMBER a
  number within `min`/`max`; SINGLE_SELECT one option id (a string) among the options;
  MULTI_SELECT a list of option ids among them, no repeats; BOOLEAN true/false; DATE an ISO 8601
  date (or date-time) string; FILE a file within `accepted_mime_types` and `max_file_size_bytes`;
  INFORMATION takes no answer;
- a required question whose precondition holds is answered (field ``screening_question_answers``)
  — when the application answers any question of the job: one that answers none comes from a
  client without a questions UI (Kombo's "auto-answer" case), and gets one warning per required
  question instead, leaving the ATS to decide;
- a conditional question is answered only where its precondition holds: its parent is itself
  shown and answered with one of `precondition_options` (chains: a hidden parent hides its child);
- a question is answered once.

An answer to a question id the job does not have is a warning and is not sent (Kombo's rule), as
is an answer to a question of a type the relay cannot check (UNKNOWN); a blank answer ("" or [])
is no answer. Faults and warnings are capped (`MAX_FAULTS`, `MAX_WARNINGS`, the rest counted) so
that tens of thousands of answers cost a dict lookup each, never a scan.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from app.core import files
from app.core.catalog import ScreeningQuestion
from app.core.model import INT64_MAX, INT64_MIN, AttachmentRef, FileAnswer
from app.core.problems import FieldError

FIELD = "screening_question_answers"
NOT_SENT = "answer_not_sent"  # the warning code of an answer dropped (unknown question or type)
REQUIRED_UNANSWERED = "required_question_unanswered"  # no answers at all, a required question left
MAX_FAULTS = 100  # faults listed; the rest are counted in one last entry
MAX_WARNINGS = 20  # warnings listed; likewise
MAX_ID_CHARS = 100  # a question id as quoted in a message
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


class AnswerLike(Protocol):
    """A ScreeningAnswer (as posted) or a StoredAnswer (as kept): an id and a value."""

    @property
    def question_id(self) -> str: ...

    @property
    def answer(self) -> Any: ...


class AnswerWarning(NamedTuple):
    code: str  # NOT_SENT, REQUIRED_UNANSWERED
    message: str


@dataclass
class AnswerCheck:
    """What the check found. `kept`: the indexes of the answers to send (known question, shown,
    not blank), in the order given; `errors` refuse the application; `warnings` are messages for
    the delivery (and the 202's `warnings`)."""

    errors: list[FieldError] = field(default_factory=list)
    warnings: list[AnswerWarning] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    _faults: int = 0
    _warned: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def fault(self, path: str, message: str) -> None:
        self._faults += 1
        if self._faults <= MAX_FAULTS:
            self.errors.append(FieldError(path, message))

    def warn(self, message: str, code: str = NOT_SENT) -> None:
        self._warned += 1
        if self._warned <= MAX_WARNINGS:
            self.warnings.append(AnswerWarning(code, message))

    def close(self) -> AnswerCheck:
        """Count what the caps left out, in one last entry each."""
        if self._faults > MAX_FAULTS:
            self.errors.append(FieldError(FIELD, f"and {self._faults - MAX_FAULTS} more faults in the answers"))
        if self._warned > MAX_WARNINGS:
            self.warnings.append(
                AnswerWarning(NOT_SENT, f"and {self._warned - MAX_WARNINGS} more warnings on the answers")
            )
        self._faults = min(self._faults, MAX_FAULTS)
        self._warned = min(self._warned, MAX_WARNINGS)
        return self

    def summary(self) -> str:
        """The faults as one line (a dead letter's reason): each names its question."""
        return "; ".join(e.message for e in self.errors)


def quoted(question_id: str) -> str:
    return question_id if len(question_id) <= MAX_ID_CHARS else question_id[:MAX_ID_CHARS] + "…"


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value)


def repeated_answers(answers: Sequence[AnswerLike]) -> AnswerCheck:
    """Only the rule that needs no questions: each question answered once (intake, when the job's
    questions cannot be read right now; the worker checks the rest later)."""
    result = AnswerCheck()
    seen: set[str] = set()
    for i, answer in enumerate(answers):
        qid = answer.question_id
        if qid in seen:
            result.fault(f"{FIELD}[{i}].question_id", f"question {quoted(qid)}: answered more than once")
            continue
        seen.add(qid)
        if not is_blank(answer.answer):
            result.kept.append(i)
    return result.close()


def check_answers(questions: Sequence[ScreeningQuestion], answers: Sequence[AnswerLike]) -> AnswerCheck:
    """Every rule of the module docstring; see `AnswerCheck`."""
    result = AnswerCheck()
    by_id = {q.id: q for q in questions}
    given: dict[str, int] = {}  # question id -> index of its (first, non-blank) answer
    for i, answer in enumerate(answers):
        qid = answer.question_id
        question = by_id.get(qid)
        if question is None:
            result.warn(f"question {quoted(qid)} is not a question of this job; its answer is not sent")
            continue
        if qid in given:
            result.fault(f"{FIELD}[{i}].question_id", f"question {quoted(qid)}: answered more than once")
            continue
        given[qid] = i
    shown = _Shown(by_id, answers, given)
    for qid, i in given.items():
        question = by_id[qid]
        value = answers[i].answer
        kind = question.format.type
        if kind == "UNKNOWN":
            result.warn(f"question {quoted(qid)} has a type the relay cannot check; its answer is not sent")
            continue
        if is_blank(value):
            continue  # no answer; a required one is reported below
        path = f"{FIELD}[{i}].answer"
        if not shown(question):
            result.fault(
                path,
                f"question {quoted(qid)}: answered, but its precondition on question "
                f"{quoted(question.precondition_question_id or '')} is not met",
            )
            continue
        reason = _type_fault(question, value)
        if reason is not None:
            result.fault(path, f"question {quoted(qid)}: {reason}")
            continue
        result.kept.append(i)
    answered_any = any(not is_blank(answers[i].answer) for i in given.values())
    for question in questions:
        if not question.required or question.format.type in ("INFORMATION", "UNKNOWN"):
            continue
        i = given.get(question.id, -1)
        if (i < 0 or is_blank(answers[i].answer)) and shown(question):
            if answered_any:
                result.fault(FIELD, f"question {quoted(question.id)}: required")
            else:  # a client without a questions UI: the ATS decides (module docstring)
                result.warn(
                    f"question {quoted(question.id)} is required and was not answered (no answers given)",
                    REQUIRED_UNANSWERED,
                )
    result.kept.sort()
    return result.close()


class _Shown:
    """Whether a question is shown (its precondition chain holds), memoised: each question is
    evaluated once, so the check stays linear however long the chains. A precondition naming a
    question the job does not have, or a cycle, cannot be evaluated and hides nothing."""

    def __init__(
        self, by_id: dict[str, ScreeningQuestion], answers: Sequence[AnswerLike], given: dict[str, int]
    ) -> None:
        self.by_id, self.answers, self.given = by_id, answers, given
        self.memo: dict[str, bool] = {}

    def __call__(self, question: ScreeningQuestion) -> bool:
        chain: list[ScreeningQuestion] = []
        seen: set[str] = set()
        current: ScreeningQuestion | None = question
        while current is not None and current.id not in self.memo and current.id not in seen:
            seen.add(current.id)
            chain.append(current)
            parent_id = current.precondition_question_id
            current = self.by_id.get(parent_id) if parent_id is not None else None
        # `current` is None (chain root), memoised, or a cycle back into the chain (hides nothing)
        parent_shown = True if current is None or current.id not in self.memo else self.memo[current.id]
        for q in reversed(chain):
            parent_shown = self._holds(q, parent_shown)
            self.memo[q.id] = parent_shown
        return self.memo[question.id]

    def _holds(self, q: ScreeningQuestion, parent_shown: bool) -> bool:
        parent_id = q.precondition_question_id
        if parent_id is None or parent_id not in self.by_id:
            return True
        if not parent_shown:
            return False
        i = self.given.get(parent_id, -1)
        if i < 0 or is_blank(self.answers[i].answer):
            return False
        options = {_token(o) for o in q.precondition_options or []}
        return not options or bool(_tokens(self.answers[i].answer) & options)


def _token(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _tokens(value: Any) -> set[str]:
    return {_token(v) for v in value} if isinstance(value, list) else {_token(value)}


def _type_fault(question: ScreeningQuestion, value: Any) -> str | None:
    """Why `value` does not fit the question's format (no value quoted), or None."""
    fmt = question.format
    kind = fmt.type
    if kind == "TEXT":
        if not isinstance(value, str):
            return "must be text"
        if fmt.max_length is not None and len(value) > fmt.max_length:
            return f"must be at most {fmt.max_length} characters"
        return None
    if kind == "NUMBER":
        if isinstance(value, str) and ambiguous_number(value):
            return AMBIGUOUS_NUMBER
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return "must be a number"
        if fmt.min is not None and value < fmt.min:
            return f"must be at least {_num(fmt.min)}"
        if fmt.max is not None and value > fmt.max:
            return f"must be at most {_num(fmt.max)}"
        return None
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "DATE":
        return None if isinstance(value, str) and _is_iso_date(value) else "must be an ISO 8601 date (YYYY-MM-DD)"
    if kind == "SINGLE_SELECT":
        if not isinstance(value, str):
            return "must be one option id (a string)"
        return None if value in _option_ids(question) else "is not one of the question's option ids"
    if kind == "MULTI_SELECT":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return "must be a list of option ids (strings)"
        if len(set(value)) != len(value):
            return "names an option more than once"
        ids = _option_ids(question)
        return None if all(v in ids for v in value) else "names an option that is not one of the question's option ids"
    if kind == "FILE":
        return _file_fault(question, value)
    if kind == "INFORMATION":
        return "is information only and takes no answer"
    return None


def _option_ids(question: ScreeningQuestion) -> frozenset[str]:
    return frozenset(o.id for o in question.format.options or [])


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _is_iso_date(value: str) -> bool:
    value = value.strip()
    if not _ISO_DATE.match(value):
        return False
    try:
        dt.date.fromisoformat(value[:10])
        if len(value) > 10:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _file_fault(question: ScreeningQuestion, value: Any) -> str | None:
    """A file answer: posted (FileAnswer, its type from its bytes) or kept (AttachmentRef)."""
    if isinstance(value, FileAnswer):
        size = None if value.data is None else len(value.data)
        content_type = value.content_type
        if value.data:
            try:
                content_type = files.sniff(value.data)
            except files.FileRejected:
                content_type = None  # intake refuses the file itself, with the reason
    elif isinstance(value, AttachmentRef):
        size, content_type = value.size, value.content_type
    else:
        return "must be a file {name, content_type, data | data_url}"
    fmt = question.format
    if fmt.max_file_size_bytes is not None and size is not None and size > fmt.max_file_size_bytes:
        return f"the file is larger than {fmt.max_file_size_bytes} bytes"
    if fmt.accepted_mime_types and content_type and not _mime_accepted(content_type, fmt.accepted_mime_types):
        return "the file's type is not one the question accepts (" + ", ".join(fmt.accepted_mime_types[:10]) + ")"
    return None


def _mime_accepted(content_type: str, accepted: Iterable[str]) -> bool:
    actual = content_type.split(";")[0].strip().lower()
    family = actual.split("/")[0] + "/*"
    return any(a.strip().lower() in (actual, family, "*/*") for a in accepted)


# -- normalising -----------------------------------------------------------------------------------


# A number as a person or a board writes one: digits, a decimal point or comma, an exponent. Not
# what float() also takes ("nan", "inf", "1_000", "١٢"), which no ATS field holds.
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT_TEXT = re.compile(r"[+-]?[0-9]+")
# "1,500": a thousands separator in English, a decimal comma in French; read either way it is off
# by a factor of 1,000 for half of those who write it, so it is no number until written plainly.
_THOUSANDS_OR_DECIMAL = re.compile(r"[+-]?(?!0,)[0-9]{1,3},[0-9]{3}")  # "0,125" is a decimal only
AMBIGUOUS_NUMBER = "must be a number without a thousands separator (1,500 reads as 1500 or as 1.5)"


def ambiguous_number(text: str) -> bool:
    """Whether `text` is a number only a reader's locale can settle ("50,000")."""
    return _THOUSANDS_OR_DECIMAL.fullmatch(text.strip()) is not None


def number_from_text(text: str) -> int | float | None:
    """The number `text` writes (docs/answers.md, "Normalising"), or None if it writes none: a
    decimal comma read as a point; an int when written as one and within 64 bits (what every
    connector's JSON and our stored answers carry), else a finite float. The one reader of typed
    numbers, for the canonical API's answers, HelloWork's and the apply pages' fields alike.
    "1,500" is none (`ambiguous_number`): a comma before exactly three digits is a thousands
    separator as often as a decimal comma."""
    if ambiguous_number(text):
        return None
    written = text.strip().replace(",", ".")
    if not _NUMBER_TEXT.fullmatch(written):
        return None
    # 19 digits at most before int(): it refuses (ValueError) text of over 4,300 digits
    if _INT_TEXT.fullmatch(written) and len(written.lstrip("+-")) <= 19 and INT64_MIN <= int(written) <= INT64_MAX:
        return int(written)
    number = float(written)
    return number if math.isfinite(number) else None


_TRUE = frozenset({"true", "yes", "y", "1", "on", "oui", "ja", "si", "sí", "kyllä"})
_FALSE = frozenset({"false", "no", "n", "0", "off", "non", "nein", "ei"})


def normalise(question: ScreeningQuestion | None, value: Any) -> Any:
    """An answer in the form its question's format wants, where the meaning is unambiguous
    (docs/answers.md, "Normalising"): an option named by its text (exactly, then ignoring case)
    or by true/false for a Yes/No choice becomes its option id; one option for a MULTI_SELECT
    becomes a list and a one-item list for a SINGLE_SELECT its item; "yes"/"true" for a BOOLEAN
    becomes true; "3,5" for a NUMBER 3.5; a number for a TEXT its decimal text. Boards send text,
    and clients written before option ids existed name options by their text; what does not
    convert is returned as it is, for `check_answers` to name. The stored answer is the
    normalised one, so every connector receives option ids."""
    if question is None:
        return value
    kind = question.format.type
    if kind in ("SINGLE_SELECT", "MULTI_SELECT"):
        return _normalise_choice(question, value, multi=kind == "MULTI_SELECT")
    if kind == "BOOLEAN" and isinstance(value, str):
        word = value.strip().casefold()
        return True if word in _TRUE else False if word in _FALSE else value
    if kind == "NUMBER" and isinstance(value, str):
        number = number_from_text(value)
        return value if number is None else number
    if kind == "TEXT" and isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _normalise_choice(question: ScreeningQuestion, value: Any, *, multi: bool) -> Any:
    if multi and not isinstance(value, list):
        value = [value]
    if not multi and isinstance(value, list) and len(value) == 1:
        value = value[0]
    options = question.format.options or []
    if not options:
        return value
    ids = {o.id for o in options}
    names: dict[str, str] = {}
    folded: dict[str, str] = {}
    for o in reversed(options):  # the first option of a name wins
        names[o.name] = o.id
        folded[o.name.strip().casefold()] = o.id

    def one(item: Any) -> Any:
        if isinstance(item, bool):
            words = _TRUE if item else _FALSE
            return next((o.id for o in options if o.name.strip().casefold() in words), item)
        if isinstance(item, int | float):
            item = str(item)
        if not isinstance(item, str) or item in ids:
            return item
        return names.get(item) or folded.get(item.strip().casefold(), item)

    return [one(v) for v in value] if isinstance(value, list) else one(value)
