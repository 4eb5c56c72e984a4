"""Which requests the Factorial connector sends: no lookup that cannot find anything, and every
lookup that a re-run needs to stay free of duplicates."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

import httpx

from app.core.model import AttachmentRef, Candidate, JobRef, Origin, Source, StoredApplication
from app.net.ats_http import ats_client
from connectors.base import ConnectionSpec, StepContext
from connectors.factorial import FactorialConnector, FactorialSettings
from tests.support.builders import PDF_BYTES
from tests.support.emulators import Emulator


def _application(email: str) -> StoredApplication:
    return StoredApplication(
        connection_id="acme",
        candidate=Candidate(first_name="Ana", last_name="Ruiz", email_address=email),
        application=JobRef(job_id="2001"),
        origin=Origin(channel="api", received_at=0.0),
        source=Source(name="Indeed"),
    )


async def _run(
    factorial: Emulator, app: StoredApplication, checkpoints: dict[str, str], cv: bytes | None = None
) -> list[tuple[str, str]]:
    sent: list[tuple[str, str]] = []

    async def note(request: httpx.Request) -> None:
        sent.append((request.method, urlsplit(str(request.url)).path.split("/resources/")[-1]))

    async with ats_client() as http:
        http.event_hooks["request"] = [note]
        connector = FactorialConnector(
            ConnectionSpec("acme", "factorial", factorial.url, "sandbox", FactorialSettings()), http
        )

        async def load_file(_: object) -> bytes:
            if cv is None:
                raise AssertionError("no file in this application")
            return cv

        ctx = StepContext(application=app, checkpoints=checkpoints, load_attachment=load_file)
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
    factorial: Emulator,
) -> None:
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


def _with_cv(email: str) -> tuple[StoredApplication, bytes]:
    cv = PDF_BYTES + email.encode()
    app = _application(email)
    app.attachments = [
        AttachmentRef(
            index=0,
            name="cv.pdf",
            type="CV",
            content_type="application/pdf",
            sha256=hashlib.sha256(cv).hexdigest(),
            size=len(cv),
        )
    ]
    return app, cv


async def test_a_cv_for_an_application_created_in_the_same_run_is_sent_without_lookups(factorial: Emulator) -> None:
    app, cv = _with_cv("cv.fresh@example.org")
    checkpoints: dict[str, str] = {}
    sent = await _run(factorial, app, checkpoints, cv)
    assert ("POST", "ats/messages") in sent
    assert ("GET", f"ats/applications/{checkpoints['application']}") not in sent
    assert ("GET", "ats/messages") not in sent
    marker = app.attachments[0].sha256[:16]  # type: ignore[index]
    messages = [m for m in factorial.records()["messages"] if marker in m["content"]]
    assert len(messages) == 1 and str(messages[0]["sent_by_id"]) == checkpoints["candidate"]


async def test_a_rerun_after_a_lost_cv_checkpoint_finds_the_message_instead_of_sending_it_again(
    factorial: Emulator,
) -> None:
    app, cv = _with_cv("cv.crash@example.org")
    first: dict[str, str] = {}
    await _run(factorial, app, first, cv)  # the CV message exists in Factorial...
    cv_step = next(name for name in first if name.startswith("attachment"))
    rerun = {name: remote for name, remote in first.items() if name != cv_step}  # ...its checkpoint was lost
    sent = await _run(factorial, app, rerun, cv)
    assert ("GET", "ats/messages") in sent and ("POST", "ats/messages") not in sent
    assert rerun[cv_step] == first[cv_step]
