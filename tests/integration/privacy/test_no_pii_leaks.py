"""Candidate data never reaches what the relay records: the logs of a whole delivery (retries
included), nor a dead letter whose ATS error echoed the candidate's values."""

from __future__ import annotations

import io
import json
from typing import Any

from app.log import configure
from tests.support.builders import PDF_BYTES, application, b64, connection_table
from tests.support.emulators import Emulator


async def test_logs_of_a_full_delivery_hold_no_pii(make_relay: Any, factorial: Emulator) -> None:
    stream = io.StringIO()
    configure("DEBUG", stream=stream)
    try:
        relay = make_relay({"acme": connection_table("factorial", factorial.url)})
        await relay.start_worker()
        factorial.faults(script=["error"], methods=["POST"])  # a retry too, so error paths log as well
        body = application()
        delivery_id = (await relay.post(body)).json()["id"]
        await relay.wait_for(delivery_id, "retry_scheduled")
        await relay.fast_forward(60)
        await relay.wait_for(delivery_id, "delivered")
    finally:
        configure("WARNING")
    logs = stream.getvalue()
    events = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    steps = [e for e in events if e.get("event") == "delivery.step"]
    assert steps and all(
        {"delivery_id", "connection", "connector", "step", "attempt", "status", "latency_ms"} <= e.keys() for e in steps
    )
    assert any(e.get("event") == "delivery.retry_scheduled" for e in events)
    candidate = body["candidate"]
    for secret in (
        candidate["first_name"],
        candidate["last_name"],
        candidate["email_address"],
        candidate["phone_number"],
        "Zoë",
        "zoe.vdb",
        "612 345",
        b64(PDF_BYTES)[:40],
        "Because relays should never lose a CV.",
    ):
        assert secret not in logs, secret


async def test_an_ats_echoing_candidate_data_never_reaches_the_dead_letter(
    make_relay: Any, factorial: Emulator
) -> None:
    """The engine scrubs recorded errors with the application's own values, whatever the connector."""
    from connectors.base import PermanentError
    from connectors.factorial import FactorialConnector as Base

    class Echoing(Base):
        async def _candidate(self, ctx: Any) -> str:
            c = ctx.application.candidate
            raise PermanentError(
                f"candidate {c.first_name} {c.last_name} <{c.email_address}> {c.phone_number} already exists",
                status=422,
            )

    relay = make_relay({"acme": connection_table("factorial", factorial.url)})
    await relay.start_worker()
    runtime = relay.worker_runtimes[-1]
    connection = runtime.config.connections["acme"]
    runtime.connectors._connectors["acme"] = (connection, Echoing(connection.spec(), runtime.http))
    delivery_id = (await relay.post(application())).json()["id"]
    record = await relay.wait_for(delivery_id, "failed")
    text = json.dumps(record)
    for secret in ("Zoë", "Van der Berg", "zoe.vdb", "612 345 678"):
        assert secret not in text, secret
    assert "already exists" in record["last_error"]["message"]
