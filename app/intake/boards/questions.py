"""Mapping a board's screening answers onto the ATS's questions: by the connection's explicit
mapping, then by question id, then by normalised text; and an answer's value as the question's
type wants it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.intake.boards.draft import ATS_READ_TIMEOUT_S, FileValue, normalise_text
from connectors.base import ConnectorError, StepWarning


@dataclass
class BoardAnswer:
    """One answer as a board sent it: its question id and text, and the value — text, an option
    (value, label), several options, or a file."""

    path: str
    board_id: str | None
    text: str | None
    value: str | bool | int | float | tuple[str, str] | list[tuple[str, str]] | FileValue


QuestionsFn = Callable[[], Awaitable[list[dict[str, Any]]]]


class QuestionMapper:
    """Board question → ATS question: the connection's explicit mapping first, then the ATS
    question with the same id, then the one whose text matches (normalised). The job's questions
    are read once, only when needed, within 2 s."""

    def __init__(self, explicit: Mapping[str, Any], fetch: QuestionsFn, board: str) -> None:
        self.explicit = {str(k): str(v) for k, v in explicit.items()} if isinstance(explicit, Mapping) else {}
        self.fetch = fetch
        self.board = board
        self._questions: list[dict[str, Any]] | None = None

    async def questions(self) -> list[dict[str, Any]]:
        if self._questions is None:
            try:
                async with asyncio.timeout(ATS_READ_TIMEOUT_S):
                    self._questions = list(await self.fetch())
            except (TimeoutError, ConnectorError):
                self._questions = []
        return self._questions

    async def target(self, answer: BoardAnswer) -> tuple[str | None, dict[str, Any] | None]:
        questions = await self.questions()
        by_id = {str(q.get("id")): q for q in questions}
        if answer.board_id is not None and answer.board_id in self.explicit:
            qid = self.explicit[answer.board_id]
            return qid, by_id.get(qid)
        if answer.board_id is not None and answer.board_id in by_id:
            return answer.board_id, by_id[answer.board_id]
        if answer.text:
            wanted = normalise_text(answer.text)
            for question in questions:
                if wanted and normalise_text(str(question.get("label") or "")) == wanted:
                    return str(question["id"]), question
        return None, None

    async def map(self, answers: Sequence[BoardAnswer], notes: list[StepWarning]) -> list[tuple[str, Any, str]]:
        """(ATS question id, value, the board's field path) for every answer that maps."""
        mapped: list[tuple[str, Any, str]] = []
        seen: set[str] = set()
        for answer in answers:
            qid, question = await self.target(answer)
            label = answer.board_id or answer.path
            if qid is None:
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
        return mapped


def option_value(value: Any, question: Mapping[str, Any] | None) -> Any:
    """An option answer as the ATS's option id: matched by id, by the board's value, or by label
    (normalised); the board's label when nothing matches (the connector reports it)."""
    options = list((question or {}).get("options") or [])

    def one(choice: tuple[str, str]) -> str:
        board_value, board_label = choice
        for option in options:
            if str(option.get("id")) in (board_value, board_label):
                return str(option["id"])
        wanted = normalise_text(board_label)
        for option in options:
            if normalise_text(str(option.get("label") or "")) == wanted:
                return str(option["id"])
        return board_label or board_value

    if isinstance(value, tuple):
        return one(value)
    if isinstance(value, list):
        return [one(v) if isinstance(v, tuple) else str(v) for v in value]
    return value
