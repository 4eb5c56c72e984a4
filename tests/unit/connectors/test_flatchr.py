"""Flatchr connector against its emulator over real HTTP: a tiny step runner stands in for the
engine (skip checkpointed steps, store returned ids), outcomes are read from /_sandbox/records."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest

from app.core.model import (
    AttachmentRef,
    Candidate,
    JobRef,
    Location,
    Origin,
    Source,
    StoredAnswer,
    StoredApplication,
)
from connectors import connector_class
from connectors.base import (
    AuthError,
    ConnectionSpec,
    PermanentError,
    StepContext,
    TransientError,
    UnknownOutcome,
)
from connectors.flatchr import FlatchrConnector, FlatchrSettings, encode_answer, resolve_source, scrub
from connectors.sandbox.flatchr import COMPANY_ID
from tests.support.emulators import Emulator

PY_JOB = "Vq5r6pYxam9AmMvP"  # French vacancy with every question type
EN_JOB = "Bx8KqL2mN4pR7sTz"
CLOSED_JOB = "Zc3Vb6Nm9Qw2Er5T"
Q_WHY, Q_LICENSE, Q_SINCE = "q7Hd2LmQx9aB3cTe", "q2Kp8ZrW4nYv6JsU", "q5Fg1HjK3lMn7PqR"
Q_CITY, Q_LANGS, Q_YEARS = "q9Wx4EcR6tYu2IoP", "q3As5DfG7hJk9LzX", "q8Cv1BnM3qWe5RtY"
Q_AVAILABLE, Q_GITHUB, Q_PORTFOLIO = "q4Ui6OpA8sDf0GhJ", "q6Kl8ZxC0vBn2MqW", "q1Er3TyU5iOp7AsD"
CV_BYTES = b"%PDF-1.4\n% sandbox CV\n" + b"x" * 2000
LETTER_BYTES = b"%PDF-1.4\n% cover letter\n"


def make_connector(
    flatchr: Emulator, ats_http: httpx.AsyncClient, *, credentials: str = "sandbox", **settings: Any
) -> FlatchrConnector:
    spec = ConnectionSpec(
        id="acme-flatchr",
        connector="flatchr",
        base_url=flatchr.url,
        credentials=credentials,
        settings=FlatchrSettings.from_mapping({"company_id": COMPANY_ID, **settings}),
        timeout_s=5.0,
    )
    connector = connector_class("flatchr")(spec, ats_http)
    assert isinstance(connector, FlatchrConnector)
    return connector


def ref(index: int, data: bytes, type_: str, name: str, content_type: str = "application/pdf") -> AttachmentRef:
    return AttachmentRef(
        index=index,
        name=name,
        type=type_,
        content_type=content_type,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


def application(
    *,
    job_id: str = PY_JOB,
    email: str = "jeanne.martin@example.fr",
    answers: list[StoredAnswer] | None = None,
    attachments: list[AttachmentRef] | None = None,
    channel: str = "api",
    board: str | None = None,
    source_id: str | None = None,
) -> StoredApplication:
    if answers is None:
        answers = [StoredAnswer(Q_WHY, "J'aime Python"), StoredAnswer(Q_LICENSE, False)]
    if attachments is None:
        attachments = [ref(0, CV_BYTES, "CV", "cv-jeanne.pdf")]
    return StoredApplication(
        connection_id="acme-flatchr",
        candidate=Candidate(
            first_name="Jeanne", last_name="Martin", email_address=email, phone_number="+33 6 12 34 56 78"
        ),
        application=JobRef(job_id=job_id),
        origin=Origin(channel=channel, received_at=time.time(), board=board),
        screening_question_answers=answers,
        attachments=attachments,
        source=Source(id=source_id) if source_id else None,
    )


FILES = {0: CV_BYTES, 1: LETTER_BYTES}


async def run_plan(
    connector: FlatchrConnector, app: StoredApplication, checkpoints: dict[str, str] | None = None
) -> tuple[dict[str, str], StepContext]:
    """What the engine does, minus queueing: run steps in order, skip checkpointed ones."""
    checkpoints = {} if checkpoints is None else checkpoints

    async def load(r: AttachmentRef) -> bytes:
        return FILES[r.index]

    ctx = StepContext(application=app, checkpoints=checkpoints, load_attachment=load)
    for step in connector.plan(app):
        if step.name in checkpoints:
            continue
        checkpoints[step.name] = await step.run(ctx)
    return checkpoints, ctx


async def records(ats_http: httpx.AsyncClient, flatchr: Emulator) -> dict[str, Any]:
    return (await ats_http.get(f"{flatchr.url}/_sandbox/records")).json()


async def faults(ats_http: httpx.AsyncClient, flatchr: Emulator, **body: Any) -> None:
    assert (await ats_http.post(f"{flatchr.url}/_sandbox/faults", json=body)).status_code == 200


# -- happy path and answers ---------------------------------------------------------------------


async def test_every_answer_type_is_encoded_as_flatchr_expects(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    answers = [
        StoredAnswer(Q_WHY, "Pour l'équipe"),
        StoredAnswer(Q_LICENSE, True),
        StoredAnswer(Q_SINCE, "2019-06-30"),
        StoredAnswer(Q_CITY, ["lyon"]),
        StoredAnswer(Q_LANGS, ["Python", "SQL"]),
        StoredAnswer(Q_YEARS, 5.0),
        StoredAnswer(Q_AVAILABLE, "2026-03-01"),
        StoredAnswer(Q_GITHUB, "https://github.com/jmartin"),
        StoredAnswer(Q_PORTFOLIO, ref(2, b"zip", "OTHER", "portfolio.zip", "application/zip")),
    ]
    connector = make_connector(flatchr, ats_http)
    checkpoints, ctx = await run_plan(connector, application(answers=answers))
    data = await records(ats_http, flatchr)
    [applicant] = data["applicants"]
    assert checkpoints["candidate"] == checkpoints["application"] == applicant["id"]
    values = {a["question_id"]: a["value"] for a in applicant["answers"]}
    assert values == {
        Q_WHY: "Pour l'équipe",
        Q_LICENSE: "Oui",
        Q_SINCE: "2019-06-30",
        Q_CITY: "Lyon",
        Q_LANGS: "Python;SQL",
        Q_YEARS: "5",
        Q_AVAILABLE: "2026-03-01",
        Q_GITHUB: "https://github.com/jmartin",
    }
    assert [w.code for w in ctx.warnings] == ["answer_type_unsupported"]
    assert Q_PORTFOLIO in ctx.warnings[0].message


async def test_english_vacancy_boolean_and_select(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    app = application(
        job_id=EN_JOB,
        answers=[StoredAnswer("q0Zx2CvB4nMa6SdF", "yes"), StoredAnswer("q2Gh4JkL6zXc8VbN", "West")],
    )
    await run_plan(make_connector(flatchr, ats_http), app)
    [applicant] = (await records(ats_http, flatchr))["applicants"]
    assert [a["value"] for a in applicant["answers"]] == ["Yes", "West"]


async def test_cv_uploaded_and_cover_letter_warned(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    letter = ref(1, LETTER_BYTES, "COVER_LETTER", "lettre.pdf")
    cv = ref(0, CV_BYTES, "CV", "cv-jeanne.pdf")
    app = application(attachments=[letter, cv])
    connector = make_connector(flatchr, ats_http)
    errors, warnings = connector.check(app)
    assert errors == []
    assert [w.code for w in warnings] == ["attachment_not_supported"]
    checkpoints, ctx = await run_plan(connector, app)
    data = await records(ats_http, flatchr)
    [file] = data["files"]
    assert file["sha256"] == hashlib.sha256(CV_BYTES).hexdigest() and file["size"] == len(CV_BYTES)
    assert file["name"] == "cv-jeanne.pdf" and file["content_type"] == "application/pdf"
    assert f"attachment:{cv.sha256}" in checkpoints
    assert [w.code for w in ctx.warnings] == ["attachment_not_supported"]
    assert "COVER_LETTER" in ctx.warnings[0].message and "lettre" not in ctx.warnings[0].message
    listed = await connector.candidate_attachments(checkpoints["candidate"])
    assert listed == [{**listed[0], "type": "CV", "name": "cv-jeanne.pdf", "content_type": "application/pdf"}]


async def test_check_refuses_missing_or_oversized_cv(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make_connector(flatchr, ats_http)
    errors, _ = connector.check(application(attachments=[]))
    assert errors and "CV" in errors[0]
    assert make_connector(flatchr, ats_http, require_cv=False).check(application(attachments=[]))[0] == []
    big = AttachmentRef(index=0, name="cv.pdf", type="CV", sha256="0" * 64, size=6_000_000)
    assert connector.check(application(attachments=[big]))[0]


# -- source writing -----------------------------------------------------------------------------

SOURCE_RULES = {
    "indeed": {"offerer_id": 8},
    "form": "source_id",
    "webhook:jobteaser": {"source_id": "src_salon_2026"},
    "default": "offerer_id",
}


@pytest.mark.parametrize(
    ("channel", "board", "request_source", "expected"),
    [
        ("indeed", None, None, (8, None)),
        ("form", None, None, (None, "src_partner_form")),
        ("form", None, "src_cooptation", (None, "src_cooptation")),
        ("webhook", "jobteaser", None, (None, "src_salon_2026")),
        ("api", None, None, (75, None)),
    ],
)
async def test_source_by_origin(
    flatchr: Emulator,
    ats_http: httpx.AsyncClient,
    channel: str,
    board: str | None,
    request_source: str | None,
    expected: tuple[int | None, str | None],
) -> None:
    connector = make_connector(
        flatchr, ats_http, offerer_id=75, source_id="src_partner_form", source_by_origin=SOURCE_RULES
    )
    await run_plan(connector, application(channel=channel, board=board, source_id=request_source))
    [applicant] = (await records(ats_http, flatchr))["applicants"]
    assert (applicant["offerer_id"], applicant["source_id"]) == expected


def test_resolve_source_without_rules_and_with_broken_rules() -> None:
    app = application()

    def settings(**values: Any) -> FlatchrSettings:
        return FlatchrSettings.from_mapping({"company_id": COMPANY_ID, **values})

    assert resolve_source(settings(), app) == ("none", None)
    assert resolve_source(settings(offerer_id="75"), app) == ("offerer_id:75", None)
    assert resolve_source(settings(offerer_id=75, source_id="s1"), app) == ("source_id:s1", None)
    assert resolve_source(settings(offerer_id=75), application(source_id="s2")) == ("source_id:s2", None)
    marker, problem = resolve_source(settings(source_by_origin={"default": "offerer_id"}), app)
    assert marker == "none" and problem


# -- idempotency --------------------------------------------------------------------------------


async def test_rerun_creates_no_duplicate(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make_connector(flatchr, ats_http)
    first, _ = await run_plan(connector, application())
    again, _ = await run_plan(connector, application())  # fresh checkpoints: a duplicate delivery
    data = await records(ats_http, flatchr)
    assert len(data["applicants"]) == 1 and data["create_calls"] == 1
    assert again["candidate"] == first["candidate"]


async def test_partial_run_resumes(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make_connector(flatchr, ats_http)
    checkpoints = {"source": "offerer_id:12"}
    checkpoints, _ = await run_plan(connector, application(), checkpoints)
    [applicant] = (await records(ats_http, flatchr))["applicants"]
    assert applicant["offerer_id"] == 12 and checkpoints["application"] == applicant["id"]


async def test_dropped_answer_after_create_is_an_unknown_outcome_then_one_record(
    flatchr: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make_connector(flatchr, ats_http)
    await faults(ats_http, flatchr, script=["drop_after"], path_regex="/vacancy/candidate/json$")
    checkpoints: dict[str, str] = {}
    with pytest.raises(UnknownOutcome):
        await run_plan(connector, application(), checkpoints)
    assert "candidate" not in checkpoints
    await run_plan(connector, application(), checkpoints)
    data = await records(ats_http, flatchr)
    assert len(data["applicants"]) == 1 and data["create_calls"] == 1
    assert checkpoints["candidate"] == data["applicants"][0]["id"]


async def test_conflict_answer_is_success_with_existing_id(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    """A concurrent delivery created the applicant between our lookup and our create: 409."""
    connector = make_connector(flatchr, ats_http)
    other, _ = await run_plan(make_connector(flatchr, ats_http), application())
    real_find = connector._find_applicant
    calls = 0

    async def stale_first_lookup(email: str, job_id: str) -> str | None:
        nonlocal calls
        calls += 1
        return None if calls == 1 else await real_find(email, job_id)

    connector._find_applicant = stale_first_lookup  # type: ignore[method-assign]
    checkpoints, _ = await run_plan(connector, application())
    data = await records(ats_http, flatchr)
    assert len(data["applicants"]) == 1 and data["create_calls"] == 2
    assert checkpoints["candidate"] == other["candidate"]


async def test_same_person_on_another_vacancy_is_a_new_applicant(
    flatchr: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make_connector(flatchr, ats_http)
    await run_plan(connector, application())
    await run_plan(connector, application(job_id=EN_JOB, answers=[]))
    data = await records(ats_http, flatchr)
    assert len(data["applicants"]) == 2 and len(data["candidates"]) == 1


# -- errors -------------------------------------------------------------------------------------


async def test_rate_limit_is_transient_with_retry_after(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    await faults(ats_http, flatchr, script=["rate_limit"], retry_after=7)
    with pytest.raises(TransientError) as info:
        await run_plan(make_connector(flatchr, ats_http), application())
    assert info.value.status == 429 and info.value.retry_after == 7


async def test_server_error_is_transient(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    await faults(ats_http, flatchr, script=["error"], error_status=502)
    with pytest.raises(TransientError) as info:
        await run_plan(make_connector(flatchr, ats_http), application())
    assert info.value.status == 502 and not isinstance(info.value, UnknownOutcome)


async def test_validation_error_is_permanent_with_reason_and_no_pii(
    flatchr: Emulator, ats_http: httpx.AsyncClient
) -> None:
    app = application(answers=[StoredAnswer(Q_LICENSE, True)])  # required questions unanswered
    with pytest.raises(PermanentError) as info:
        await run_plan(make_connector(flatchr, ats_http), app)
    detail = info.value.detail
    assert info.value.status == 400 and "required" in detail
    assert "Jeanne" not in detail and "jeanne" not in detail.lower() and "@" not in detail
    assert (await records(ats_http, flatchr))["applicants"] == []


async def test_bad_option_is_refused_before_sending(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    app = application(
        answers=[StoredAnswer(Q_WHY, "x"), StoredAnswer(Q_LICENSE, False), StoredAnswer(Q_CITY, "Marseille")]
    )
    with pytest.raises(PermanentError) as info:
        await run_plan(make_connector(flatchr, ats_http), app)
    assert Q_CITY in info.value.detail and "Marseille" not in info.value.detail
    assert (await records(ats_http, flatchr))["create_calls"] == 0


async def test_closed_vacancy_is_permanent(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    with pytest.raises(PermanentError) as info:
        await run_plan(make_connector(flatchr, ats_http), application(job_id=CLOSED_JOB, answers=[]))
    assert info.value.status == 404


async def test_wrong_key_is_auth_error(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    with pytest.raises(AuthError) as info:
        await run_plan(make_connector(flatchr, ats_http, credentials="wrong"), application())
    assert info.value.status == 401 and "wrong" not in info.value.detail


async def test_unknown_source_id_is_permanent(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    with pytest.raises(PermanentError) as info:
        await run_plan(make_connector(flatchr, ats_http), application(source_id="nope"))
    assert "source_id" in info.value.detail


# -- reads and passthrough ----------------------------------------------------------------------


async def test_screening_questions(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    questions = {q["id"]: q for q in await make_connector(flatchr, ats_http).screening_questions(PY_JOB)}
    assert {q["type"] for q in questions.values()} == {
        "TEXT",
        "BOOLEAN",
        "SINGLE_SELECT",
        "MULTI_SELECT",
        "NUMBER",
        "DATE",
        "FILE",
    }
    assert questions[Q_CITY]["options"] == [{"id": o, "label": o} for o in ("Paris", "Lyon", "Remote")]
    assert questions[Q_SINCE]["precondition_question_id"] == Q_LICENSE
    assert questions[Q_SINCE]["precondition_options"] == ["Oui"]
    assert questions[Q_WHY]["required"] is True and questions[Q_WHY]["label"] == "Pourquoi ce poste ?"


async def test_passthrough_reaches_the_api_and_stays_confined(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make_connector(flatchr, ats_http)
    result = await connector.passthrough("GET", f"/company/{COMPANY_ID}/columns", None, None)
    assert result.status == 200 and result.body[0]["title"] == "À traiter"
    result = await connector.passthrough("POST", f"/company/{COMPANY_ID}/search/applicants", {}, {"email": "x@y.z"})
    assert result.status == 200 and result.body == []
    relative = await connector.passthrough("GET", f"vacancy/{PY_JOB}", {"fields": "questions"}, None)
    assert relative.status == 200 and len(relative.body["questions"]) == 9
    missing = await connector.passthrough("GET", "vacancy/unknown", None, None)
    assert missing.status == 404 and missing.body["error"] == "Not Found"
    for bad in (
        "http://evil.example/x",
        "//evil.example/x",
        "/company/../../x",
        "http:/evil",
        "/a/%2e%2e/b",
        "/a\\b",
        "/x @evil",
    ):
        with pytest.raises(PermanentError):
            await connector.passthrough("GET", bad, None, None)
    with pytest.raises(PermanentError):
        await connector.passthrough("TRACE", "/x", None, None)


async def test_candidate_attachments_unknown_applicant(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make_connector(flatchr, ats_http)
    with pytest.raises(PermanentError):
        await connector.candidate_attachments("AAAAAAAAAAAAAAAA")
    with pytest.raises(PermanentError):
        await connector.candidate_attachments("../etc")


def test_careers_host_derivation() -> None:
    def careers(base: str, **settings: Any) -> str:
        flatchr = FlatchrSettings.from_mapping({"company_id": COMPANY_ID, **settings})
        spec = ConnectionSpec(id="c", connector="flatchr", base_url=base, credentials="k", settings=flatchr)
        return FlatchrConnector(spec, httpx.AsyncClient()).careers_base

    assert careers("https://api.flatchr.io") == "https://careers.flatchr.io"
    assert careers("http://127.0.0.1:9000") == "http://127.0.0.1:9000"
    assert careers("https://api.flatchr.io", careers_base_url="https://proxy/c/") == "https://proxy/c"


@pytest.mark.parametrize(
    ("question", "answer", "expected"),
    [
        ({"id": "q", "type": "yesno", "options": ""}, "non", "Non"),
        ({"id": "q", "type": "yesno", "options": "Absolument;Pas du tout"}, True, "Absolument"),
        ({"id": "q", "type": "yesno", "options": "Non;Oui"}, True, "Oui"),
        ({"id": "q", "type": "yesno", "options": "Non;Oui"}, "false", "Non"),
        ({"id": "q", "type": "checkbox", "options": "A;B;C"}, "b", "B"),
        ({"id": "q", "type": "number", "options": ""}, "3,5", "3.5"),
        ({"id": "q", "type": "number", "options": ""}, 12, "12"),
        ({"id": "q", "type": "date", "options": ""}, "2026-02-03T10:00:00", "03/02/2026"),
        ({"id": "q", "type": "mystery", "options": ""}, 7, "7"),
    ],
)
def test_encode_answer(question: dict[str, Any], answer: Any, expected: str) -> None:
    assert (
        encode_answer(
            question,
            answer,
            language="fr_FR",
            date_format=("%d/%m/%Y" if question["type"] == "date" else "%Y-%m-%d"),
        )
        == expected
    )


async def test_remote_fields_and_unsupported_fields(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    app = application()
    app.candidate.location = Location(city="Lyon", country="FR")
    app.remote_fields = {
        "flatchr": {
            "comment": "Disponible vite",
            "urls": {"linkedin": "https://li/x"},
            "legalNewsletterPartners": True,
            "salary": 1,
        }
    }
    connector = make_connector(flatchr, ats_http)
    errors, warnings = connector.check(app)
    assert errors == []
    assert sorted(w.message for w in warnings if w.code == "field_not_supported") == [
        "candidate.location is not written to Flatchr",
        "remote_fields.flatchr.salary is not written to Flatchr",
    ]
    await run_plan(connector, app)
    [applicant] = (await records(ats_http, flatchr))["applicants"]
    assert applicant["comment"] == "Disponible vite" and applicant["urls"] == {"linkedin": "https://li/x"}
    assert applicant["newsletter"] is True


def test_scrub_removes_personal_data_from_ats_messages() -> None:
    message = 'Candidate Jeanne MARTIN <jeanne.martin@example.fr> (+33 6 12 34 56 78) already applied with "Oui"'
    cleaned = scrub(message, ["Jeanne", "Martin", "Oui"], numbers=True)
    assert "Jeanne" not in cleaned and "MARTIN" not in cleaned and "example.fr" not in cleaned
    assert "34 56" not in cleaned and "Oui" not in cleaned and "already applied" in cleaned


async def test_application_status_for_status_sync(flatchr: Emulator, ats_http: httpx.AsyncClient) -> None:
    """Read from a search of the vacancy's applicants: no candidate data goes to Flatchr for it."""
    connector = make_connector(flatchr, ats_http)
    checkpoints, _ = await run_plan(connector, application())
    applicant = checkpoints["application"]
    assert await connector.application_status(applicant) is None  # without the job it cannot be found
    status = await connector.application_status(applicant, job_id=PY_JOB)
    assert status == {"stage_id": "Nk5aMxpQ4b9GZ2Oz", "stage_name": "À traiter", "outcome": "PENDING"}
    auth = {"Authorization": "Bearer sandbox"}
    base = f"{flatchr.url}/company/{COMPANY_ID}/vacancy/{PY_JOB}/applicant/{applicant}"
    (await ats_http.put(base, json={"column_id": "LrENkKp8lZd3xYGM"}, headers=auth)).raise_for_status()
    hired = await connector.application_status(applicant, job_id=PY_JOB)
    assert hired is not None and (hired["stage_name"], hired["outcome"]) == ("Recruté", "HIRED")
    (await ats_http.delete(base, headers=auth)).raise_for_status()
    archived = await connector.application_status(applicant, job_id=PY_JOB)
    assert archived is not None and archived["outcome"] == "DECLINED"
