"""Indeed Apply: signature, mapping of every container and answer shape, Indeed's status codes,
and one application all the way through the worker into the Factorial emulator."""

from __future__ import annotations

import base64
import copy
import hashlib
from typing import Any

import httpx
import pytest

from app.intake.boards import indeed
from connectors.factorial import option_id
from tests.support.builders import PDF_BYTES
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.inbound import (
    EXE,
    INDEED_SECRET,
    answers_of,
    assert_nothing_stored,
    inbound_connection,
    inbound_env,
    indeed_body,
    indeed_payload,
    post_indeed,
    stored,
)


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator, monkeypatch: pytest.MonkeyPatch) -> Relay:
    inbound_env(monkeypatch)
    return make_relay(
        {
            "acme": inbound_connection(factorial.url, indeed_questions={"q_portfolio": "3005"}),
            "mapped": inbound_connection(
                factorial.url,
                indeed_jobs={"REQ-1": "2001", "REQ-OLD": "2003"},
                indeed_job_field="jobId",
                max_file_bytes=50_000,
                indeed_max_body_bytes=200_000,
            ),
            "bymeta": inbound_connection(
                factorial.url, indeed_job_field="jobMeta", indeed_jobs={"tenant=acme": "2002"}
            ),
            "nosecret": inbound_connection(factorial.url, indeed_secret_env="TEST_UNSET_INDEED_SECRET"),
        }
    )


def test_signature_matches_indeeds_published_test_vector() -> None:
    message = b"{'locale':'en_US','applicant':{'fullName':'John Doe','email':'john.doe@example.com'}}"
    assert indeed.sign(message, "Y0ur api secret key not shared &$%@") == "SGadPKocf3HD1LYXm3xGObB6hzk="
    own = (
        b'{"id":"apply-demo-1","job":{"jobId":"J-1"},"applicant":{"fullName":"Ada Example","email":"ada@example.com"}}'
    )
    assert indeed.sign(own, "demo-indeed-secret") == "afxevyHknr97CWYnpImkHggboyE="
    indeed.verify(message, "SGadPKocf3HD1LYXm3xGObB6hzk=", INDEED_SECRET)


async def test_indeed_application_arrives_in_factorial(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    response = await post_indeed(relay)
    assert response.status_code == 202, response.text
    delivery = await relay.wait_for(response.json()["id"], "delivered")
    records = factorial.records()
    [candidate] = records["candidates"]
    assert (candidate["first_name"], candidate["last_name"]) == ("Zoë", "Van der Berg")
    assert candidate["email"] == "zoe@example.org" and candidate["phone_number"] == "+34 612 345 678"
    [application] = records["applications"]
    assert application["ats_job_posting_id"] == "2001"
    assert application["source_id"] == "4002"  # "Indeed", matched by label
    answers = {a["ats_question_id"]: a["value"] for a in records["answers"]}
    assert answers == {"3001": "Because relays never lose a CV.", "3003": "Yes", "3004": "Python, Rust"}
    [cv] = records["files"]
    assert cv["filename"] == "Zoë CV — 履歴書.pdf"  # unicode kept exactly
    assert cv["sha256"] == hashlib.sha256(PDF_BYTES).hexdigest()  # lenient base64 decoded to the same bytes
    assert delivery["board"] == "indeed" and delivery["channel"] == "indeed"


# Job 2001's mandatory questions (3001, 3003): an application that answers any question must
# answer them too (app/core/answers.py).
REQUIRED = [
    {"question": {"id": "3001", "question": "Why us?"}, "answer": "The relay."},
    {"question": {"id": "3003", "question": "EU work permit"}, "answer": {"value": "yes", "label": "Yes"}},
]
REQUIRED_STORED = {"3001": "The relay.", "3003": option_id("Yes")}


async def test_every_container_and_answer_shape_is_mapped(relay: Relay) -> None:
    response = await post_indeed(relay)
    assert response.status_code == 202, response.text
    application = await stored(relay, response.json()["id"])
    answers = answers_of(application)
    assert answers["3001"] == "Because relays never lose a CV."  # by normalised question text
    assert answers["3003"] == option_id("Yes")  # {value,label} → the ATS option id (Factorial: a hash of its text)
    assert answers["3004"] == [option_id("Python"), option_id("Rust")]  # a list; "rust" matched case-insensitively
    assert answers["3005"]["name"] == "portfolio.pdf" and answers["3005"]["size"] == len(PDF_BYTES)  # a file
    assert len(answers) == 4  # "" (unanswered optional) dropped; demographics never mapped by text
    kinds = {(a.type, a.name) for a in application.attachments}
    assert kinds == {("CV", "Zoë CV — 履歴書.pdf"), ("COVER_LETTER", "cover_letter.txt")}
    assert application.origin.board_application_id == indeed_payload()["id"]

    top_level = indeed_payload(
        id="top-level",
        screenerQuestionsAndAnswers=None,
        questionsAndAnswers=[
            {"question": {"id": "3002", "question": "Salary"}, "answer": "55000"},  # ATS id used directly
            {"question": {"id": "q_x", "question": "Which languages do you write"}, "answer": ["Go"]},
            *REQUIRED,
        ],
    )
    response = await post_indeed(relay, top_level)
    assert response.status_code == 202, response.text
    assert answers_of(await stored(relay, response.json()["id"])) == {
        "3002": "55000",
        "3004": [option_id("Go")],
        **REQUIRED_STORED,
    }

    legacy = indeed_payload(
        id="legacy",
        screenerQuestionsAndAnswers=None,
        questions={
            "url": "https://example.org/questions.json",
            "questionsAndAnswers": [
                {"id": "q1", "question": "Your expected salary", "answer": 60000},
                {
                    "question": {"id": "q2", "question": "Do you hold an EU work permit?"},
                    "answer": {"value": "no", "label": "No"},
                },
                REQUIRED[0],
            ],
        },
    )
    response = await post_indeed(relay, legacy)
    assert response.status_code == 202, response.text
    # a number for a TEXT question is stored as its text (app/core/answers.py, `normalise`)
    assert answers_of(await stored(relay, response.json()["id"])) == {
        "3002": "60000",
        "3003": option_id("No"),
        "3001": REQUIRED_STORED["3001"],
    }


async def test_unmapped_question_is_a_warning_not_a_refusal(relay: Relay) -> None:
    payload = indeed_payload(
        screenerQuestionsAndAnswers={
            "questionsAndAnswers": [
                {"question": {"id": "q_mystery", "question": "Favourite colour?"}, "answer": "blue"}
            ]
        }
    )
    response = await post_indeed(relay, payload)
    assert response.status_code == 202, response.text
    assert answers_of(await stored(relay, response.json()["id"])) == {}
    warnings = (await relay.delivery(response.json()["id"]))["warnings"]
    assert any(w["code"] == "answer_unmapped" and "q_mystery" in w["message"] for w in warnings)
    assert all("blue" not in w["message"] for w in warnings)  # no answer text in warnings


async def test_split_names_and_single_word_names(relay: Relay) -> None:
    payload = indeed_payload(id="split")
    payload["applicant"].update(firstName="María José", lastName="García-Ñúñez", fullName="ignored when split")
    response = await post_indeed(relay, payload)
    candidate = (await stored(relay, response.json()["id"])).candidate
    assert (candidate.first_name, candidate.last_name) == ("María José", "García-Ñúñez")
    payload = indeed_payload(id="single")
    payload["applicant"].update(fullName="Madonna", phoneNumber="call me maybe")
    response = await post_indeed(relay, payload)
    assert response.status_code == 202, response.text
    application = await stored(relay, response.json()["id"])
    assert (application.candidate.first_name, application.candidate.last_name) == ("Madonna", "Madonna")
    assert application.candidate.phone_number is None
    warnings = (await relay.delivery(response.json()["id"]))["warnings"]
    assert any(w["code"] == "phone_dropped" for w in warnings)


async def test_resume_only_as_text_and_no_resume(relay: Relay) -> None:
    payload = indeed_payload(id="text-resume")
    payload["applicant"]["resume"] = {"text": "Ten years of Python.", "json": {"x": 1}}
    del payload["applicant"]["coverletter"]
    response = await post_indeed(relay, payload)
    assert response.status_code == 202, response.text
    [cv] = (await stored(relay, response.json()["id"])).attachments
    assert (cv.name, cv.type, cv.content_type) == ("resume.txt", "CV", "text/plain")
    payload = indeed_payload(id="nameless")
    payload["applicant"]["resume"] = {"file": {"data": base64.b64encode(PDF_BYTES).decode()}}
    response = await post_indeed(relay, payload)
    assert response.status_code == 202, response.text
    assert (await stored(relay, response.json()["id"])).attachments[0].name == "resume.pdf"


async def test_a_resume_file_without_bytes_is_refused_not_dropped(relay: Relay) -> None:
    """Was a 202 with no CV and no warning (a probe of the running service)."""
    payload = indeed_payload(id="empty-file")
    payload["applicant"]["resume"] = {"file": {"fileName": "cv.pdf", "contentType": "application/pdf", "data": ""}}
    response = await post_indeed(relay, payload)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "FILE.EMPTY" and problem["errors"][0]["field"] == "applicant.resume.file.data"
    await assert_nothing_stored(relay)
    payload["applicant"]["resume"]["text"] = "Ten years of Python."  # the text stands in for the file
    response = await post_indeed(relay, payload)
    assert response.status_code == 202, response.text


async def test_resume_as_html_behind_a_blank_text(relay: Relay) -> None:
    payload = indeed_payload(id="html-resume")
    payload["applicant"]["resume"] = {"text": "  ", "html": "<p>Ten years of Python.</p>"}
    del payload["applicant"]["coverletter"]
    response = await post_indeed(relay, payload)
    assert response.status_code == 202, response.text
    [cv] = (await stored(relay, response.json()["id"])).attachments
    assert (cv.name, cv.type, cv.content_type) == ("resume.txt", "CV", "text/plain")  # HTML as its text


async def test_signature_is_required_and_checked(relay: Relay) -> None:
    body = indeed_body(indeed_payload())
    assert (await post_indeed(relay, raw=body, sign=False)).status_code == 401
    assert (await post_indeed(relay, raw=body, secret="another secret")).status_code == 401
    assert (await post_indeed(relay, raw=body, signature="not base64 at all")).status_code == 401
    tampered = body.replace(b"zoe@example.org", b"eve@example.org")
    response = await post_indeed(relay, raw=tampered, signature=indeed.sign(body, INDEED_SECRET))
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "zoe" not in response.text and "eve" not in response.text
    await assert_nothing_stored(relay)


async def test_route_without_a_configured_secret_is_a_404(relay: Relay) -> None:
    for sign in (True, False):
        response = await post_indeed(relay, connection="nosecret", sign=sign)
        assert response.status_code == 404
    assert (await post_indeed(relay, connection="nobody")).status_code == 404
    await assert_nothing_stored(relay)


def _without(path: str) -> dict[str, Any]:
    payload = copy.deepcopy(indeed_payload())
    *parents, last = path.split(".")
    target = payload
    for key in parents:
        target = target[key]
    del target[last]
    return payload


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        (_without("id"), 400, "id"),
        (_without("applicant.email"), 400, "applicant.email"),
        (_without("applicant.fullName"), 400, "applicant.fullName"),
        (_without("applicant"), 400, "applicant"),
        ({**_without("job.jobId"), "job": {"jobKey": "x"}}, 400, "job.jobId"),
        (indeed_payload(applicant={"fullName": "Ana López", "email": "ana@"}), 422, "applicant.email"),
        (indeed_payload(job={"jobId": "9999"}), 404, "job.jobId"),
        (indeed_payload(job={"jobId": "2003"}), 410, "job.jobId"),
        (
            indeed_payload(
                applicant={
                    "fullName": "Ana",
                    "email": "a@example.org",
                    "resume": {
                        "file": {
                            "fileName": "cv.pdf",
                            "contentType": "application/pdf",
                            "data": base64.b64encode(EXE).decode(),
                        }
                    },
                }
            ),
            422,
            "applicant.resume.file",
        ),
        (
            indeed_payload(
                applicant={
                    "fullName": "Ana",
                    "email": "a@example.org",
                    "resume": {"file": {"fileName": "cv.pdf", "data": "***not base64***"}},
                }
            ),
            422,
            "applicant.resume.file.data",
        ),
        (
            indeed_payload(
                screenerQuestionsAndAnswers={"questionsAndAnswers": [{"question": {"id": "q"}, "answer": {"weird": 1}}]}
            ),
            422,
            "screenerQuestionsAndAnswers.questionsAndAnswers[0].answer",
        ),
        (indeed_payload(questionsAndAnswers="nope"), 422, "questionsAndAnswers"),
    ],
    ids=[
        "no id",
        "no email",
        "no name",
        "no applicant",
        "no job",
        "bad email",
        "unknown job",
        "closed job",
        "executable resume",
        "bad base64",
        "weird answer",
        "bad container",
    ],
)
async def test_indeed_status_codes(relay: Relay, payload: Any, status: int, field: str) -> None:
    response = await post_indeed(relay, payload)
    assert response.status_code == status, response.text
    problem = response.json()
    assert any(e["field"] == field for e in problem.get("errors", [])), problem
    await assert_nothing_stored(relay)


async def test_malformed_json_and_wrong_types(relay: Relay) -> None:
    assert (await post_indeed(relay, raw=b"{not json")).status_code == 400
    wrong = await post_indeed(relay, raw=b'{"id": 5, "applicant": {}}')
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "id"  # named, not only in the detail
    await assert_nothing_stored(relay)


async def test_duplicate_is_a_409_and_stores_nothing_new(relay: Relay) -> None:
    first = await post_indeed(relay)
    assert first.status_code == 202
    again = await post_indeed(relay)
    assert again.status_code == 409, again.text
    assert again.json()["delivery_id"] == first.json()["id"]
    assert await relay.queued_jobs() == 1


async def test_job_mapping_setting(relay: Relay) -> None:
    payload = indeed_payload(id="m1", job={"jobId": "REQ-1"}, screenerQuestionsAndAnswers=None)
    payload["applicant"]["resume"] = None
    response = await post_indeed(relay, payload, connection="mapped")
    assert response.status_code == 202, response.text
    assert (await stored(relay, response.json()["id"])).application.job_id == "2001"
    assert (
        await post_indeed(relay, indeed_payload(id="m2", job={"jobId": "2001"}), connection="mapped")
    ).status_code == 404  # not in the connection's job list
    assert (
        await post_indeed(relay, indeed_payload(id="m3", job={"jobId": "REQ-OLD"}), connection="mapped")
    ).status_code == 410
    response = await post_indeed(relay, indeed_payload(id="m4"), connection="bymeta")
    assert response.status_code == 202, response.text
    application = await stored(relay, response.json()["id"])
    assert application.application.job_id == "2002"  # selected by jobMeta
    assert answers_of(application) == {}  # job 2002 has none of these questions: unmapped, warned


async def test_too_large_is_a_413(relay: Relay) -> None:
    payload = indeed_payload(id="big", job={"jobId": "REQ-1"})
    payload["applicant"]["resume"]["file"]["data"] = base64.b64encode(PDF_BYTES * 200).decode()  # > 50 kB file
    response = await post_indeed(relay, payload, connection="mapped")
    assert response.status_code == 413, response.text
    payload["applicant"]["resume"]["file"]["data"] = base64.b64encode(PDF_BYTES * 1000).decode()  # > 200 kB body
    response = await post_indeed(relay, payload, connection="mapped")
    assert response.status_code == 413
    await assert_nothing_stored(relay)


async def test_a_cv_above_the_default_body_limit_fits(relay: Relay) -> None:
    """Litestar's default limit is 10 MB; a 9 MB CV in base64 is a 12 MB body (default here: 25 MB)."""
    payload = indeed_payload(id="nine-mb")
    payload["applicant"]["resume"]["file"]["data"] = base64.b64encode(
        PDF_BYTES + b"0" * (9_000_000 - len(PDF_BYTES))
    ).decode()
    body = indeed_body(payload)
    assert len(body) > 12_000_000
    response = await post_indeed(relay, raw=body)
    assert response.status_code == 202, response.text
    cv = next(a for a in (await stored(relay, response.json()["id"])).attachments if a.type == "CV")
    assert cv.size == 9_000_000


async def test_jobs_are_checked_through_the_catalog_once_per_ttl(
    relay: Relay, factorial: Emulator, ats_http: httpx.AsyncClient
) -> None:
    """The boards' job check reads the catalog's cached job: one ATS read for a run of
    applications to an open job; a closed one is a 410, an unknown one a 404, each with its code."""
    from app.catalog import Catalog
    from app.core.problems import Problem
    from app.intake.boards.draft import check_job
    from app.runtime import ConnectorPool

    config = relay.settings.config
    connection = config.connections["acme"]
    pool = ConnectorPool(config, ats_http)  # this test's own, on its event loop (the relay's runs in a thread)
    catalog, connector = Catalog(relay.redis, config, pool.get), pool.get("acme")
    factorial.reset()
    for _ in range(3):
        await check_job(catalog, connector, connection, "2001", "job.jobId")
    reads = {k: v for k, v in factorial.records()["requests"].items() if "2001" in k}
    assert reads and all(count == 1 for count in reads.values()), reads
    for job_id, status, code in (("2003", 410, "ATS.JOB_CLOSED"), ("9999", 404, "ATS.JOB_NOT_FOUND")):
        with pytest.raises(Problem) as caught:
            await check_job(catalog, connector, connection, job_id, "job.jobId")
        assert (caught.value.status, caught.value.code) == (status, code)
        assert caught.value.errors[0].field == "job.jobId"
