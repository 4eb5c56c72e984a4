"""The Laura connector against its emulator over real HTTP: plan, resume, faults, validation,
attachments, stage moves, passthrough."""

from __future__ import annotations

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
    ACTION_MOVE_APPLICATION_TO_STAGE,
    AuthError,
    ConnectionSpec,
    PermanentError,
    Step,
    StepContext,
    TransientError,
    UnknownOutcome,
    confined_url,
)
from connectors.laura import LauraConnector, LauraSettings, encoded_answers
from tests.support.emulators import Emulator

# ---------------------------------------------------------------------------------------------
# Fixtures and a tiny runner (what the engine does: skip checkpointed steps, store returned ids)


def make(
    laura: Emulator, ats_http: httpx.AsyncClient, *, credentials: str = "sandbox", **settings: Any
) -> LauraConnector:
    spec = ConnectionSpec(
        id="laura-test",
        connector="laura",
        base_url=laura.url,
        credentials=credentials,
        settings=LauraSettings.from_mapping(settings),
        timeout_s=2.0,
    )
    connector = connector_class("laura")(spec, ats_http)
    assert isinstance(connector, LauraConnector)
    return connector


async def no_files(ref: AttachmentRef) -> bytes:
    raise AssertionError("Laura never loads attachment bytes")


async def run(
    steps: list[Step], app: StoredApplication | None, checkpoints: dict[str, str] | None = None
) -> tuple[dict[str, str], StepContext]:
    checkpoints = {} if checkpoints is None else checkpoints
    ctx = StepContext(application=app, checkpoints=checkpoints, load_attachment=no_files)
    for step in steps:
        if step.name not in checkpoints:
            checkpoints[step.name] = await step.run(ctx)
    return checkpoints, ctx


async def records(ats_http: httpx.AsyncClient, laura: Emulator) -> dict[str, Any]:
    return (await ats_http.get(laura.url + "/_sandbox/records")).json()


async def fault(ats_http: httpx.AsyncClient, laura: Emulator, **faults: Any) -> None:
    (await ats_http.post(laura.url + "/_sandbox/faults", json=faults)).raise_for_status()


GOOD_ANSWERS = [
    StoredAnswer("501", True),
    StoredAnswer("502", ["1", "3"]),
    StoredAnswer("503", "12"),
    StoredAnswer("504", "Family lives there"),
    StoredAnswer("505", 7.0),
    StoredAnswer("506", "2027-01-15T08:00:00Z"),
]


def application(
    job_id: str = "101",
    *,
    answers: list[StoredAnswer] | None = None,
    attachments: list[AttachmentRef] | None = None,
    stage_id: str | None = None,
    email: str = "aino.virtanen@example.fi",
    **extra: Any,
) -> StoredApplication:
    return StoredApplication(
        connection_id="laura-test",
        candidate=Candidate(
            first_name="Aino",
            last_name="Virtanen",
            email_address=email,
            phone_number="+358 40 123 4567",
            gender="FEMALE",
            location=Location(city="Tampere", country="FI", zip_code="33100"),
        ),
        application=JobRef(job_id=job_id, stage_id=stage_id),
        origin=Origin(channel="api", received_at=time.time()),
        screening_question_answers=GOOD_ANSWERS if answers is None else answers,
        attachments=attachments or [],
        **extra,
    )


CV = AttachmentRef(index=0, name="cv.pdf", type="CV", content_type="application/pdf", sha256="ab" * 32, size=10)
LETTER = AttachmentRef(index=1, name="letter.pdf", type="COVER_LETTER", sha256="cd" * 32, size=10)

# ---------------------------------------------------------------------------------------------
# Writing


async def test_all_fields_arrive(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(laura, ats_http)
    checkpoints, _ = await run(connector.plan(application(stage_id="2")), application(stage_id="2"))
    assert set(checkpoints) == {"candidate", "application", "stage"}
    data = await records(ats_http, laura)
    [cand] = data["candidates"]
    assert {k: cand[k] for k in ("first_name", "last_name", "email", "phone", "gender", "address")} == {
        "first_name": "Aino",
        "last_name": "Virtanen",
        "email": "aino.virtanen@example.fi",
        "phone": "+358 40 123 4567",
        "gender": "female",
        "address": {"city": "Tampere", "zip_code": "33100", "country_code": "FI"},
    }
    [app] = data["applications"]
    assert str(app["id"]) == checkpoints["application"] and str(cand["id"]) == checkpoints["candidate"]
    assert app["job_id"] == 101 and app["current_stage_id"] == 2
    assert {a["question_id"]: a["value"] for a in app["screening_question_answers"]} == {
        501: True,
        502: [1, 3],
        503: 12,
        504: "Family lives there",
        505: 7,
        506: "2027-01-15",
    }


async def test_rerun_and_partial_rerun_create_no_duplicates(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(laura, ats_http)
    app = application()
    first, _ = await run(connector.plan(app)[:1], app)  # crash after the candidate step
    full, _ = await run(connector.plan(app), app, dict(first))
    again, _ = await run(connector.plan(app), app)  # a run that lost every checkpoint
    assert full == again
    data = await records(ats_http, laura)
    assert len(data["candidates"]) == 1 and len(data["applications"]) == 1


async def test_existing_candidate_is_found_by_email(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    r = await ats_http.post(
        laura.url + "/api/v1.2/candidates",
        headers={"Authorization": "Bearer sandbox"},
        json={"first_name": "X", "last_name": "Y", "email": "AINO.virtanen@example.fi"},
    )
    existing = str(r.json()["data"]["id"])
    checkpoints, _ = await run(
        make(laura, ats_http).plan(application(job_id="102", answers=[])), application(job_id="102", answers=[])
    )
    assert checkpoints["candidate"] == existing
    assert len((await records(ats_http, laura))["candidates"]) == 1


async def test_duplicate_answer_is_success_with_the_existing_id(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    class Blind(LauraConnector):  # misses every look-up, as in a race with another writer
        async def _find(self, path: str, params: Any, matches: Any, *, what: str) -> str | None:
            return None

    spec = make(laura, ats_http).connection
    app = application()
    first, _ = await run(make(laura, ats_http).plan(app), app)
    second, _ = await run(Blind(spec, ats_http).plan(app), app)
    assert first == second
    data = await records(ats_http, laura)
    assert len(data["candidates"]) == 1 and len(data["applications"]) == 1


async def test_a_lookup_ignoring_its_filter_never_picks_someone_else(
    laura: Emulator, ats_http: httpx.AsyncClient
) -> None:
    """If Laura's search ignored `email`, the first row would be another person: rows are checked."""

    class Sloppy(LauraConnector):
        async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
            if method == "GET":
                kwargs.pop("params", None)
            return await super()._call(method, path, **kwargs)

    await run(make(laura, ats_http).plan(application()), application())  # somebody is already in Laura
    other = application()
    other.candidate.email_address = "someone.else@example.org"
    checkpoints, _ = await run(Sloppy(make(laura, ats_http).connection, ats_http).plan(other), other)
    data = await records(ats_http, laura)
    assert len(data["candidates"]) == 2 and len(data["applications"]) == 2
    assert checkpoints["candidate"] != str(data["candidates"][0]["id"])


@pytest.mark.parametrize("path", ["/candidates$", "/applications$", "/stage$"])
async def test_drop_after_create_is_unknown_then_resolved(
    laura: Emulator, ats_http: httpx.AsyncClient, path: str
) -> None:
    connector = make(laura, ats_http)
    app = application(stage_id="3")
    await fault(ats_http, laura, script=["drop_after"], path_regex=path, methods=["POST", "PUT"])
    checkpoints: dict[str, str] = {}
    with pytest.raises(UnknownOutcome):
        await run(connector.plan(app), app, checkpoints)
    await run(connector.plan(app), app, checkpoints)
    data = await records(ats_http, laura)
    assert data["faults_injected"] == {"drop_after": 1}
    assert len(data["candidates"]) == 1 and len(data["applications"]) == 1
    assert data["applications"][0]["current_stage_id"] == 3


async def test_status_classification(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(laura, ats_http)
    app = application()
    await fault(ats_http, laura, script=["rate_limit"], retry_after=42)
    with pytest.raises(TransientError) as limited:
        await run(connector.plan(app), app)
    assert limited.value.status == 429 and limited.value.retry_after == 42
    await fault(ats_http, laura, script=["error"], error_status=503)
    with pytest.raises(TransientError) as unavailable:
        await run(connector.plan(app), app)
    assert unavailable.value.status == 503
    with pytest.raises(AuthError):
        await run(make(laura, ats_http, credentials="wrong").plan(app), app)
    closed = application(job_id="103", answers=[])
    with pytest.raises(PermanentError) as gone:
        await run(connector.plan(closed), closed)
    assert gone.value.status == 422
    assert (await records(ats_http, laura))["applications"] == []


async def test_invalid_answers_are_a_permanent_error_naming_the_questions(
    laura: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make(laura, ats_http)
    answers = [
        StoredAnswer("501", False),
        StoredAnswer("502", ["1"]),
        StoredAnswer("503", "11"),
        StoredAnswer("504", "Secret reason"),
    ]
    app = application(answers=answers)
    with pytest.raises(PermanentError) as err:
        await run(connector.plan(app), app)
    assert "question 502" in err.value.detail and "precondition" in err.value.detail
    assert "question 505: required" in err.value.detail
    assert "Secret" not in err.value.detail and "Aino" not in err.value.detail
    data = await records(ats_http, laura)
    assert data["applications"] == [] and data["candidates"] == []  # nothing written for a doomed one


# ---------------------------------------------------------------------------------------------
# Attachments and the intake check


async def test_attachments_are_refused_unless_dropped(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    app = application(attachments=[CV, LETTER])
    errors, warnings = make(laura, ats_http).check(app)
    assert len(errors) == 1 and errors[0].startswith("attachments: ") and warnings == []
    with pytest.raises(PermanentError):
        await run(make(laura, ats_http).plan(app), app)

    dropping = make(laura, ats_http, drop_attachments=True)
    errors, warnings = dropping.check(app)
    assert errors == [] and [w.code for w in warnings] == ["attachment_dropped"] * 2
    steps = dropping.plan(app)
    assert all(s.attachment is None for s in steps)
    _, ctx = await run(steps, app)
    assert [w.message for w in ctx.warnings] == [w.message for w in warnings]
    assert all("cv.pdf" not in w.message for w in warnings)
    assert len((await records(ats_http, laura))["applications"]) == 1


async def test_check_flags_file_answers_and_unsupported_fields(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(laura, ats_http)
    app = application(answers=[StoredAnswer("507", CV)], source=Source(name="Indeed"))
    errors, warnings = connector.check(app)
    assert errors == ["question 507: file answers are not supported by Laura"]
    assert [w.message for w in warnings] == ["source is not written to Laura"]
    assert connector.check(application()) == ([], [])


# ---------------------------------------------------------------------------------------------
# Questions and validation


async def test_screening_questions_carry_preconditions(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    questions = await make(laura, ats_http).screening_questions("101")
    by_id = {q["id"]: q for q in questions}
    assert [q["id"] for q in questions] == ["501", "502", "503", "504", "505", "506", "507"]
    assert by_id["502"]["precondition_question_id"] == "501" and by_id["502"]["precondition_options"] == ["true"]
    assert by_id["504"]["precondition_question_id"] == "503" and by_id["504"]["precondition_options"] == ["12"]
    assert by_id["503"]["type"] == "SINGLE_SELECT" and by_id["503"]["options"][1] == {
        "id": "12",
        "label": "Tampere",
    }
    assert (by_id["505"]["min"], by_id["505"]["max"]) == (0, 60)
    assert {q["type"] for q in questions} == {
        "BOOLEAN",
        "MULTI_SELECT",
        "SINGLE_SELECT",
        "TEXT",
        "NUMBER",
        "DATE",
    }
    kombo = await make(laura, ats_http).job_questions("101")
    assert encoded_answers(kombo, GOOD_ANSWERS)[0].ok
    for job_id in ("999", "../stages", "101/../../stages"):
        with pytest.raises(PermanentError) as err:
            await make(laura, ats_http).screening_questions(job_id)
        assert err.value.status == 404


async def test_answers_are_checked_by_the_shared_check_and_encoded_as_laura_stores_them(
    laura: Emulator, ats_http: httpx.AsyncClient
) -> None:
    """Laura keeps no check of its own (app/core/answers.py is the one): unknown questions are
    dropped with a warning, faults name the question and never the value, kept answers are
    encoded (whole numbers as integers, a date-time as its date)."""
    questions = await make(laura, ats_http).job_questions("101")
    secret = "Virtanen 040-1234567"
    result, encoded = encoded_answers(questions, [*GOOD_ANSWERS, StoredAnswer("999", secret)])
    assert result.ok and [w for w in result.warnings if "999" in w.message] != []
    assert [(qid, value) for qid, _, value in encoded] == [
        ("501", True),
        ("502", ["1", "3"]),
        ("503", "12"),
        ("504", "Family lives there"),
        ("505", 7),
        ("506", "2027-01-15"),
    ]
    bad, kept = encoded_answers(questions, [StoredAnswer("501", secret), StoredAnswer("505", secret)])
    assert [e.message for e in bad.errors][:2] == [
        "question 501: must be true or false",
        "question 505: must be a number",
    ]
    assert kept == [] and not any("Virtanen" in e.message for e in bad.errors)


# ---------------------------------------------------------------------------------------------
# Move to stage, passthrough


async def test_move_application_to_stage_action(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(laura, ats_http)
    delivered, _ = await run(connector.plan(application()), application())
    params = {"application_id": delivered["application"], "stage_id": "4"}
    steps = connector.action_plan(ACTION_MOVE_APPLICATION_TO_STAGE, params, [])
    await fault(ats_http, laura, script=["error"], error_status=502, path_regex="/stage$")
    with pytest.raises(TransientError):
        await run(steps, None)
    done, _ = await run(steps, None)
    assert done == {"stage": "4"}
    data = await records(ats_http, laura)
    assert data["applications"][0]["current_stage_id"] == 4
    assert [m["to"] for m in data["stage_moves"]] == [4]
    with pytest.raises(PermanentError):
        await run(connector.action_plan(ACTION_MOVE_APPLICATION_TO_STAGE, params | {"stage_id": "77"}, []), None)
    with pytest.raises(PermanentError):
        connector.action_plan(ACTION_MOVE_APPLICATION_TO_STAGE, {"application_id": "1"}, [])
    with pytest.raises(PermanentError):
        connector.action_plan("add_result_link_to_application", params, [])


async def test_passthrough(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(laura, ats_http)
    stages = await connector.passthrough("GET", "/stages", None, None)
    assert stages.status == 200 and len(stages.body["data"]) == 6
    assert "authorization" not in {k.lower() for k in stages.headers}
    found = await connector.passthrough("get", "candidates", {"email": "nobody@example.fi"}, None)
    assert found.body == {"data": [], "meta": {"total": 0}}
    missing = await connector.passthrough("GET", "/jobs/999", None, None)
    assert missing.status == 404
    created = await connector.passthrough(
        "POST", "/candidates", None, {"first_name": "A", "last_name": "B", "email": "p@example.fi"}
    )
    assert created.status == 201


@pytest.mark.parametrize(
    "path",
    [
        "https://evil.example/x",
        "//evil.example/x",
        "../admin",
        "/jobs/../../x",
        "/%2e%2e/x",
        "/%252e%252e/x",
        "/jobs?x=1",
        "/a\\b",
    ],
)
def test_passthrough_paths_stay_under_the_api(path: str) -> None:
    """The one check every connector's passthrough uses (connectors.base.confined_url)."""
    with pytest.raises(PermanentError):
        confined_url("https://acme.rekrytointi.com/api/v1.2", path)
    assert (
        confined_url("https://acme.rekrytointi.com/api/v1.2", "/jobs/12")
        == "https://acme.rekrytointi.com/api/v1.2/jobs/12"
    )


async def test_api_root(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    assert make(laura, ats_http).api_root == laura.url + "/api/v1.2"
    spec = ConnectionSpec(
        id="x",
        connector="laura",
        base_url="https://acme.rekrytointi.com/api/v1.2/",
        credentials="k",
        settings=LauraSettings(),
    )
    assert LauraConnector(spec, ats_http).api_root == "https://acme.rekrytointi.com/api/v1.2"


async def test_application_status_for_status_sync(laura: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(laura, ats_http)
    app = application()
    checkpoints, _ = await run(connector.plan(app), app)
    status = await connector.application_status(checkpoints["application"])
    assert status == {"stage_id": "1", "stage_name": "Uusi hakemus / New", "outcome": "PENDING"}
    await run(
        connector.action_plan(
            "move_application_to_stage", {"application_id": checkpoints["application"], "stage_id": "5"}, []
        ),
        None,
    )
    moved = await connector.application_status(checkpoints["application"])
    assert (moved["stage_id"], moved["stage_name"]) == ("5", "Palkattu / Hired")
    with pytest.raises(PermanentError):
        await connector.application_status("999999")
