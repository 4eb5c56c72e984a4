"""Which requests the Factorial connector sends: no lookup that cannot find anything, and every
lookup that a re-run needs to stay free of duplicates."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from app.ats_http import ats_client
from app.models import Candidate, JobRef, Origin, Source, StoredApplication
from connectors.base import ConnectionSpec, StepContext
from connectors.factorial import FactorialConnector
from tests.harness import Emulator


def _application(email: str) -> StoredApplication:
    return StoredApplication(
        connection_id="acme", candidate=Candidate(first_name="Ana", last_name="Ruiz", email_address=email),
        application=JobRef(job_id="2001"), origin=Origin(channel="api", received_at=0.0),
        source=Source(name="Indeed"))


async def _run(factorial: Emulator, app: StoredApplication, checkpoints: dict[str, str]) -> list[tuple[str, str]]:
    sent: list[tuple[str, str]] = []

    async def note(request: httpx.Request) -> None:
        sent.append((request.method, urlsplit(str(request.url)).path.split("/resources/")[-1]))

    async with ats_client() as http:
        http.event_hooks["request"] = [note]
        connector = FactorialConnector(ConnectionSpec("acme", "factorial", factorial.url, "sandbox", {}), http)

        async def no_file(_: object) -> bytes:
            raise AssertionError("no file in this application")

        ctx = StepContext(application=app, checkpoints=checkpoints, load_attachment=no_file)
        for step in connector.plan(app):
            if step.name in checkpoints:
                continue
            checkpoints[step.name] = await step.run(ctx)
    return sent


async def test_a_new_candidate_is_not_searched_for_applications(factorial: Emulator) -> None:
    before = len(factorial.records()["applications"])
    sent = await _run(factorial, _application("new.person@example.org"), {})
    assert ("GET", "ats/candidates") in sent and ("POST", "ats/candidates") in sent
    assert ("GET", "ats/applications") not in sent
    assert sent.count(("POST", "ats/applications")) == 1
    assert len(factorial.records()["applications"]) == before + 1


async def test_a_rerun_after_a_lost_checkpoint_finds_the_application_instead_of_creating_it(
        factorial: Emulator) -> None:
    app = _application("crash.person@example.org")
    first: dict[str, str] = {}
    await _run(factorial, app, first)  # the application exists in Factorial...
    rerun = {name: remote for name, remote in first.items() if name != "application"}  # ...its checkpoint was lost
    sent = await _run(factorial, app, rerun)
    assert ("GET", "ats/applications") in sent
    assert ("POST", "ats/applications") not in sent
    assert rerun["application"] == first["application"]


async def test_an_existing_candidate_is_searched_for_applications(factorial: Emulator) -> None:
    email = "twice@example.org"
    await _run(factorial, _application(email), {})
    sent = await _run(factorial, _application(email), {})
    assert ("POST", "ats/candidates") not in sent
    assert ("GET", "ats/applications") in sent
    assert ("POST", "ats/applications") not in sent

