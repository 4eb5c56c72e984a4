"""Indeed Apply's screener-questions document from the job's screening questions (docs/apply-pages.md,
"Indeed's screener questions"), and the answers Indeed posts back typed by those questions.

The ids are the ATS's question ids and the option values its option ids, so Indeed's answers map
by id (questions.py tries the id before the text); a BOOLEAN question is a select of `true`/`false`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.core.catalog import ScreeningQuestion

SCHEMA_VERSION = "1.3"


def _condition(question: ScreeningQuestion) -> dict[str, str] | None:
    if question.precondition_question_id is None or not question.precondition_options:
        return None
    first = question.precondition_options[0]
    value = ("true" if first else "false") if isinstance(first, bool) else str(first)
    return {"id": question.precondition_question_id, "value": value}


def _question(question: ScreeningQuestion) -> dict[str, Any] | None:
    fmt = question.format
    out: dict[str, Any] = {"id": question.id}
    kind = fmt.type
    if kind == "INFORMATION":
        out["type"] = "information"
        out["text"] = question.title + (f"\n{question.description}" if question.description else "")
        return out
    if kind == "TEXT":
        out["type"] = "textarea" if fmt.display_type == "MULTI_LINE" else "text"
        if fmt.max_length is not None:
            out["limit"] = fmt.max_length
    elif kind == "NUMBER":
        whole = all(b is None or float(b).is_integer() for b in (fmt.min, fmt.max))
        out["type"] = "text"
        out["format"] = "integer" if whole else "decimal"
        for bound in ("min", "max"):
            value = getattr(fmt, bound)
            if value is not None:
                out[bound] = int(value) if float(value).is_integer() else value
    elif kind in ("SINGLE_SELECT", "MULTI_SELECT"):
        out["type"] = "select" if kind == "SINGLE_SELECT" else "multiselect"
        out["options"] = [{"value": o.id, "label": o.name} for o in fmt.options or []]
    elif kind == "BOOLEAN":
        out["type"] = "select"
        out["options"] = [{"value": "true", "label": "Yes"}, {"value": "false", "label": "No"}]
    elif kind == "DATE":
        out["type"] = "date"
        out["format"] = "yyyy-MM-dd"
    elif kind == "FILE":
        out["type"] = "file"
    else:
        return None  # UNKNOWN: nothing Indeed can ask
    out["question"] = question.title
    if question.required:
        out["required"] = True
    condition = _condition(question)
    if condition:
        out["condition"] = condition
    return out


def document(questions: Sequence[ScreeningQuestion]) -> dict[str, Any]:
    """`{"schemaVersion", "screenerQuestions": {"questions": [...]}}` in the ATS's order.
    EEO/demographic questions are left out (Indeed asks its own, US only)."""
    ordered = sorted(questions, key=lambda q: q.index if q.index is not None else 1 << 30)
    items = [q for q in (_question(q) for q in ordered if q.category is None) if q is not None]
    return {"schemaVersion": SCHEMA_VERSION, "screenerQuestions": {"questions": items}}
