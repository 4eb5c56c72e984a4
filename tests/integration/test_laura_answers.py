"""Laura screening answers end to end: answers built only from the connector's `job_questions`
(Kombo's shapes, read from the emulator over HTTP), posted to the relay, checked at intake,
delivered by the worker, and stored by Laura typed as it keeps them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from app.core.catalog import ScreeningQuestion
from connectors import connector_class
from connectors.base import ConnectionSpec
from connectors.laura import LauraConnector, LauraSettings
from tests.support.builders import connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay


async def questions_of(laura: Emulator, ats_http: httpx.AsyncClient, job_id: str) -> list[ScreeningQuestion]:
    spec = ConnectionSpec(
        id="city-laura", connector="laura", base_url=laura.url, credentials="sandbox", settings=LauraSettings()
    )
    connector = connector_class("laura")(spec, ats_http)
    assert isinstance(connector, LauraConnector)
    return await connector.job_questions(job_id)


def answers_for(questions: list[ScreeningQuestion]) -> list[dict[str, Any]]:
    """Every shown question answered; selects choose the option that opens a dependent question."""
    opens = {str(o) for q in questions for o in q.precondition_options or []}
    given: dict[str, Any] = {}
    for q in questions:
        if q.precondition_question_id is not None:
            parent = given.get(q.precondition_question_id)
            if parent is None or not {str(v) for v in (parent if isinstance(parent, list) else [parent])} & {
                str(o) for o in q.precondition_options or []
            }:
                continue
        ids = [o.id for o in q.format.options or []]
        given[q.id] = {
            "TEXT": f"answer {q.id}",
            "NUMBER": (q.format.min or 0) + 2,
            "BOOLEAN": True,
            "DATE": "2027-05-02",
            "SINGLE_SELECT": next((i for i in ids if i in opens), ids[0] if ids else None),
            "MULTI_SELECT": ids[:1],
        }[q.format.type]
    return [{"question_id": qid, "answer": value} for qid, value in given.items()]


async def test_answers_from_the_read_model_land_in_laura(
    make_relay: Callable[..., Relay], laura: Emulator, ats_http: httpx.AsyncClient
) -> None:
    relay = make_relay({"city-laura": connection_table("laura", laura.url, timeout_s=3)})
    ids = []
    for n, job_id in enumerate(("101", "201")):
        answers = answers_for(await questions_of(laura, ats_http, job_id))
        body = {
            "connection_id": "city-laura",
            "candidate": {"first_name": "Aino", "last_name": "Virtanen", "email_address": f"aino{n}@example.fi"},
            "application": {"job_id": job_id},
            "screening_question_answers": answers,
        }
        response = await relay.post(body)
        assert response.status_code == 202, response.text
        ids.append(str(response.json()["id"]))
    await relay.start_worker()
    for delivery_id in ids:
        await relay.wait_for(delivery_id, "delivered")
    stored = {a["job_id"]: a["screening_question_answers"] for a in laura.records()["applications"]}
    assert {a["question_id"]: a["value"] for a in stored[101]} == {
        501: True,
        502: [1],
        503: 12,
        504: "answer 504",
        505: 2,
        506: "2027-05-02",
        507: "answer 507",
    }
    assert {a["question_id"]: a["value"] for a in stored[201]} == {501: True, 503: 12, 504: "answer 504", 505: 2}
