"""app/core/answers.py: every rule of the shared answer check, its messages (question ids, never
values) and its cost (linear: 50,000 answers within a time bound)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.core.answers import (
    MAX_FAULTS,
    MAX_WARNINGS,
    AnswerCheck,
    check_answers,
    normalise,
    number_from_text,
    repeated_answers,
)
from app.core.catalog import Option, QuestionFormat, ScreeningQuestion
from app.core.model import AttachmentRef, FileAnswer, ScreeningAnswer, StoredAnswer

PDF = b"%PDF-1.4\n" + b"x" * 100
PNG = b"\x89PNG\r\n\x1a\n" + b"x" * 100


def q(
    qid: str, kind: str, *, required: bool = False, parent: str | None = None, when: Any = None, **fmt: Any
) -> ScreeningQuestion:
    if kind in ("SINGLE_SELECT", "MULTI_SELECT") and "options" not in fmt:
        fmt["options"] = [Option(id=o, remote_id=o, name=o.upper()) for o in ("a", "b", "c")]
    return ScreeningQuestion(
        id=qid,
        remote_id=qid,
        title=f"Question {qid}",
        format=QuestionFormat(type=kind, **fmt),  # type: ignore[arg-type]
        required=required,
        precondition_question_id=parent,
        precondition_options=when,
    )


def a(qid: str, value: Any) -> ScreeningAnswer:
    return ScreeningAnswer(question_id=qid, answer=value)


def fields(result: AnswerCheck) -> list[tuple[str, str]]:
    return [(e.field, e.message) for e in result.errors]


TYPED = [
    q("t", "TEXT", max_length=5),
    q("n", "NUMBER", min=1, max=10),
    q("s", "SINGLE_SELECT"),
    q("m", "MULTI_SELECT"),
    q("b", "BOOLEAN"),
    q("d", "DATE"),
    q("f", "FILE", accepted_mime_types=["application/pdf"], max_file_size_bytes=1000),
    q("i", "INFORMATION"),
]


def test_answers_of_every_type_that_fit_pass_and_are_kept() -> None:
    answers = [
        a("t", "hello"),
        a("n", 10),
        a("s", "b"),
        a("m", ["a", "c"]),
        a("b", False),
        a("d", "2027-01-15"),
        a("f", FileAnswer(name="cv.pdf", data=PDF)),
    ]
    result = check_answers(TYPED, answers)
    assert result.ok and result.warnings == [] and result.kept == list(range(7))


@pytest.mark.parametrize(
    "answer, message",
    [
        (a("t", 5), "question t: must be text"),
        (a("t", "toolong"), "question t: must be at most 5 characters"),
        (a("n", "5"), "question n: must be a number"),
        (a("n", True), "question n: must be a number"),
        (a("n", float("nan")), "question n: must be a number"),
        (a("n", 0), "question n: must be at least 1"),
        (a("n", 10.5), "question n: must be at most 10"),
        (a("s", "z"), "question s: is not one of the question's option ids"),
        (a("s", ["a"]), "question s: must be one option id (a string)"),
        (a("m", "a"), "question m: must be a list of option ids (strings)"),
        (a("m", ["a", "a"]), "question m: names an option more than once"),
        (a("m", ["a", "z"]), "question m: names an option that is not one of the question's option ids"),
        (a("b", "true"), "question b: must be true or false"),
        (a("d", "15.01.2027"), "question d: must be an ISO 8601 date (YYYY-MM-DD)"),
        (a("d", "2027-02-30"), "question d: must be an ISO 8601 date (YYYY-MM-DD)"),
        (a("f", "cv.pdf"), "question f: must be a file {name, content_type, data | data_url}"),
        (a("f", FileAnswer(name="x.png", data=PNG)), "question f: the file's type is not one the question accepts"),
        (a("f", FileAnswer(name="x.pdf", data=PDF * 20)), "question f: the file is larger than 1000 bytes"),
        (a("i", "anything"), "question i: is information only and takes no answer"),
    ],
)
def test_an_answer_that_does_not_fit_its_format_is_named_by_field_and_question(
    answer: ScreeningAnswer, message: str
) -> None:
    result = check_answers(TYPED, [a("b", True), answer] if answer.question_id != "b" else [a("t", "ok"), answer])
    assert [e.field for e in result.errors] == ["screening_question_answers[1].answer"]
    assert result.errors[0].message.startswith(message)
    assert 1 not in result.kept


def test_dates_may_be_date_times_and_stored_files_are_checked_by_their_ref() -> None:
    assert check_answers(TYPED, [a("d", "2027-01-15T09:30:00Z")]).ok
    ok = AttachmentRef(index=0, name="cv.pdf", type="ANSWER", content_type="application/pdf", size=500)
    big = AttachmentRef(index=1, name="cv.pdf", type="ANSWER", content_type="application/pdf", size=5000)
    assert check_answers(TYPED, [StoredAnswer("f", ok)]).ok
    assert fields(check_answers(TYPED, [StoredAnswer("f", big)])) == [
        ("screening_question_answers[0].answer", "question f: the file is larger than 1000 bytes")
    ]
    wild = [q("f", "FILE", accepted_mime_types=["image/*"])]
    assert check_answers(wild, [a("f", FileAnswer(name="x.png", data=PNG))]).ok


def test_required_questions_must_be_answered_and_blank_is_no_answer() -> None:
    questions = [
        q("1", "TEXT", required=True),
        q("2", "BOOLEAN", required=True),
        q("3", "INFORMATION", required=True),
        q("4", "TEXT"),
    ]
    result = check_answers(questions, [a("1", "  "), a("4", "x")])
    assert fields(result) == [
        ("screening_question_answers", "question 1: required"),
        ("screening_question_answers", "question 2: required"),
    ]
    assert check_answers(questions, [a("1", "x"), a("2", False)]).ok  # False is an answer


def test_an_application_answering_nothing_is_warned_of_required_questions_not_refused() -> None:
    """A client without a questions UI (Kombo's auto-answer case): the ATS decides."""
    questions = [q("1", "TEXT", required=True), q("2", "TEXT")]
    for answers in ([], [a("1", "")]):
        result = check_answers(questions, answers)
        assert result.ok and result.warnings == [
            ("required_question_unanswered", "question 1 is required and was not answered (no answers given)")
        ]


CHAIN = [
    q("1", "BOOLEAN", required=True),
    q("2", "MULTI_SELECT", required=True, parent="1", when=[True]),
    q("3", "SINGLE_SELECT", parent="2", when=["b"]),
    q("4", "TEXT", required=True, parent="3", when=["c"]),
]


@pytest.mark.parametrize(
    "answers, expected",
    [
        ([a("1", False)], []),
        ([a("1", True), a("2", ["a"])], []),
        ([a("1", True)], [("screening_question_answers", "question 2: required")]),
        (
            [a("1", False), a("2", ["a"])],
            [
                (
                    "screening_question_answers[1].answer",
                    "question 2: answered, but its precondition on question 1 is not met",
                )
            ],
        ),
        # 4 is shown only when 3 = c, which is shown only when 2 holds b
        ([a("1", True), a("2", ["b"]), a("3", "c")], [("screening_question_answers", "question 4: required")]),
        (
            [a("1", True), a("2", ["a"]), a("3", "c"), a("4", "hi")],
            [
                (
                    "screening_question_answers[2].answer",
                    "question 3: answered, but its precondition on question 2 is not met",
                ),
                (
                    "screening_question_answers[3].answer",
                    "question 4: answered, but its precondition on question 3 is not met",
                ),
            ],
        ),
        # a hidden parent hides its child even when the child's own option matches
        (
            [a("1", False), a("3", "c"), a("4", "hi")],
            [
                (
                    "screening_question_answers[1].answer",
                    "question 3: answered, but its precondition on question 2 is not met",
                ),
                (
                    "screening_question_answers[2].answer",
                    "question 4: answered, but its precondition on question 3 is not met",
                ),
            ],
        ),
        ([a("1", True), a("2", ["b"]), a("3", "c"), a("4", "hi")], []),
    ],
)
def test_conditional_questions_follow_their_precondition_chain(
    answers: list[ScreeningAnswer], expected: list[tuple[str, str]]
) -> None:
    assert fields(check_answers(CHAIN, answers)) == expected


def test_a_precondition_on_a_missing_question_or_a_cycle_hides_nothing() -> None:
    orphan = [q("1", "TEXT", required=True, parent="gone", when=["x"]), q("2", "TEXT")]
    assert fields(check_answers(orphan, [a("2", "x")])) == [("screening_question_answers", "question 1: required")]
    cycle = [q("1", "TEXT", parent="2"), q("2", "TEXT", parent="1")]
    check_answers(cycle, [a("1", "x"), a("2", "y")])  # terminates


def test_repeated_answers_are_refused_and_unknown_questions_are_warnings() -> None:
    result = check_answers(TYPED, [a("t", "x"), a("zz", "x"), a("t", "y")])
    assert fields(result) == [("screening_question_answers[2].question_id", "question t: answered more than once")]
    assert result.warnings == [("answer_not_sent", "question zz is not a question of this job; its answer is not sent")]
    assert result.kept == [0]
    unknown_type = [q("u", "UNKNOWN", required=True)]
    result = check_answers(unknown_type, [a("u", "x")])
    assert result.ok and result.kept == [] and "cannot check" in result.warnings[0].message


def test_without_questions_only_repeats_are_checked() -> None:
    result = repeated_answers([a("1", "x"), a("2", ""), a("1", "y")])
    assert fields(result) == [("screening_question_answers[2].question_id", "question 1: answered more than once")]
    assert result.kept == [0]


def test_messages_never_carry_the_answer() -> None:
    secret = "Virtanen 040-1234567"
    answers = [a("t", secret), a("n", secret), a("s", secret), a("m", [secret]), a("b", secret), a("d", secret)]
    answers += [a("i", secret), a("f", secret)]
    result = check_answers(TYPED, answers)
    assert len(result.errors) == len(answers)
    assert not any("Virtanen" in e.message or "040" in e.message for e in result.errors)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("7", 7),
        (" -12 ", -12),
        ("+3", 3),
        ("3,5", 3.5),
        ("3.", 3.0),
        (".5", 0.5),
        ("1e3", 1000.0),  # written as a float, so a float
        ("9223372036854775807", 2**63 - 1),
        ("9223372036854775808", 9.223372036854775808e18),  # past 64 bits: the float it is near
        ("12345678901234567", 12345678901234567),  # exact, where float() would round it
        ("1" * 300, float("1" * 300)),  # past 64 bits: a float
        ("12,75", 12.75),
        ("0,125", 0.125),  # no thousands separator after a lone 0
        ("1,5000", 1.5),  # four digits after the comma: no thousands separator
        ("1234,567", 1234.567),  # four before it: none either
    ],
)
def test_numbers_are_read_as_they_are_written(text: str, number: float) -> None:
    read = number_from_text(text)
    assert read == number and type(read) is type(number)


@pytest.mark.parametrize(
    "text",
    [
        "nan",
        "inf",
        "-Infinity",
        "1e400",
        "9" * 5000,
        "1" * 5000,  # int() raises past 4,300 digits
        "1_000",
        "0x10",
        "١٢",
        "",
        "1,5,0",
        "seven",
        "1,500",  # 1500 or 1.5: only the writer's locale knows
        "-50,000",
        " 999,999 ",
    ],
)
def test_what_float_would_take_but_no_ats_field_holds_is_no_number(text: str) -> None:
    assert number_from_text(text) is None


def test_an_ambiguous_number_is_refused_with_the_reason() -> None:
    by_id = {question.id: question for question in TYPED}
    assert normalise(by_id["n"], "50,000") == "50,000"  # left as it came, for the check to name
    [fault] = check_answers(TYPED, [a("n", "50,000")]).errors
    assert "thousands separator" in fault.message


def test_answers_are_normalised_where_the_meaning_is_unambiguous() -> None:
    by_id = {question.id: question for question in TYPED}
    yes_no = q("yn", "SINGLE_SELECT", options=[Option(id="h1", remote_id="h1", name="Yes"), Option("h2", "h2", "No")])
    assert normalise(by_id["b"], "Yes") is True and normalise(by_id["b"], "no") is False
    assert normalise(by_id["b"], "maybe") == "maybe"
    assert normalise(by_id["n"], "3,5") == 3.5 and normalise(by_id["n"], "7") == 7
    assert normalise(by_id["n"], "seven") == "seven" and normalise(by_id["n"], "inf") == "inf"
    assert normalise(by_id["t"], 55000) == "55000" and normalise(by_id["t"], True) is True
    assert normalise(by_id["m"], "a") == ["a"] and normalise(by_id["s"], ["a"]) == "a"
    assert normalise(by_id["s"], "B") == "b" and normalise(by_id["m"], ["C", "a"]) == ["c", "a"]  # by name
    assert normalise(by_id["s"], "z") == "z"  # left for the check to name
    assert normalise(yes_no, True) == "h1" and normalise(yes_no, False) == "h2" and normalise(yes_no, "no") == "h2"
    assert normalise(None, "x") == "x"
    normalised = [a("s", normalise(by_id["s"], "C")), a("b", normalise(by_id["b"], "true"))]
    assert check_answers(TYPED, normalised).ok


def test_fifty_thousand_answers_cost_linear_time_and_bounded_output() -> None:
    questions = [q(str(n), "TEXT", required=n % 2 == 0) for n in range(50)] + CHAIN[1:]
    unknown = [a(f"u{n}", "x") for n in range(50_000)]
    repeats = [a("0", "x") for _ in range(50_000)]
    started = time.perf_counter()
    first = check_answers(questions, unknown)
    second = check_answers(questions, repeats)
    third = repeated_answers(repeats)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"{elapsed:.2f} s for 150,000 answers"
    assert len(first.warnings) == MAX_WARNINGS + 1 and first.warnings[-1].message.startswith("and 500")
    assert len(second.errors) == MAX_FAULTS + 1 and second.errors[-1].message.startswith("and ")
    assert len(third.errors) == MAX_FAULTS + 1
