"""The apply pages type a NUMBER field's text as the canonical API and HelloWork do
(app/core/answers.py `number_from_text`), then hold it to the question's bounds."""

from __future__ import annotations

import pytest

from app.core.catalog import QuestionFormat, ScreeningQuestion
from app.intake.boards import apply_form

YEARS = ScreeningQuestion(
    id="years", remote_id="505", title="Years", format=QuestionFormat(type="NUMBER", min=0, max=50), required=False
)


@pytest.mark.parametrize(("text", "number"), [("7", 7), (" 3,5 ", 3.5), ("1e1", 10.0)])
def test_a_number_is_typed_as_written(text: str, number: float) -> None:
    typed = apply_form._typed(YEARS, text)
    assert typed == number and type(typed) is type(number)


@pytest.mark.parametrize("text", ["nan", "inf", "1_000", "١٢", "seven"])
def test_text_that_is_no_number_is_refused_beside_the_field(text: str) -> None:
    with pytest.raises(ValueError, match=apply_form.NOT_A_NUMBER):
        apply_form._typed(YEARS, text)


def test_a_number_out_of_the_questions_bounds_says_them() -> None:
    with pytest.raises(ValueError, match="between 0 and 50"):
        apply_form._typed(YEARS, "51")
