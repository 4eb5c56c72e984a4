"""An ATS that answers badly (tests/support/hostile_ats.py in front of the emulators): a create
that succeeds but answers with no usable id, a 200 HTML page on a read. Each must end delivered,
exactly once in the ATS: the id as answered was saved before ("None", "", "{'nested': 1}"), the
next step sent it, and the delivery was dead-lettered on the wrong step with the records made."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from connectors.sandbox.common import BackgroundServer
from connectors.sandbox.flatchr import COMPANY_ID as FLATCHR_COMPANY
from tests.support.builders import PDF_BYTES, application, b64, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.hostile_ats import HostileATS, answer, encoded, gzip_bomb, trickled, with_id

FACTORIAL = r"/api/[^/]+/resources/ats/"


def in_front_of(emulator: Emulator) -> Iterator[tuple[HostileATS, str]]:
    """A hostile proxy before `emulator`, served on loopback: (its rules, its URL)."""
    proxy = HostileATS(emulator.url)
    server = BackgroundServer(proxy).start()
    yield proxy, server.url
    server.stop()


@pytest.fixture
def hostile_factorial(factorial: Emulator) -> Iterator[tuple[HostileATS, str]]:
    yield from in_front_of(factorial)


@pytest.fixture
def hostile_laura(laura: Emulator) -> Iterator[tuple[HostileATS, str]]:
    yield from in_front_of(laura)


async def settle(relay: Relay, delivery_id: str, runs: int = 4) -> tuple[dict[str, Any], list[str]]:
    """Run the delivery until it ends (each scheduled retry made due at once): its last state
    and the status after each run."""
    statuses: list[str] = []
    record: dict[str, Any] = {}
    for run in range(1, runs + 1):
        record = await relay.wait_for(
            delivery_id, "delivered", "retry_scheduled", "failed", timeout=30, until=lambda r, n=run: r["runs"] >= n
        )
        statuses.append(record["status"])
        if record["status"] != "retry_scheduled":
            break
        await relay.run_due_jobs()
    return record, statuses


def one_candidate(email: str) -> dict[str, Any]:
    return application(
        attachments=[],
        screening_question_answers=[],
        candidate={"first_name": "Ana", "last_name": "Ruiz", "email_address": email},
    )


@pytest.mark.parametrize("bad_id", [None, "", {"nested": 1}, True, 0])
async def test_a_create_answered_without_a_usable_id_is_retried_and_made_once(
    make_relay: Any, factorial: Emulator, hostile_factorial: tuple[HostileATS, str], bad_id: Any
) -> None:
    proxy, url = hostile_factorial
    proxy.on("POST", FACTORIAL + "candidates$", with_id(bad_id))
    proxy.on("POST", FACTORIAL + "applications$", with_id(bad_id))
    relay: Relay = make_relay({"acme": connection_table("factorial", url)})
    await relay.start_worker()
    email = f"ana-{abs(hash(repr(bad_id)))}@example.org"
    response = await relay.post({**one_candidate(email), "connection_id": "acme"})
    assert response.status_code == 202, response.text
    record, statuses = await settle(relay, response.json()["id"])
    assert statuses == ["retry_scheduled", "retry_scheduled", "delivered"], record["last_error"]  # one retry each
    seen = factorial.records()
    assert [c["email"] for c in seen["candidates"]].count(email) == 1
    [candidate] = [c for c in seen["candidates"] if c["email"] == email]
    assert record["checkpoints"]["candidate"] == str(candidate["id"])
    mine = [a for a in seen["applications"] if str(a["ats_candidate_id"]) == str(candidate["id"])]
    assert len(mine) == 1 and record["checkpoints"]["application"] == str(mine[0]["id"])


async def test_a_laura_create_without_an_id_and_a_read_served_as_html_are_retried(
    make_relay: Any, laura: Emulator, hostile_laura: tuple[HostileATS, str]
) -> None:
    proxy, url = hostile_laura
    proxy.on(
        "GET",
        r"/candidates$",
        answer(200, b"<html><h1>Maintenance</h1></html>", [("content-type", "text/html")], write=False),
    )
    proxy.on("POST", r"/candidates$", with_id(""))
    relay: Relay = make_relay({"laura": connection_table("laura", url)})
    await relay.start_worker()
    response = await relay.post(
        {**one_candidate("ana-laura@example.org"), "connection_id": "laura", "application": {"job_id": "102"}}
    )
    assert response.status_code == 202, response.text
    record, statuses = await settle(relay, response.json()["id"])
    # the HTML read, then the id-less create: both transient, then delivered
    assert statuses == ["retry_scheduled", "retry_scheduled", "delivered"], record["last_error"]
    candidates = [c for c in laura.records()["candidates"] if c.get("email") == "ana-laura@example.org"]
    assert len(candidates) == 1


@pytest.mark.parametrize(
    ("coding", "header"),
    [
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("raw deflate", "deflate"),  # IIS-style, no zlib header: httpx took it, so must we
        ("gzip", "gzip, identity"),
        ("none", "utf-8"),  # a token no one defines, over a plain body: ignored, as httpx does
    ],
)
async def test_an_encoded_answer_is_read_as_httpx_read_it(
    make_relay: Any, factorial: Emulator, hostile_factorial: tuple[HostileATS, str], coding: str, header: str
) -> None:
    """The answers are inflated by the relay's stream now (bounded), not by httpx."""
    proxy, url = hostile_factorial
    proxy.on("POST", FACTORIAL + "candidates$", encoded(coding, header))
    proxy.on("POST", FACTORIAL + "applications$", encoded(coding, header))
    relay: Relay = make_relay({"acme": connection_table("factorial", url)})
    await relay.start_worker()
    response = await relay.post(
        {**one_candidate(f"ana-{coding.replace(' ', '')}@example.org"), "connection_id": "acme"}
    )
    record, statuses = await settle(relay, response.json()["id"])
    assert statuses == ["delivered"], record["last_error"]


@pytest.mark.parametrize(
    ("case", "action", "settings", "error"),
    [
        # 64 KB inflating to 256 MiB: httpx inflated it whole (a probe's 1 GiB one took a worker
        # to 3.3 GB); cut at MAX_ANSWER_BYTES now
        ("bomb", gzip_bomb(256), {}, "create candidate: AnswerTooLarge"),
        # aiohttp bounds each read only: a byte every 0.2 s held the call until the run budget
        ("slow", trickled(0.2), {"timeout_s": 1}, "create candidate: AnswerTooSlow"),
        # undocumented 409 (an index behind the write): was a dead letter, the candidate made
        ("409", answer(409, b'{"error": "already exists"}', write=True), {}, "create candidate: HTTP 409"),
    ],
)
async def test_a_create_whose_answer_is_lost_is_retried_and_the_lookup_finds_it(
    make_relay: Any,
    factorial: Emulator,
    hostile_factorial: tuple[HostileATS, str],
    case: str,
    action: Any,
    settings: dict[str, Any],
    error: str,
) -> None:
    """The write is made, its answer is unusable: an unknown outcome, retried once, made once."""
    proxy, url = hostile_factorial
    proxy.on("POST", FACTORIAL + "candidates$", action)
    relay: Relay = make_relay({"acme": connection_table("factorial", url, **settings)})
    await relay.start_worker()
    email = f"ana-{case}@example.org"
    response = await relay.post({**one_candidate(email), "connection_id": "acme"})
    record, statuses = await settle(relay, response.json()["id"])
    assert statuses == ["retry_scheduled", "delivered"], record["last_error"]
    [lost] = [a for a in record["attempts"] if a["outcome"] == "transient"]
    assert lost["error"].startswith(error), lost
    assert [c["email"] for c in factorial.records()["candidates"]].count(email) == 1


@pytest.fixture
def hostile_flatchr(flatchr: Emulator) -> Iterator[tuple[HostileATS, str]]:
    yield from in_front_of(flatchr)


async def test_an_unreadable_answer_is_named_as_the_atss_not_as_our_bug(
    make_relay: Any, flatchr: Emulator, hostile_flatchr: tuple[HostileATS, str]
) -> None:
    """Flatchr's applicant search answered with an HTML page: was 'internal error in step
    create: JSONDecodeError', logged with a traceback as if the connector had crashed."""
    proxy, url = hostile_flatchr
    proxy.on(
        "POST",
        r"/search/applicants$",
        answer(200, b"<html>maintenance</html>", [("content-type", "text/html")], write=False),
    )
    relay: Relay = make_relay({"acme": connection_table("flatchr", url, company_id=FLATCHR_COMPANY)})
    await relay.start_worker()
    body = {
        "connection_id": "acme",
        "candidate": {"first_name": "Jeanne", "last_name": "Martin", "email_address": "jeanne-html@example.fr"},
        "application": {"job_id": "Vq5r6pYxam9AmMvP"},  # the seeded Python job
        "screening_question_answers": [
            {"question_id": "q7Hd2LmQx9aB3cTe", "answer": "L'équipe"},
            {"question_id": "q2Kp8ZrW4nYv6JsU", "answer": False},
        ],
        "attachments": [{"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(PDF_BYTES)}],
    }
    response = await relay.post(body)
    assert response.status_code == 202, response.text
    record, statuses = await settle(relay, response.json()["id"])
    assert statuses == ["retry_scheduled", "delivered"], record["last_error"]
    [unread] = [a for a in record["attempts"] if a["outcome"] == "transient"]
    assert "the ATS's answer could not be read (JSONDecodeError)" in unread["error"], unread
