"""Mapping a board's screening answers onto the ATS's questions (Kombo's `ScreeningQuestion`, read
through the catalog): by the connection's explicit mapping, then by question id, then by
normalised text; and an option answer as the question's option id. Linear in the answers: the
job's questions are indexed once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.catalog import ScreeningQuestion
from app.core.problems import Problem
from app.intake.boards.draft import ATS_READ_TIMEOUT_S, FileValue, normalise_text
from connectors.base import ConnectorError, StepWarning

MAX_UNMAPPED_NOTES = 20  # warnings listed for unmapped answers; the rest are counted in one more


@dataclass
class BoardAnswer:
    """One answer as a board sent it: its question id and text, and the value — text, an option
    (value, label), several options, or a file."""

    path: str
    board_id: str | None
    text: str | None
    value: str | bool | int | float | tuple[str, str] | list[tuple[str, str]] | FileValue


QuestionsFn = Callable[[], Awaitable[list[ScreeningQuestion]]]


class QuestionMapper:
    """Board question → ATS question: the connection's explicit mapping first, then the ATS
    question with the same id, then the one whose text matches (normalised). The job's questions
    are read once, only when needed, within 2 s (from the catalog's cache, docs/catalog.md)."""

    def __init__(self, explicit: Mapping[str, Any], fetch: QuestionsFn, board: str) -> None:
        self.explicit = {str(k): str(v) for k, v in explicit.items()} if isinstance(explicit, Mapping) else {}
        self.fetch = fetch
        self.board = board
        self._by_id: dict[str, ScreeningQuestion] | None = None
        self._by_text: dict[str, ScreeningQuestion] = {}

    async def questions(self) -> dict[str, ScreeningQuestion]:
        if self._by_id is None:
            try:
                async with asyncio.timeout(ATS_READ_TIMEOUT_S):
                    questions = list(await self.fetch())
            except (TimeoutError, ConnectorError, Problem):
                questions = []  # unreadable now: intake checks (or defers) the answers itself
            self._by_id = {q.id: q for q in questions}
            for q in reversed(questions):  # the first question of a text wins
                if normalise_text(q.title):
                    self._by_text[normalise_text(q.title)] = q
        return self._by_id

    async def target(self, answer: BoardAnswer) -> tuple[str | None, ScreeningQuestion | None]:
        by_id = await self.questions()
        if answer.board_id is not None and answer.board_id in self.explicit:
            qid = self.explicit[answer.board_id]
            return qid, by_id.get(qid)
        if answer.board_id is not None and answer.board_id in by_id:
            return answer.board_id, by_id[answer.board_id]
        if answer.text:
            question = self._by_text.get(normalise_text(answer.text))
            if question is not None:
                return question.id, question
        return None, None

    async def map(self, answers: Sequence[BoardAnswer], notes: list[StepWarning]) -> list[tuple[str, Any, str]]:
        """(ATS question id, value, the board's field path) for every answer that maps."""
        mapped: list[tuple[str, Any, str]] = []
        seen: set[str] = set()
        unmapped = 0
        for answer in answers:
            qid, question = await self.target(answer)
            label = answer.board_id or answer.path
            if qid is None:
                unmapped += 1
                if unmapped <= MAX_UNMAPPED_NOTES:
                    notes.append(
                        StepWarning(
                            "answer_unmapped",
                            f"{self.board} question {label[:100]} matches no question of the job; not sent",
                        )
                    )
                continue
            if qid in seen:
                continue
            seen.add(qid)
            mapped.append((qid, option_value(answer.value, question), answer.path))
        if unmapped > MAX_UNMAPPED_NOTES:
            notes.append(
                StepWarning(
                    "answer_unmapped",
                    f"and {unmapped - MAX_UNMAPPED_NOTES} more {self.board} questions match no question of the job",
                )
            )
        return mapped


def option_value(value: Any, question: ScreeningQuestion | None) -> Any:
    """An option answer as the ATS's option id: matched by id, by the board's value, or by label
    (normalised); the board's label when nothing matches (the answer check names it)."""
    options = list(question.format.options or []) if question is not None else []
    ids = {o.id for o in options}
    by_label = {normalise_text(o.name): o.id for o in reversed(options)}

    def one(choice: tuple[str, str]) -> str:
        board_value, board_label = choice
        for candidate in (board_value, board_label):
            if candidate in ids:
                return candidate
        return by_label.get(normalise_text(board_label)) or board_label or board_value

    if isinstance(value, tuple):
        return one(value)
    if isinstance(value, list):
        return [one(v) if isinstance(v, tuple) else str(v) for v in value]
    return value
