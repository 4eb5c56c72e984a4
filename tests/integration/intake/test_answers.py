"""Every answer checked at intake (docs/answers.md), per connector that reads its questions, end to
end: answers built only from the catalog API's own output (GET .../screening-questions), posted,
and seen landing in the emulator; faults refused with a 422 naming the field and the question,
nothing stored; the ATS down at intake accepted, then checked by the worker before any write."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from connectors.sandbox.flatchr import COMPANY_ID as FLATCHR_COMPANY
from tests.support.builders import PDF_BYTES, b64, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay


@dataclass(frozen=True)
class Spec:
    """What differs per ATS: its job with questions, a closed job, what a valid application needs
    besides the answers, how the emulator shows the answers it got, how to add a required question."""

    connector: str
    job: str
    closed_job: str
    files: bool  # the ATS takes file answers (else FILE questions are left out)
    extra: dict[str, Any]
    landed: Callable[[dict[str, Any]], dict[str, Any]] | None  # None: its own tests look (OTYS, Flatchr)
    add_required: Callable[[Emulator, str], None]
    cases: tuple[str, ...]
    table: dict[str, Any] = field(default_factory=dict)
    # the ATS's reads of the job in the emulator's counts: per HTTP path, or (OTYS, JSON-RPC on one
    # path) per method
    reads: Callable[[dict[str, Any], str], dict[str, int]] = lambda records, job: {
        k: v for k, v in records["requests"].items() if k.startswith("GET") and job in k
    }


def _laura_landed(records: dict[str, Any]) -> dict[str, Any]:
    [application] = records["applications"]
    return {str(a["question_id"]): a["value"] for a in application["screening_question_answers"]}


def _laura_add(emulator: Emulator, job: str) -> None:
    body = {"title": "Driving licence number", "format": {"type": "text"}, "required": True}
    emulator.http.post(f"/_sandbox/laura/jobs/{job}/questions", json=body).raise_for_status()


def _factorial_landed(records: dict[str, Any]) -> dict[str, Any]:
    return {str(a["ats_question_id"]): a["value"] for a in records["answers"]}


def _factorial_add(emulator: Emulator, job: str) -> None:
    body = {"ats_job_posting_id": job, "label": "Notice period", "question_type": "text", "mandatory": True}
    emulator.http.post("/_sandbox/factorial/questions", json=body).raise_for_status()


CV = [{"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(PDF_BYTES)}]
SPECS = {
    "laura": Spec(
        "laura",
        job="101",
        closed_job="103",
        files=False,
        extra={},
        landed=_laura_landed,
        add_required=_laura_add,
        cases=("wrong_option", "out_of_range", "required", "precondition"),
    ),
    "otys": Spec(
        "otys",
        job="a1b2c3d4e5f60718293a4b5c6d7e8f90",
        closed_job="c3d4e5f60718293a4b5c6d7e8f90a1b2",
        files=True,
        extra={},
        landed=None,
        add_required=lambda emulator, job: None,
        cases=("wrong_option", "required"),
        reads=lambda records, job: {
            k: v for k, v in records["calls"].items() if "VacancyService" in k or "QuestionSetService" in k
        },
    ),
    "flatchr": Spec(
        "flatchr",
        job="Vq5r6pYxam9AmMvP",
        closed_job="Zc3Vb6Nm9Qw2Er5T",
        files=True,
        extra={"attachments": CV},
        landed=None,
        add_required=lambda emulator, job: None,
        cases=("wrong_option", "required", "precondition"),
        table={"company_id": FLATCHR_COMPANY},
    ),
    "factorial": Spec(
        "factorial",
        job="2001",
        closed_job="2003",
        files=True,
        extra={"attachments": CV},
        landed=_factorial_landed,
        add_required=_factorial_add,
        cases=("wrong_option", "required"),
    ),
}


@pytest.fixture
def relay_of(make_relay: Callable[..., Relay], emulator: Callable[..., Emulator]) -> Callable[..., Relay]:
    def make(spec: Spec, **table: Any) -> Relay:
        ats = emulator(spec.connector)
        return make_relay({"ats": connection_table(spec.connector, ats.url, **{**spec.table, **table})})

    return make


def application(spec: Spec, answers: list[dict[str, Any]], *, job: str | None = None, n: int = 0) -> dict[str, Any]:
    return {
        "connection_id": "ats",
        "candidate": {"first_name": "Aino", "last_name": "Virtanen", "email_address": f"aino{n}@example.fi"},
        "application": {"job_id": job or spec.job},
        "screening_question_answers": answers,
        **spec.extra,
    }


async def questions_of(relay: Relay, job: str) -> list[dict[str, Any]]:
    """The job's questions as the catalog API gives them: the only source of the answers."""
    response = await relay.client.get(f"/v1/connections/ats/jobs/{job}/screening-questions", headers=relay.admin)
    assert response.status_code == 200, response.text
    questions: list[dict[str, Any]] = response.json()["data"]
    assert questions
    return questions


def _token(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def good_answers(questions: list[dict[str, Any]], *, files: bool) -> list[dict[str, Any]]:
    """An answer to every question that is shown, of its format, choosing for a precondition's
    parent the option its child needs, so that chains are answered too."""
    by_id = {q["id"]: q for q in questions}
    needed: dict[str, list[Any]] = {}
    for q in questions:
        if q.get("precondition_question_id"):
            needed.setdefault(q["precondition_question_id"], list(q.get("precondition_options") or []))
    given: dict[str, Any] = {}

    def shown(q: dict[str, Any]) -> bool:
        parent_id = q.get("precondition_question_id")
        if not parent_id or parent_id not in by_id:
            return True
        if not shown(by_id[parent_id]) or parent_id not in given:
            return False
        wanted = {_token(o) for o in q.get("precondition_options") or []}
        value = given[parent_id]
        tokens = {_token(v) for v in value} if isinstance(value, list) else {_token(value)}
        return not wanted or bool(tokens & wanted)

    for q in sorted(questions, key=lambda q: (q.get("index") or 0, q["id"])):
        if shown(q):
            value = _answer(q, needed.get(q["id"], []), files=files)
            if value is not None:
                given[q["id"]] = value
    return [{"question_id": qid, "answer": value} for qid, value in given.items()]


def _answer(q: dict[str, Any], wanted: list[Any], *, files: bool) -> Any:
    fmt = q["format"]
    kind = fmt["type"]
    if kind == "TEXT":
        text = "me@example.org" if fmt.get("display_type") == "EMAIL" else "Happy to relocate."
        return text[: fmt.get("max_length") or 100]
    if kind == "NUMBER":
        low, high = fmt.get("min"), fmt.get("max")
        return int(low if low is not None else high if high is not None else 3)
    if kind == "BOOLEAN":
        return next((w for w in wanted if isinstance(w, bool)), True)
    if kind == "DATE":
        return "2027-02-01"
    ids = [o["id"] for o in fmt.get("options") or []]
    if kind == "SINGLE_SELECT":
        return next((w for w in wanted if w in ids), ids[0])
    if kind == "MULTI_SELECT":
        return [w for w in wanted if w in ids] or ids[:1]
    if kind == "FILE" and files:
        return {"name": "portfolio.pdf", "content_type": "application/pdf", "data": b64(PDF_BYTES)}
    return None  # INFORMATION, UNKNOWN: nothing to answer


def index_of(answers: list[dict[str, Any]], question_id: str) -> int:
    return next(i for i, a in enumerate(answers) if a["question_id"] == question_id)


def faulty(case: str, questions: list[dict[str, Any]], answers: list[dict[str, Any]]) -> tuple[list[Any], str, str]:
    """(answers with one fault, the field that must be named, the question id it must name)."""
    by_id = {q["id"]: q for q in questions}
    answered = {a["question_id"] for a in answers}
    parents = {q.get("precondition_question_id") for q in questions}
    if case == "wrong_option":
        q = next(q for q in questions if q["format"]["type"] == "SINGLE_SELECT" and q["id"] in answered)
        i = index_of(answers, q["id"])
        answers[i] = {"question_id": q["id"], "answer": "no-such-option"}
        return answers, f"screening_question_answers[{i}].answer", q["id"]
    if case == "out_of_range":
        q = next(q for q in questions if q["format"]["type"] == "NUMBER" and q["format"].get("max") is not None)
        i = index_of(answers, q["id"])
        answers[i] = {"question_id": q["id"], "answer": q["format"]["max"] + 1}
        return answers, f"screening_question_answers[{i}].answer", q["id"]
    if case == "required":
        q = next(q for q in questions if q["required"] and q["id"] in answered and q["id"] not in parents)
        return [a for a in answers if a["question_id"] != q["id"]], "screening_question_answers", q["id"]
    assert case == "precondition"
    child = next(q for q in questions if q.get("precondition_question_id") in answered and q["id"] in answered)
    parent = by_id[child["precondition_question_id"]]
    wanted = {_token(o) for o in child.get("precondition_options") or []}
    if parent["format"]["type"] == "BOOLEAN":
        other: Any = next(v for v in (True, False) if _token(v) not in wanted)
    else:
        other = next(o["id"] for o in parent["format"]["options"] if o["id"] not in wanted)
        other = [other] if parent["format"]["type"] == "MULTI_SELECT" else other
    answers[index_of(answers, parent["id"])] = {"question_id": parent["id"], "answer": other}
    return answers, f"screening_question_answers[{index_of(answers, child['id'])}].answer", child["id"]


async def assert_nothing_stored(relay: Relay) -> None:
    assert await relay.queued_jobs() == 0
    assert await relay.redis.keys("ar:d:*") == [] and await relay.redis.keys("ar:idem:*") == []


# -- answers that fit land in the ATS --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(n for n, s in SPECS.items() if s.landed is not None))
async def test_answers_built_from_the_catalog_land_in_the_ats(
    relay_of: Callable[..., Relay], emulator: Callable[..., Emulator], name: str
) -> None:
    spec = SPECS[name]
    relay = relay_of(spec)
    questions = await questions_of(relay, spec.job)
    answers = good_answers(questions, files=spec.files)
    kinds = {q["format"]["type"] for q in questions if any(a["question_id"] == q["id"] for a in answers)}
    assert {"TEXT", "SINGLE_SELECT", "MULTI_SELECT"} <= kinds, kinds
    posted = [*answers, {"question_id": "no-such-question", "answer": "x"}]
    response = await relay.post(application(spec, posted, job=f"remote:{spec.job}"))  # Kombo's spelling
    assert response.status_code == 202, response.text
    assert any("no-such-question" in w["message"] for w in response.json()["warnings"])
    await relay.start_worker()
    delivery = await relay.wait_for(response.json()["id"], "delivered")
    assert delivery["job_id"] == spec.job
    assert spec.landed is not None
    landed = spec.landed(emulator(spec.connector).records())
    files = {q["id"] for q in questions if q["format"]["type"] == "FILE"}
    assert set(landed) == {a["question_id"] for a in answers} - files  # a file answer is a warning in Factorial
    by_id = {q["id"]: q for q in questions}
    for a in answers:
        q = by_id[a["question_id"]]
        if q["format"]["type"] == "SINGLE_SELECT":
            [option] = [o for o in q["format"]["options"] if o["id"] == a["answer"]]
            assert str(landed[q["id"]]) in (option["id"], option["name"])  # Laura's id, Factorial's text


# -- faults refused at intake ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "case"), [(n, c) for n, s in sorted(SPECS.items()) for c in s.cases])
async def test_a_fault_is_a_422_naming_the_field_and_the_question_and_nothing_is_stored(
    relay_of: Callable[..., Relay], emulator: Callable[..., Emulator], name: str, case: str
) -> None:
    spec = SPECS[name]
    relay = relay_of(spec)
    if case == "required":
        spec.add_required(emulator(spec.connector), spec.job)
    questions = await questions_of(relay, spec.job)
    answers, field_path, question_id = faulty(case, questions, good_answers(questions, files=spec.files))
    response = await relay.post(application(spec, answers))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "PLATFORM.INPUT_INVALID"
    named = [e for e in problem["errors"] if e["field"] == field_path and f"question {question_id}:" in e["message"]]
    assert named, problem
    assert "Happy to relocate" not in response.text and "no-such-option" not in response.text  # no values
    await assert_nothing_stored(relay)


@pytest.mark.parametrize("name", sorted(SPECS))
async def test_a_closed_job_is_refused_with_ats_job_closed(relay_of: Callable[..., Relay], name: str) -> None:
    spec = SPECS[name]
    relay = relay_of(spec)
    response = await relay.post(application(spec, [], job=spec.closed_job))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "ATS.JOB_CLOSED"
    assert response.json()["errors"][0]["field"] == "application.job_id"
    await assert_nothing_stored(relay)
    unknown = await relay.post(application(spec, [], job="987654"))
    assert unknown.status_code == 404 and unknown.json()["code"] == "ATS.JOB_NOT_FOUND"


# -- the ATS down at intake: accepted, checked by the worker ---------------------------------------


@pytest.mark.parametrize("name", sorted(SPECS))
async def test_the_ats_down_at_intake_accepts_and_the_worker_dead_letters_a_bad_answer(
    relay_of: Callable[..., Relay], emulator: Callable[..., Emulator], name: str
) -> None:
    spec = SPECS[name]
    relay = relay_of(spec)
    ats = emulator(spec.connector)
    questions = await questions_of(relay, spec.job)
    answers, _, question_id = faulty("wrong_option", questions, good_answers(questions, files=spec.files))
    for key in await relay.redis.keys("ar:cat*"):  # nothing cached
        await relay.redis.delete(key)
    ats.faults(error_rate=1.0, error_status=503)
    started = time.monotonic()
    response = await relay.post(application(spec, answers))
    assert response.status_code == 202, response.text
    assert time.monotonic() - started < 3.0  # the 2 s budget, not the connector's timeout
    assert any(w["code"] == "answers_unchecked" for w in response.json()["warnings"])
    ats.faults()
    ats.reset()
    await relay.start_worker()
    delivery = await relay.wait_for(response.json()["id"], "failed")
    error = delivery["last_error"]
    assert error["step"] == "check_answers" and error["code"] == "PLATFORM.INPUT_INVALID"
    assert f"question {question_id}:" in error["message"] and "no-such-option" not in error["message"]
    records = ats.records()
    assert records.get("candidates", []) == [] and records.get("applications", []) == []  # nothing written


async def test_the_ats_down_at_intake_with_good_answers_is_delivered(
    relay_of: Callable[..., Relay], emulator: Callable[..., Emulator]
) -> None:
    spec = SPECS["laura"]
    relay = relay_of(spec)
    ats = emulator(spec.connector)
    answers = good_answers(await questions_of(relay, spec.job), files=spec.files)
    for key in await relay.redis.keys("ar:cat*"):
        await relay.redis.delete(key)
    ats.faults(error_rate=1.0, error_status=503)
    response = await relay.post(application(spec, answers))
    assert response.status_code == 202, response.text
    ats.faults()
    await relay.start_worker()
    await relay.wait_for(response.json()["id"], "delivered")
    assert spec.landed is not None and set(spec.landed(ats.records())) == {a["question_id"] for a in answers}


# -- the cache: one ATS read for a burst, a new question seen after the TTL ------------------------


@pytest.mark.parametrize("name", sorted(SPECS))
async def test_a_burst_of_50_intakes_for_one_job_reads_the_ats_once(
    relay_of: Callable[..., Relay], emulator: Callable[..., Emulator], name: str
) -> None:
    spec = SPECS[name]
    relay = relay_of(spec)
    ats = emulator(spec.connector)
    questions = await questions_of(relay, spec.job)
    answers = good_answers(questions, files=spec.files)

    async def cost_of(count: int) -> dict[str, int]:
        """What `count` concurrent intakes for the job cost the ATS, with nothing cached."""
        for key in await relay.redis.keys("ar:cat*"):
            await relay.redis.delete(key)
        ats.reset()
        responses = await asyncio.gather(*(relay.post(application(spec, answers, n=n)) for n in range(count)))
        assert [r.status_code for r in responses] == [202] * count, responses[0].text
        return spec.reads(ats.records(), spec.job)

    one = await cost_of(1)
    assert one and all(count == 1 for name, count in one.items() if "QuestionSet" in name or "question" in name)
    assert await cost_of(50) == one  # one read of the job for the burst, as for one application


async def test_a_question_added_in_the_ats_is_checked_once_the_cache_expires(
    relay_of: Callable[..., Relay], emulator: Callable[..., Emulator]
) -> None:
    spec = SPECS["laura"]
    relay = relay_of(spec, catalog_ttl_s=1)
    answers = good_answers(await questions_of(relay, spec.job), files=spec.files)
    assert (await relay.post(application(spec, answers))).status_code == 202
    spec.add_required(emulator(spec.connector), spec.job)
    assert (await relay.post(application(spec, answers, n=1))).status_code == 202  # cached: not seen yet
    await asyncio.sleep(1.2)
    response = await relay.post(application(spec, answers, n=2))
    assert response.status_code == 422, response.text
    assert any(e["message"].endswith(": required") for e in response.json()["errors"])
