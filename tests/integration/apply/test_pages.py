"""The hosted apply page without a browser (docs/apply-pages.md): the form rendered from the job's
questions, parsed and posted as a browser would (tests/support/apply.py), delivered into the ATS
emulator with every answer typed; refusals re-render the form; the page's token, languages, CSP,
consent and success URL; conditional questions without JavaScript."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from app.intake.boards import apply_form
from tests.support.apply import BROWSER, CASES, PERSON, Case, apply_connection, held, open_form, parse, submit
from tests.support.builders import PDF_BYTES
from tests.support.emulators import Emulator, EmulatorFactory
from tests.support.harness import Relay
from tests.support.inbound import EXE, FORM_TOKEN, answers_of, assert_nothing_stored, inbound_env, stored

LAURA = CASES["laura"]


def matches(got: dict[str, Any], want: dict[str, Any]) -> bool:
    """`want`'s answers exactly (type too: 7 is not "7"), a file answer by the keys it names."""
    if set(got) != set(want):
        return False
    for qid, value in want.items():
        if isinstance(value, dict):
            if not all(got[qid].get(k) == v for k, v in value.items()):
                return False
        elif got[qid] != value or type(got[qid]) is not type(value):
            return False
    return True


async def only_delivery(relay: Relay) -> str:
    ids = [k.decode().rsplit(":", 1)[-1] for k in await relay.redis.keys("ar:d:*") if k.count(b":") == 2]
    assert len(ids) == 1, ids
    return ids[0]


@pytest.fixture
def laura_relay(make_relay: Callable[..., Relay], emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch) -> Any:
    inbound_env(monkeypatch)
    served = emulator("laura")

    def make(**apply: Any) -> tuple[Relay, Emulator]:
        return make_relay({"acme": apply_connection(LAURA, served.url, **apply)}), served

    return make


async def test_the_page_renders_every_question_and_delivers_every_answer_typed(
    case: Case, relay_for: Callable[..., Relay], served: Emulator
) -> None:
    relay = relay_for()
    form = await open_form(relay.client, f"/apply/acme/{case.job_id}")
    assert form.action == f"/inbound/forms/acme/{case.job_id}"
    assert set(case.answers) <= {c.name for c in form.controls}
    assert ("resume" in {c.name for c in form.controls}) == (case.name != "laura")  # Laura takes no files
    response = await submit(relay.client, form, {**PERSON, "gdpr_consent": "true", **case.answers}, case.files)
    assert response.status_code == 200, response.text
    assert "Thank you" in response.text
    delivery_id = await only_delivery(relay)
    got = answers_of(await stored(relay, delivery_id))
    assert matches(got, case.typed), got
    await relay.start_worker()
    await relay.wait_for(delivery_id, "delivered")
    assert held(case.name, served.records()) == case.in_ats


async def test_a_wrong_value_re_renders_the_form_with_the_error_beside_its_field(
    case: Case, relay_for: Callable[..., Relay]
) -> None:
    relay = relay_for()
    form = await open_form(relay.client, f"/apply/acme/{case.job_id}")
    name, value, error_field = case.wrong
    values = {**PERSON, "gdpr_consent": "true", **case.answers, name: value}
    response = await submit(relay.client, form, values, case.files)
    assert response.status_code == 422
    again = parse(response.text)
    attrs = again.described(error_field)
    assert attrs.get("aria-invalid") == "true"
    described = attrs["aria-describedby"].split()
    error_id = next(i for i in described if i.startswith("err-"))
    assert f'<p class="error" id="{error_id}">' in response.text
    assert again.named("first_name")[0].value == PERSON["first_name"]  # values kept
    assert again.named("email")[0].value == PERSON["email"]
    if case.files:
        assert "please attach your CV (and any file) again" in response.text
    assert again.hidden()["form_token"].startswith(apply_form.PREFIX)
    await assert_nothing_stored(relay)


async def test_without_javascript_every_question_shows_its_condition_and_unmet_answers_are_dropped(
    laura_relay: Any,
) -> None:
    relay, laura = laura_relay()
    form = await open_form(relay.client, "/apply/acme/201")
    # Every question is in the page; the conditional ones say when they apply, with no `required`
    # attribute (the browser would block the form when they do not apply).
    assert "Answer only if «Onko sinulla ajokortti? / Do you hold a driving licence?» is «Yes»." in form.html
    assert "Answer only if «Toivottu toimipaikka / Preferred location» is «Tampere»." in form.html
    assert "required" not in form.named("question_503")[0].attrs
    assert "required" in form.named("question_501")[0].attrs
    # No licence, yet the candidate also answered the two questions that then do not apply.
    values = {**PERSON, "gdpr_consent": "true", **LAURA.answers, "question_501": "false"}
    response = await submit(relay.client, form, values)
    assert response.status_code == 200, response.text
    delivery_id = await only_delivery(relay)
    assert answers_of(await stored(relay, delivery_id)) == {"501": False, "505": 7}
    await relay.start_worker()
    await relay.wait_for(delivery_id, "delivered")
    assert held("laura", laura.records()) == {"501": False, "505": 7}


async def test_a_required_answer_of_an_asked_conditional_question_is_refused_beside_it(laura_relay: Any) -> None:
    relay, _ = laura_relay()
    form = await open_form(relay.client, "/apply/acme/201")
    values = {**PERSON, "gdpr_consent": "true", "question_501": "true", "question_503": "12", "question_505": "3"}
    response = await submit(relay.client, form, values)
    assert response.status_code == 422
    again = parse(response.text)
    assert again.described("question_504")["aria-invalid"] == "true"
    assert again.named("question_503")[0].value == "12"  # the choice kept
    assert "This field is required." in response.text


async def test_unknown_and_closed_jobs_and_connections_are_a_friendly_404(laura_relay: Any) -> None:
    relay, _ = laura_relay()
    for path in ("/apply/acme/999999", "/apply/acme/203", "/apply/nope/201", "/apply/nope"):
        response = await relay.client.get(path, headers=BROWSER)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("text/html")
        assert "<h1>Job not found</h1>" in response.text and "Traceback" not in response.text


async def test_the_token_is_scoped_to_its_job_and_expires(laura_relay: Any) -> None:
    relay, _ = laura_relay()
    form = await open_form(relay.client, "/apply/acme/201")
    values = {**PERSON, "gdpr_consent": "true", "question_501": "false"}
    other = await relay.client.post(
        "/inbound/forms/acme/102", data={**form.hidden(), **values}, files={"x": ("", b"")}, headers=BROWSER
    )
    assert other.status_code == 401
    expired = apply_form.sign(FORM_TOKEN, "acme", "201", time.time() - 7200, 60)
    form.controls = [c for c in form.controls if c.name != "form_token"]
    response = await submit(relay.client, form, {**values, "form_token": expired})
    assert response.status_code == 401
    assert parse(response.text).hidden()["form_token"] != expired  # a fresh token to send again
    await assert_nothing_stored(relay)
    assert FORM_TOKEN not in form.html  # the page never shows the connection's form token


async def test_consent_is_required_and_its_expiry_is_sent(laura_relay: Any) -> None:
    relay, _ = laura_relay(
        consent_days=365, privacy_text="Acme keeps your data a year.", privacy_url="https://acme.example/privacy"
    )
    form = await open_form(relay.client, "/apply/acme/201")
    assert "Acme keeps your data a year." in form.html and 'href="https://acme.example/privacy"' in form.html
    response = await submit(relay.client, form, {**PERSON, "question_501": "false"})
    assert response.status_code == 422
    assert parse(response.text).described("gdpr_consent")["aria-invalid"] == "true"
    response = await submit(relay.client, form, {**PERSON, "question_501": "false", "gdpr_consent": "true"})
    assert response.status_code == 200
    consent = (await stored(relay, await only_delivery(relay))).gdpr_consent
    assert consent is not None and consent.given is True
    assert str(consent.expires_at)[:4] == str(time.gmtime().tm_year + 1)


async def test_languages_by_query_then_accept_language(laura_relay: Any) -> None:
    relay, _ = laura_relay()
    expected = {"en": "First name", "fr": "Prénom", "nl": "Voornaam", "fi": "Etunimi", "es": "Nombre", "de": "Vorname"}
    for lang, label in expected.items():
        page = await relay.client.get(f"/apply/acme/201?lang={lang}", headers=BROWSER)
        assert f'<html lang="{lang}">' in page.text and f"{label} " in page.text
    page = await relay.client.get("/apply/acme/201", headers={**BROWSER, "accept-language": "xx, de;q=0.8, fr;q=0.5"})
    assert '<html lang="de">' in page.text
    form = parse(page.text)
    response = await submit(relay.client, form, {**PERSON, "question_501": "false", "gdpr_consent": "true"})
    assert "<h1>Vielen Dank</h1>" in response.text  # the thank-you page in the form's language


async def test_csp_frames_stylesheet_and_success_url(laura_relay: Any) -> None:
    relay, _ = laura_relay(
        frame_ancestors=["https://careers.acme.example"],
        css_url="https://cdn.acme.example/apply.css",
        success_url="https://careers.acme.example/thanks",
    )
    page = await relay.client.get("/apply/acme/201", headers=BROWSER)
    csp = page.headers["content-security-policy"]
    assert "frame-ancestors https://careers.acme.example;" in csp
    assert "style-src 'self' https://cdn.acme.example;" in csp and "script-src 'self';" in csp
    assert 'href="https://cdn.acme.example/apply.css"' in page.text
    response = await submit(relay.client, parse(page.text), {**PERSON, "question_501": "false", "gdpr_consent": "true"})
    assert response.status_code == 303 and response.headers["location"] == "https://careers.acme.example/thanks"
    default, _ = laura_relay()
    page = await default.client.get("/apply/acme/201", headers=BROWSER)
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert 'href="/apply-assets/apply.css"' in page.text
    assert (await default.client.get("/apply-assets/apply.js")).status_code == 200


async def test_a_stylesheet_on_an_internationalised_host_goes_into_the_csp_as_its_a_label(laura_relay: Any) -> None:
    """A header is Latin-1: the Unicode host made every page of the connection a 500."""
    relay, _ = laura_relay(css_url="https://cdn.bücher.example/apply.css")
    page = await relay.client.get("/apply/acme/201", headers=BROWSER)
    assert page.status_code == 200, page.text
    assert "style-src 'self' https://cdn.xn--bcher-kva.example;" in page.headers["content-security-policy"]


async def test_a_cv_over_the_limit_is_refused_beside_the_cv_field(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbound_env(monkeypatch)
    case = CASES["factorial"]
    table = {**apply_connection(case, emulator("factorial").url), "max_file_bytes": 2000}
    relay = make_relay({"acme": table})
    form = await open_form(relay.client, "/apply/acme/2001")
    [cv] = form.named("resume")
    assert cv.attrs["data-max-bytes"] == "2000" and ".pdf" in cv.attrs["accept"]
    assert "Maximum size: 2 KB" in form.html
    big = ("big.pdf", PDF_BYTES + b"0" * 3000, "application/pdf")
    response = await submit(relay.client, form, {**PERSON, "gdpr_consent": "true", **case.answers}, {"resume": big})
    assert response.status_code == 413
    again = parse(response.text)
    assert again.described("resume")["aria-invalid"] == "true"
    assert again.named("first_name")[0].value == PERSON["first_name"]  # the fields before the CV are kept
    await assert_nothing_stored(relay)


async def test_the_jobs_list_links_open_public_jobs_page_by_page(laura_relay: Any) -> None:
    relay, _ = laura_relay(page_size=3)
    seen: list[str] = []
    path: str | None = "/apply/acme"
    while path:
        page = await relay.client.get(path, headers=BROWSER)
        assert page.status_code == 200
        seen += [
            line.split('"')[1] for line in page.text.splitlines() if line.strip().startswith('<li><a href="/apply/')
        ]
        nxt = [line for line in page.text.splitlines() if 'rel="next"' in line]
        path = nxt[0].split('href="')[1].split('"')[0].replace("&amp;", "&") if nxt else None
    assert "/apply/acme/201?lang=en" in seen and "/apply/acme/101?lang=en" in seen
    assert not any(s.startswith(("/apply/acme/103?", "/apply/acme/203?")) for s in seen)  # closed
    assert len(seen) == len(set(seen))
    form = await open_form(relay.client, seen[0])
    assert form.action.startswith("/inbound/forms/acme/")


async def test_a_connection_serves_no_pages_unless_it_opts_in(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbound_env(monkeypatch)
    table = apply_connection(LAURA, emulator("laura").url, enabled=False)
    relay = make_relay({"acme": table})
    for path in ("/apply/acme/201", "/apply/acme"):
        response = await relay.client.get(path, headers=BROWSER)
        assert response.status_code == 404 and "<h1>Job not found</h1>" in response.text


async def test_files_are_checked_on_the_server_beside_their_fields(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbound_env(monkeypatch)
    case = CASES["otys"]
    relay = make_relay({"acme": apply_connection(case, emulator("otys").url)})
    form = await open_form(relay.client, f"/apply/acme/{case.job_id}")
    assert "application/pdf" in form.named("question_113")[0].attrs["accept"]
    png = ("scan.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "image/png")  # not a type question 113 takes
    values = {**PERSON, "gdpr_consent": "true", **case.answers}
    response = await submit(relay.client, form, values, {**case.files, "question_113": png})
    assert response.status_code == 422
    assert parse(response.text).described("question_113")["aria-invalid"] == "true"
    assert "This file type is not accepted." in response.text
    exe = ("cv.pdf", EXE, "application/pdf")  # an executable calling itself a PDF
    response = await submit(relay.client, form, values, {**case.files, "resume": exe})
    assert response.status_code == 422
    assert parse(response.text).described("resume")["aria-invalid"] == "true"
    await assert_nothing_stored(relay)


async def test_an_ats_that_cannot_be_read_is_a_friendly_503_page(laura_relay: Any) -> None:
    relay, laura = laura_relay()
    laura.faults(error_rate=1.0, error_status=503)
    response = await relay.client.get("/apply/acme/201", headers=BROWSER)
    assert response.status_code == 503
    assert "<h1>Temporarily unavailable</h1>" in response.text and "Traceback" not in response.text
    laura.faults()
    assert (await relay.client.get("/apply/acme/201", headers=BROWSER)).status_code == 200
