"""The OTYS connector against its emulator over real HTTP: every field, sessions, the JSON-RPC error
model, resume after faults, attachments and the full-attachment retry, actions, passthrough."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from typing import Any

import httpx
import msgspec
import pytest

from app.core.model import (
    AttachmentRef,
    Candidate,
    GdprConsent,
    JobRef,
    Location,
    Origin,
    Source,
    StoredAnswer,
    StoredApplication,
)
from connectors import connector_class
from connectors.base import (
    ACTION_ADD_ATTACHMENT_TO_APPLICATION,
    ACTION_ADD_ATTACHMENT_TO_CANDIDATE,
    ACTION_ADD_RESULT_LINK_TO_APPLICATION,
    ACTION_ADD_RESULT_LINK_TO_CANDIDATE,
    ACTION_MOVE_APPLICATION_TO_STAGE,
    AttachmentRejected,
    AuthError,
    ConnectionSpec,
    PermanentError,
    Step,
    StepContext,
    TransientError,
    UnknownOutcome,
)
from connectors.otys import OtysConnector, OtysSettings, classify_rpc_error, expiry_date, stage_field
from tests.support.emulators import Emulator, EmulatorFactory

JOB = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
CLOSED_JOB = "c3d4e5f60718293a4b5c6d7e8f90a1b2"

FILES = {
    0: b"%PDF-1.4 cv of the candidate " + bytes(range(256)),
    1: b"PK\x03\x04 cover letter docx bytes" + b"x" * 300,
    2: b"\x89PNG\r\n\x1a\n portfolio image" + b"y" * 500,
}


def ref(index: int, name: str, kind: str, content_type: str) -> AttachmentRef:
    data = FILES[index]
    return AttachmentRef(
        index=index,
        name=name,
        type=kind,
        content_type=content_type,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
    )


ATTACHMENTS = [
    ref(0, "cv.pdf", "CV", "application/pdf"),
    ref(
        1,
        "letter.docx",
        "COVER_LETTER",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    ref(2, "portfolio.png", "OTHER", "image/png"),
]


def application(
    email: str = "jan.jansen@example.nl", *, job: str = JOB, attachments: bool = True, **overrides: Any
) -> StoredApplication:
    values: dict[str, Any] = {
        "connection_id": "otys-test",
        "candidate": Candidate(
            first_name="Jan",
            last_name="Jansen",
            email_address=email,
            phone_number="+31 6 12345678",
            company="Acme BV",
            location=Location(city="Utrecht", country="NL", zip_code="3511 AB"),
            gender="MALE",
            availability_date=dt.date(2027, 2, 1),
        ),
        "application": JobRef(job_id=job, stage_id="2"),
        "origin": Origin(channel="api", received_at=time.time(), board="indeed"),
        "attachments": list(ATTACHMENTS) if attachments else [],
        "source": Source(name="Indeed"),
        "gdpr_consent": GdprConsent(given=True, expires_at="2028-01-31T12:00:00Z"),
    }
    values.update(overrides)
    return StoredApplication(**values)


# ---------------------------------------------------------------------------------------------
# Fixtures and a tiny runner (what the engine does: core steps first, skip checkpointed steps)


def make(
    otys: Emulator,
    ats_http: httpx.AsyncClient,
    *,
    credentials: str = "sandbox",
    timeout_s: float = 2.0,
    **settings: Any,
) -> OtysConnector:
    spec = ConnectionSpec(
        id="otys-test",
        connector="otys",
        base_url=otys.url,
        credentials=credentials,
        settings=OtysSettings.from_mapping(settings),
        timeout_s=timeout_s,
    )
    connector = connector_class("otys")(spec, ats_http)
    assert isinstance(connector, OtysConnector)
    return connector


async def load(ref: AttachmentRef) -> bytes:
    return FILES[ref.index]


async def run(
    steps: list[Step],
    app: StoredApplication | None,
    checkpoints: dict[str, str] | None = None,
    *,
    core_only: bool = False,
) -> tuple[dict[str, str], dict[str, BaseException], StepContext]:
    """Core steps stop the run on error; attachment steps fail on their own (engine semantics)."""
    checkpoints = {} if checkpoints is None else checkpoints
    failed: dict[str, BaseException] = {}
    ctx = StepContext(application=app, checkpoints=checkpoints, load_attachment=load)
    for step in [s for s in steps if s.core] + ([] if core_only else [s for s in steps if not s.core]):
        if step.name in checkpoints:
            continue
        try:
            checkpoints[step.name] = await step.run(ctx)
        except AttachmentRejected as exc:
            failed[step.name] = exc
        except Exception as exc:
            if step.core:
                raise
            failed[step.name] = exc
    return checkpoints, failed, ctx


async def records(ats_http: httpx.AsyncClient, otys: Emulator) -> dict[str, Any]:
    return (await ats_http.get(otys.url + "/_sandbox/records")).json()


async def sandbox(ats_http: httpx.AsyncClient, otys: Emulator, path: str, body: Any = None) -> None:
    (await ats_http.post(otys.url + path, json=body)).raise_for_status()


# ---------------------------------------------------------------------------------------------
# Happy path: every field arrives


async def test_every_field_arrives(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    app = application()
    connector = make(otys, ats_http)
    checkpoints, failed, _ = await run(connector.plan(app), app)
    assert not failed
    assert list(checkpoints)[:4] == ["source", "candidate", "gdpr", "application"]
    rec = await records(ats_http, otys)
    [cand] = rec["candidates"]
    person = cand["Person"]
    assert (person["firstName"], person["lastName"], person["emailPrimary"]) == (
        "Jan",
        "Jansen",
        "jan.jansen@example.nl",
    )
    assert person["gender"] == "m"
    assert person["AddressPrimary"] == {"city": "Utrecht", "countryCode": "NL", "postcode": "3511 AB"}
    assert person["PhoneNumbers"]["1"] == {"type": "primary", "phoneNumber": "+31 6 12345678"}
    assert cand["currentEmployer"] == "Acme BV"
    assert cand["availableAt"] == "2027-02-01 00:00:00"
    assert cand["portalId"] == "p-indeed" == checkpoints["source"]
    assert cand["acceptTerms"] is True
    assert rec["gdpr"] == [
        {"candidateUid": cand["uid"], "dueDate": "2028-01-31", "reason": "otherYes", "flags": [False, False]}
    ]
    [proc] = rec["procedures"]
    assert proc["uid"] == checkpoints["application"]
    assert (proc["candidateUid"], proc["vacancyUid"]) == (cand["uid"], JOB)
    assert proc["ProcedureStatus1"] == {"uid": "1_2"}
    # three attachments of three types, same bytes, linked to candidate and procedure
    docs = {d["fileName"]: d for d in rec["documents"]}
    assert set(docs) == {"cv.pdf", "letter.docx", "portfolio.png"}
    assert {d["typeId"] for d in docs.values()} == {1, 2, 201}
    for r in ATTACHMENTS:
        doc = docs[r.name]
        assert doc["sha256"] == r.sha256 and doc["fileSize"] == r.size
        assert doc["candidateUid"] == cand["uid"] and doc["applicationUid"] == proc["uid"]
        assert checkpoints[f"attachment:{r.sha256}"] == doc["uid"]


async def test_rerun_creates_nothing_new(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    app = application()
    await run(make(otys, ats_http).plan(app), app)
    # a fresh connector (new session) re-running everything from scratch: lookups, no duplicates
    _, failed, _ = await run(make(otys, ats_http).plan(app), app)
    assert not failed
    rec = await records(ats_http, otys)
    assert len(rec["candidates"]) == 1 and len(rec["procedures"]) == 1 and len(rec["documents"]) == 3


async def test_source_by_id_unknown_name_and_default(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http, default_source="Career site")
    app = application("a@example.nl", attachments=False, source=Source(id="p-linkedin"))
    checkpoints, _, _ = await run(connector.plan(app), app)
    assert checkpoints["source"] == "p-linkedin"
    app = application("b@example.nl", attachments=False, source=Source(unified_key="stepstone"))
    checkpoints, _, _ = await run(connector.plan(app), app)
    rec = await records(ats_http, otys)
    created = [p for p in rec["portals"] if p["portal"] == "stepstone"]
    assert [p["uid"] for p in created] == [checkpoints["source"]]
    app = application("c@example.nl", attachments=False, source=None)
    checkpoints, _, _ = await run(connector.plan(app), app)
    assert any(
        p["portal"] == "Career site" and p["uid"] == checkpoints["source"]
        for p in (await records(ats_http, otys))["portals"]
    )
    app = application("d@example.nl", attachments=False, source=Source(id="nope"))
    checkpoints, _, ctx = await run(connector.plan(app), app)
    assert checkpoints["source"] == "" and ctx.warnings[0].code == "source_not_found"


async def test_existing_candidate_is_updated_not_duplicated(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    first = application(attachments=False)
    await run(connector.plan(first), first)
    second = application(
        attachments=False,
        job="b2c3d4e5f60718293a4b5c6d7e8f90a1",
        candidate=Candidate(
            first_name="Jan",
            last_name="Jansen-Smit",
            email_address="JAN.JANSEN@example.nl",
            phone_number="+31 6 99999999",
        ),
    )
    await run(connector.plan(second), second)
    rec = await records(ats_http, otys)
    [cand] = rec["candidates"]
    assert cand["Person"]["lastName"] == "Jansen-Smit"
    assert cand["Person"]["PhoneNumbers"]["1"]["phoneNumber"] == "+31 6 99999999"
    assert len(rec["procedures"]) == 2


async def test_gdpr_declined_uses_retention_rule(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http, gdpr_decline_days=10)
    received = dt.datetime(2026, 3, 1, tzinfo=dt.UTC).timestamp()
    app = application(
        attachments=False,
        gdpr_consent=GdprConsent(given=False),
        origin=Origin(channel="api", received_at=received),
    )
    await run(connector.plan(app), app)
    [gdpr] = (await records(ats_http, otys))["gdpr"]
    assert (gdpr["dueDate"], gdpr["reason"]) == ("2026-03-11", "cron")


# ---------------------------------------------------------------------------------------------
# Sessions


async def test_session_expiry_relogs_in_without_error(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    app = application()
    await run(connector.plan(app)[:2], app)  # source + candidate with a first session
    await sandbox(ats_http, otys, "/_sandbox/otys/expire-sessions")
    checkpoints, failed, _ = await run(connector.plan(app), app)
    assert not failed and "application" in checkpoints
    rec = await records(ats_http, otys)
    assert rec["logins"] == 2 and len(rec["documents"]) == 3


async def test_session_expiry_on_upload_relogs_in(emulator: EmulatorFactory, ats_http: httpx.AsyncClient) -> None:
    otys = emulator("otys", session_max_calls=3)
    connector = make(otys, ats_http)
    app = application()
    _, failed, _ = await run(connector.plan(app), app)
    assert not failed
    rec = await records(ats_http, otys)
    assert rec["logins"] > 3 and len(rec["documents"]) == 3 and len(rec["candidates"]) == 1


async def test_session_refused_twice_is_auth_error(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    await connector.call("check", what="check")
    # every call expires all sessions first, so even the fresh one is refused
    await sandbox(
        ats_http,
        otys,
        "/_sandbox/otys/rpc-faults",
        {"script": ["session_expired", "session_expired"], "path_regex": "CandidateService"},
    )
    with pytest.raises(AuthError):
        await connector.find_candidate("x@example.nl")


async def test_bad_api_key_is_auth_error(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    app = application(attachments=False)
    with pytest.raises(AuthError):
        await run(make(otys, ats_http, credentials="wrong").plan(app), app)


# ---------------------------------------------------------------------------------------------
# JSON-RPC error model and HTTP faults


def test_rpc_error_classification() -> None:
    assert isinstance(classify_rpc_error(2001, "Invalid value for field Person.gender", "x"), PermanentError)
    assert isinstance(classify_rpc_error(-32601, "Method not found", "x"), PermanentError)
    assert isinstance(classify_rpc_error(-32603, "Internal error", "x"), TransientError)
    assert isinstance(classify_rpc_error(7, "Too many requests", "x"), TransientError)
    assert isinstance(classify_rpc_error(1003, "Access denied; insufficient rights", "x"), AuthError)
    assert stage_field("3") == ("ProcedureStatus1", "1_3")
    assert stage_field("2_1") == ("ProcedureStatus2", "2_1")
    assert expiry_date("2028-01-31") == expiry_date("2028-01-31T23:00:00+01:00") == "2028-01-31"
    assert expiry_date(dt.date(2028, 1, 31)) == "2028-01-31"
    with pytest.raises(PermanentError):
        expiry_date("soon")


async def test_validation_error_in_http_200_is_permanent(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    app = application(attachments=False, application=JobRef(job_id=JOB, stage_id="99"))
    with pytest.raises(PermanentError) as info:
        await run(make(otys, ats_http).plan(app), app)
    assert "ProcedureStatus1" in info.value.detail and "jan" not in info.value.detail.lower()
    app = application(attachments=False, job=CLOSED_JOB)
    with pytest.raises(PermanentError):
        await run(make(otys, ats_http).plan(app), app)


async def test_http_statuses(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    await sandbox(ats_http, otys, "/_sandbox/faults", {"script": ["rate_limit"], "retry_after": 7})
    with pytest.raises(TransientError) as info:
        await connector.find_candidate("x@example.nl")
    assert info.value.retry_after == 7 and info.value.status == 429
    for status, kind in ((422, PermanentError), (401, AuthError), (503, TransientError)):
        await sandbox(ats_http, otys, "/_sandbox/faults", {"script": ["error"], "error_status": status})
        with pytest.raises(kind):
            await connector.find_candidate("x@example.nl")


async def test_drop_after_create_then_rerun_finds_it(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    for email, method in (
        ("a@example.nl", r"CandidateService\.add"),
        ("b@example.nl", r"ProcedureService\.add"),
    ):
        app = application(email, attachments=False)
        await sandbox(ats_http, otys, "/_sandbox/otys/rpc-faults", {"script": ["drop_after"], "path_regex": method})
        checkpoints: dict[str, str] = {}
        with pytest.raises(UnknownOutcome):
            await run(connector.plan(app), app, checkpoints)
        await run(connector.plan(app), app, checkpoints)
    rec = await records(ats_http, otys)
    assert len(rec["candidates"]) == 2 and len(rec["procedures"]) == 2


async def test_lagging_search_index_no_duplicate_candidate(
    emulator: EmulatorFactory, ats_http: httpx.AsyncClient
) -> None:
    """OTYS allows a second candidate with the same e-mail and its search index lags: after a
    dropped answer to CandidateService.add, the re-run must still find the candidate."""
    otys = emulator("otys", unique_email=False, search_index_lag_s=30)
    connector = make(otys, ats_http)
    app = application(attachments=False)
    await sandbox(
        ats_http,
        otys,
        "/_sandbox/otys/rpc-faults",
        {"script": ["drop_after"], "path_regex": r"CandidateService\.add"},
    )
    checkpoints: dict[str, str] = {}
    with pytest.raises(UnknownOutcome):
        await run(connector.plan(app), app, checkpoints)
    await run(connector.plan(app), app, checkpoints)
    rec = await records(ats_http, otys)
    assert len(rec["candidates"]) == 1 and rec["procedures"][0]["candidateUid"] == checkpoints["candidate"]


# ---------------------------------------------------------------------------------------------
# Attachments: rejection, full-attachment retry, unknown outcomes


async def test_rejected_file_then_full_attachment_retry(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    await sandbox(ats_http, otys, "/_sandbox/otys/upload-faults", {"extensions": [".docx"]})
    connector = make(otys, ats_http)
    app = application()
    checkpoints, failed, _ = await run(connector.plan(app), app)
    assert "application" in checkpoints  # candidate and application complete
    assert list(failed) == [f"attachment:{ATTACHMENTS[1].sha256}"]
    assert isinstance(failed[f"attachment:{ATTACHMENTS[1].sha256}"], AttachmentRejected)
    assert len((await records(ats_http, otys))["documents"]) == 2
    # operator "retry attachments": the whole set is re-run (even confirmed ones); OTYS dedupes
    (await ats_http.delete(otys.url + "/_sandbox/otys/upload-faults")).raise_for_status()
    retry = {k: v for k, v in checkpoints.items() if not k.startswith("attachment:")}
    checkpoints2, failed2, _ = await run(connector.plan(app), app, retry)
    assert not failed2
    rec = await records(ats_http, otys)
    assert sorted(d["fileName"] for d in rec["documents"]) == ["cv.pdf", "letter.docx", "portfolio.png"]
    assert checkpoints2[f"attachment:{ATTACHMENTS[0].sha256}"] == checkpoints[f"attachment:{ATTACHMENTS[0].sha256}"]


async def test_too_large_file_is_rejected(emulator: EmulatorFactory, ats_http: httpx.AsyncClient) -> None:
    otys = emulator("otys", max_file_bytes=400)
    app = application()
    _, failed, _ = await run(make(otys, ats_http).plan(app), app)
    assert set(failed) == {f"attachment:{ATTACHMENTS[2].sha256}"}


async def test_attach_timeout_after_store_no_duplicate(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http, timeout_s=0.5)
    app = application()
    await sandbox(
        ats_http,
        otys,
        "/_sandbox/otys/rpc-faults",
        {"script": ["timeout_after"], "stall_s": 1.5, "path_regex": r"AttachedDocumentsService\.add"},
    )
    checkpoints, failed, _ = await run(connector.plan(app), app)
    assert len(failed) == 1 and isinstance(next(iter(failed.values())), UnknownOutcome)
    checkpoints, failed, _ = await run(connector.plan(app), app, checkpoints)
    assert not failed
    rec = await records(ats_http, otys)
    assert len(rec["documents"]) == 3


async def test_upload_timeout_after_store_no_duplicate(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http, timeout_s=0.5)
    app = application()
    await sandbox(
        ats_http,
        otys,
        "/_sandbox/faults",
        {"script": ["timeout_after"], "stall_s": 1.5, "path_regex": "fileService"},
    )
    checkpoints, failed, _ = await run(connector.plan(app), app)
    assert len(failed) == 1
    checkpoints, failed, _ = await run(connector.plan(app), app, checkpoints)
    rec = await records(ats_http, otys)
    assert not failed and len(rec["documents"]) == 3
    assert len(rec["files"]) == 4  # one orphan upload, never linked as a document


# ---------------------------------------------------------------------------------------------
# Actions


async def test_actions(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    app = application(attachments=False)
    checkpoints, _, _ = await run(connector.plan(app), app)
    cand, proc = checkpoints["candidate"], checkpoints["application"]
    steps = connector.action_plan(ACTION_ADD_ATTACHMENT_TO_APPLICATION, {"application_id": proc}, [ATTACHMENTS[0]])
    assert [s.core for s in steps] == [False]
    await run(steps, None)
    await run(
        connector.action_plan(ACTION_ADD_ATTACHMENT_TO_CANDIDATE, {"candidate_id": cand}, [ATTACHMENTS[2]]),
        None,
    )
    await run(
        connector.action_plan(ACTION_ADD_ATTACHMENT_TO_CANDIDATE, {"candidate_id": cand}, [ATTACHMENTS[2]]),
        None,
    )  # repeated: no duplicate
    link = {
        "application_id": proc,
        "label": "Assessment result",
        "url": "https://assess.example/r/1",
        "details": {
            "custom_field_name_prefix": "Acme:",
            "attributes": [{"key": "Score", "value": "91%"}, {"key": "Time", "value": "2:30h"}],
        },
    }
    await run(connector.action_plan(ACTION_ADD_RESULT_LINK_TO_APPLICATION, link, []), None)
    await run(connector.action_plan(ACTION_ADD_RESULT_LINK_TO_APPLICATION, link, []), None)
    await run(
        connector.action_plan(
            ACTION_ADD_RESULT_LINK_TO_CANDIDATE,
            {
                "candidate_id": cand,
                "label": "Video",
                "url": "https://v.example/1",
                "details": {"attributes": {"Length": "3m"}},
            },
            [],
        ),
        None,
    )
    await run(
        connector.action_plan(ACTION_MOVE_APPLICATION_TO_STAGE, {"application_id": proc, "stage_id": "4"}, []),
        None,
    )
    rec = await records(ats_http, otys)
    docs = rec["documents"]
    assert [d["applicationUid"] for d in docs if d["fileName"] == "cv.pdf"] == [proc]
    assert [d["applicationUid"] for d in docs if d["fileName"] == "portfolio.png"] == [None]
    links = [d for d in docs if d["subject"] in ("Assessment result", "Video")]
    assert len(links) == 2
    assert [d["applicationUid"] for d in links if d["subject"] == "Assessment result"] == [proc]
    text = OtysConnector.result_link_text(link)
    assert "https://assess.example/r/1" in text and "Acme: Score: 91%" in text
    assert rec["procedures"][0]["ProcedureStatus1"] == {"uid": "1_4"}
    with pytest.raises(PermanentError):
        connector.action_plan("unknown", {}, [])


# ---------------------------------------------------------------------------------------------
# Reading, check, passthrough


async def test_screening_questions_stages_and_check(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    questions = await connector.screening_questions(JOB)
    types = {q["type"] for q in questions}
    assert types == {"TEXT", "DATE", "FILE", "SINGLE_SELECT", "MULTI_SELECT", "BOOLEAN"}
    select = next(q for q in questions if q["id"] == "106")
    assert select["options"] == [{"id": "11", "label": "North"}, {"id": "12", "label": "South"}]
    assert await connector.screening_questions("b2c3d4e5f60718293a4b5c6d7e8f90a1") == []
    stages = await connector.stages()
    assert stages[0] == {"id": "1_1", "name": "Applied"}
    errors, warnings = connector.check(application(screening_question_answers=[StoredAnswer("101", "hi")]))
    assert errors == [] and warnings == []  # answers are written now (test_otys_reads.py)


async def test_passthrough(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    result = await connector.passthrough(
        "POST",
        "/jservice.php",
        None,
        {"method": "Otys.Services.VacancyService.getListEx", "params": [{"what": {"uid": 1}, "limit": 2}]},
    )
    assert result.status == 200 and len(result.body["result"]["listOutput"]) == 2
    await sandbox(ats_http, otys, "/_sandbox/otys/expire-sessions")
    result = await connector.passthrough(
        "POST", "jservice.php", None, {"method": "Otys.Services.VacancyService.getDetail", "params": ["nope"]}
    )
    assert result.body["error"]["code"] == 2004  # the OTYS envelope, as-is, after a re-login
    for method, path, body in (
        ("GET", "/jservice.php", {}),
        ("POST", "https://evil.example/x", {}),
        ("POST", "../fileService.php", {}),
        ("POST", "/jservice.php", {"method": "loginByUid", "params": ["k"]}),
    ):
        with pytest.raises(PermanentError):
            await connector.passthrough(method, path, None, body)
    await connector.close()
    assert (await records(ats_http, otys))["live_sessions"] == 0


async def test_application_status_for_status_sync(otys: Emulator, ats_http: httpx.AsyncClient) -> None:
    connector = make(otys, ats_http)
    app = application()
    checkpoints, _, _ = await run(connector.plan(app), app, core_only=True)
    procedure = checkpoints["application"]
    status = await connector.application_status(procedure)
    assert status is not None and status["outcome"] == "PENDING" and status["stage_id"].startswith("1_")
    await run(
        connector.action_plan("move_application_to_stage", {"application_id": procedure, "stage_id": "1_5"}, []), None
    )
    assert await connector.application_status(procedure) == {
        "stage_id": "1_5",
        "stage_name": "Hired",
        "outcome": "HIRED",
    }


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"gdpr_retention_months": 10**6}, "$.gdpr_retention_months"),  # year 85,000: dt.date raises
        ({"gdpr_decline_days": 10**7}, "$.gdpr_decline_days"),
        ({"result_link_type_id": 0}, "$.result_link_type_id"),
        ({"document_types": {"CV": 2**40}}, "$.document_types"),
    ],
)
def test_settings_no_due_date_or_document_could_use_are_refused_naming_the_key(
    settings: dict[str, Any], key: str
) -> None:
    """Refused when the connection is made, not a ValueError in the worker at every GDPR step."""
    with pytest.raises(msgspec.ValidationError, match=re.escape(key)):
        OtysSettings.from_mapping(settings)


async def test_the_longest_retention_allowed_still_makes_a_due_date(
    otys: Emulator, ats_http: httpx.AsyncClient
) -> None:
    connector = make(otys, ats_http, gdpr_retention_months=1200)
    received = dt.datetime(2026, 3, 31, tzinfo=dt.UTC).timestamp()
    app = application(
        attachments=False, gdpr_consent=GdprConsent(given=True), origin=Origin(channel="api", received_at=received)
    )
    await run(connector.plan(app), app)
    [gdpr] = (await records(ats_http, otys))["gdpr"]
    assert gdpr["dueDate"] == "2126-03-28"
