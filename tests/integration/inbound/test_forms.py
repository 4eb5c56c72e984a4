"""Career-site forms: multipart conventions, per-form token, honeypot, per-IP rate limit, browser
redirect vs API JSON, streaming memory, and a real headless Chromium posting a PDF."""

from __future__ import annotations

import gc
import hashlib
import os
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar, MediaType, get

from app.blobs.store import file_blob_name
from app.intake.boards import forms
from connectors.factorial import option_id
from connectors.sandbox.common import BackgroundServer
from tests.support.builders import PDF_BYTES
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.inbound import (
    EXE,
    FORM_TOKEN,
    answers_of,
    assert_nothing_stored,
    inbound_connection,
    inbound_env,
    stored,
)

BROWSER_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM = "/usr/bin/chromium"


def career_site_page(action: str) -> str:
    """What an employer's career page holds: a plain HTML form posting to the relay."""
    return f"""<!doctype html><html lang="en"><meta charset="utf-8"><title>Apply</title>
<style>.hp {{ position: absolute; left: -10000px; }}</style>
<form method="post" action="{action}" enctype="multipart/form-data">
  <input type="hidden" name="form_token" value="{FORM_TOKEN}">
  <label>First name <input name="first_name" required></label>
  <label>Last name <input name="last_name" required></label>
  <label>Email <input type="email" name="email" required></label>
  <label>Phone <input type="tel" name="phone"></label>
  <label>CV <input type="file" name="resume" accept=".pdf,.doc,.docx"></label>
  <label>Why us? <textarea name="question_3001"></textarea></label>
  <label>EU work permit? <select name="question_3003"><option>Yes</option><option>No</option></select></label>
  <fieldset>Languages
    <label><input type="checkbox" name="question_3004[]" value="Python"> Python</label>
    <label><input type="checkbox" name="question_3004[]" value="Go"> Go</label>
    <label><input type="checkbox" name="question_3004[]" value="Rust"> Rust</label>
  </fieldset>
  <label><input type="checkbox" name="gdpr_consent" value="yes"> I agree</label>
  <div class="hp"><label>Website <input name="website" tabindex="-1" autocomplete="off"></label></div>
  <button type="submit">Apply</button>
</form></html>"""


class CareerSite:
    """The employer's site on its own origin: the form page and the thank-you page."""

    def __init__(self) -> None:
        self.action = ""

        @get("/apply", media_type=MediaType.HTML, sync_to_thread=False)
        def apply_page() -> str:
            return career_site_page(self.action)

        @get("/thanks", media_type=MediaType.HTML, sync_to_thread=False)
        def thanks() -> str:
            return "<!doctype html><title>Thanks</title><h1>Thank you for applying</h1>"

        self.server = BackgroundServer(Litestar([apply_page, thanks])).start()
        self.url = self.server.url


@pytest.fixture(scope="module")
def site() -> Iterator[CareerSite]:
    site = CareerSite()
    yield site
    site.server.stop()


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator, site: CareerSite, monkeypatch: pytest.MonkeyPatch) -> Relay:
    inbound_env(monkeypatch)
    relay = make_relay(
        {
            "acme": inbound_connection(factorial.url, form_thank_you_url=f"{site.url}/thanks", form_rate_limit=50),
            "strict": inbound_connection(
                factorial.url,
                form_rate_limit=3,
                form_rate_window_s=600,
                max_file_bytes=50_000,
                max_application_bytes=80_000,
            ),
            "big": inbound_connection(factorial.url, max_file_bytes=25_000_000, max_application_bytes=30_000_000),
            "nosecret": inbound_connection(factorial.url, form_token_env="TEST_UNSET_FORM_TOKEN"),
        }
    )
    site.action = f"{relay.server.url}/inbound/forms/acme/2001"
    return relay


def fields(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "first_name": "Zoë",
        "last_name": "Van der Berg-Ñúñez",
        "email": "zoe@example.org",
        "phone": "+34 612 345 678",
        "question_3001": "Because forms should never lose a CV.",
        "question_3003": "Yes",
        "question_3004[]": ["Python", "Rust"],
        "source": "LinkedIn",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


async def post_form(
    relay: Relay,
    data: dict[str, Any] | None = None,
    files: Any = None,
    *,
    connection: str = "acme",
    job: str = "2001",
    token: str | None = FORM_TOKEN,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    hdrs = {"accept": "application/json", **(headers or {})}
    if token is not None:
        hdrs["x-form-token"] = token
    if files is None:
        files = [("resume", ("Zoë CV — 履歴書.pdf", PDF_BYTES, "application/pdf"))]
    return await relay.client.post(
        f"/inbound/forms/{connection}/{job}", data=fields() if data is None else data, files=files, headers=hdrs
    )


async def test_api_client_gets_202_and_everything_is_mapped(relay: Relay) -> None:
    files = [
        ("resume", ("Zoë CV — 履歴書.pdf", PDF_BYTES, "application/pdf")),
        ("question_3005", ("portfolio.pdf", PDF_BYTES, "application/pdf")),
    ]
    response = await post_form(relay, fields(cover_letter="Dear team — 你好"), files)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "queued" and response.json()["duplicate"] is False
    application = await stored(relay, response.json()["id"])
    assert (application.candidate.first_name, application.candidate.last_name) == ("Zoë", "Van der Berg-Ñúñez")
    assert application.candidate.email_address == "zoe@example.org"
    assert application.application.job_id == "2001" and application.source and application.source.name == "LinkedIn"
    answers = answers_of(application)
    assert answers["3001"] == "Because forms should never lose a CV."
    assert answers["3003"] == option_id("Yes") and answers["3004"] == [option_id("Python"), option_id("Rust")]
    assert answers["3005"]["name"] == "portfolio.pdf"
    by_type = {a.type: a for a in application.attachments}
    assert by_type["CV"].name == "Zoë CV — 履歴書.pdf" and by_type["CV"].sha256 == hashlib.sha256(PDF_BYTES).hexdigest()
    assert by_type["COVER_LETTER"].name == "cover_letter.txt"


async def test_token_in_hidden_field_and_header(relay: Relay) -> None:
    response = await post_form(relay, fields(form_token=FORM_TOKEN, email="a@example.org"), token=None)
    assert response.status_code == 202, response.text
    response = await post_form(relay, fields(email="b@example.org"), token="old-token")  # an older token, still listed
    assert response.status_code == 202, response.text
    for token, extra in ((None, {}), ("wrong", {}), (None, {"form_token": "wrong"}), ("", {})):
        response = await post_form(relay, fields(email="c@example.org", **extra), token=token)
        assert response.status_code == 401, (token, extra, response.text)
    assert await relay.queued_jobs() == 2


async def test_route_without_a_configured_token_is_a_404(relay: Relay) -> None:
    assert (await post_form(relay, connection="nosecret")).status_code == 404
    assert (await post_form(relay, connection="nosecret", token=None)).status_code == 404
    await assert_nothing_stored(relay)


async def test_honeypot_pretends_success_and_stores_nothing(relay: Relay) -> None:
    response = await post_form(relay, fields(website="http://spam.example"))
    assert response.status_code == 202 and response.json() == {"status": "received"}
    response = await post_form(relay, fields(website="http://spam.example"), headers={"accept": "text/html"})
    assert response.status_code == 303
    await assert_nothing_stored(relay)


async def test_per_ip_rate_limit(relay: Relay) -> None:
    statuses = [
        (await post_form(relay, fields(email=f"r{i}@example.org"), connection="strict")).status_code for i in range(5)
    ]
    assert statuses == [202, 202, 202, 429, 429]
    response = await post_form(relay, fields(email="r9@example.org"), connection="strict")
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0
    assert await relay.queued_jobs() == 3
    assert (await post_form(relay, fields(email="other@example.org"))).status_code == 202  # another form's limit


async def test_browser_gets_a_303_and_errors_as_html(relay: Relay, site: CareerSite) -> None:
    browser = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    response = await post_form(relay, headers=browser)
    assert response.status_code == 303 and response.headers["location"] == f"{site.url}/thanks"
    again = await post_form(relay, headers=browser)  # a double submit: same application, same redirect
    assert again.status_code == 303 and await relay.queued_jobs() == 1
    response = await post_form(relay, fields(email="not-an-email"), headers=browser)
    assert response.status_code == 422 and response.headers["content-type"].startswith("text/html")
    assert "<code>email</code>" in response.text and "not-an-email" not in response.text


@pytest.mark.parametrize(
    ("data", "files", "status", "field"),
    [
        (fields(email=None), None, 422, "email"),
        (fields(first_name=None, last_name=None), None, 422, "first_name"),
        (fields(email="zoe@"), None, 422, "email"),
        (fields(phone="call me"), None, 422, "phone"),
        (fields(), [("resume", ("cv.pdf", EXE, "application/pdf"))], 422, "resume"),
        (fields(), [("resume", ("cv.pdf", b"", "application/pdf"))], 422, "resume"),
        (fields(), [("resume", ("cv.pdf", PDF_BYTES * 40, "application/pdf"))], 413, "resume"),
        (
            fields(),
            [
                ("resume", ("a.pdf", PDF_BYTES * 20, "application/pdf")),
                ("attachments[]", ("b.pdf", PDF_BYTES * 20, "application/pdf")),
                ("attachments[]", ("c.pdf", PDF_BYTES * 20, "application/pdf")),
            ],
            413,
            "attachments[]",
        ),
        (fields(), [("photo", ("me.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png"))], 422, "photo"),
        (fields(question_3001="x" * 100_001), None, 413, "question_3001"),
        # text where the file belongs: was dropped
        (fields(resume="my cv"), [("attachments[]", ("b.pdf", PDF_BYTES, "application/pdf"))], 422, "resume"),
    ],
    ids=[
        "no email",
        "no name",
        "bad email",
        "bad phone",
        "executable as pdf",
        "empty file",
        "file too large",
        "application too large",
        "unknown file field",
        "field too long",
        "resume as text",
    ],
)
async def test_bad_form_is_refused_with_the_field(relay: Relay, data: Any, files: Any, status: int, field: str) -> None:
    response = await post_form(relay, data, files, connection="strict")
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert any(e["field"] == field for e in response.json()["errors"]), response.json()
    await assert_nothing_stored(relay)


async def test_unknown_or_closed_job_and_malformed_bodies(relay: Relay) -> None:
    assert (await post_form(relay, job="9999")).status_code == 404
    assert (await post_form(relay, job="2003")).status_code == 410
    url = "/inbound/forms/acme/2001"
    headers = {"x-form-token": FORM_TOKEN, "accept": "application/json"}
    response = await relay.client.post(
        url, content=b"first_name=a", headers={**headers, "content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 415
    truncated = b'--XyZ\r\nContent-Disposition: form-data; name="first_name"\r\n\r\nAna\r\n--XyZ\r\nContent-Dispo'
    response = await relay.client.post(
        url, content=truncated, headers={**headers, "content-type": "multipart/form-data; boundary=XyZ"}
    )
    assert response.status_code == 400
    no_boundary = {**headers, "content-type": "multipart/form-data"}
    response = await relay.client.post(url, content=b"--a\r\n", headers=no_boundary)
    assert response.status_code == 400
    await assert_nothing_stored(relay)


def _raw_form(disposition: bytes) -> bytes:
    """A form whose CV part carries this Content-Disposition as sent (httpx would encode it)."""

    def field(name: str, value: str) -> bytes:
        return f'--XyZ\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()

    return (
        field("first_name", "Ana")
        + field("last_name", "López")
        + field("email", "ana@example.org")
        + b"--XyZ\r\nContent-Disposition: "
        + disposition
        + b"\r\nContent-Type: application/pdf\r\n\r\n"
        + PDF_BYTES
        + b"\r\n--XyZ--\r\n"
    )


async def _post_raw_form(relay: Relay, disposition: bytes) -> httpx.Response:
    """The form of `_raw_form`, its CV part under `disposition`, posted as a client asking for JSON."""
    return await relay.client.post(
        "/inbound/forms/acme/2001",
        content=_raw_form(disposition),
        headers={
            "x-form-token": FORM_TOKEN,
            "accept": "application/json",
            "content-type": "multipart/form-data; boundary=XyZ",
        },
    )


@pytest.mark.parametrize(
    "filename_star",
    [
        b"UTF-8''%ff%fe%00.pdf",  # not UTF-8 once decoded: was a 500 (UnicodeDecodeError)
        b"x-bogus''cv.pdf",  # a charset nobody can read it in
        b"''cv.pdf",  # no charset at all
        b"cv.pdf",  # not an RFC 8187 ext-value: the file was taken for a text field
    ],
    ids=["not utf-8", "unknown charset", "no charset", "not an ext-value"],
)
async def test_an_unreadable_filename_star_is_a_400_naming_the_part(relay: Relay, filename_star: bytes) -> None:
    response = await _post_raw_form(relay, b'form-data; name="resume"; filename*=' + filename_star)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["title"] == "Malformed form" and problem["code"] == "PLATFORM.INPUT_INVALID"
    assert [e["field"] for e in problem["errors"]] == ["resume"], problem
    await assert_nothing_stored(relay)


@pytest.mark.parametrize(
    ("filename_star", "name"),
    [
        (b"UTF-8''%C3%A9t%C3%A9.pdf", "été.pdf"),
        (b"utf-8'fr'%C3%A9t%C3%A9.pdf", "été.pdf"),  # a language tag, which RFC 8187 allows
        (b"ISO-8859-1''%E9t%E9.pdf", "été.pdf"),  # the other charset a recipient must read
        (b"UTF-8''%00cv.pdf", "cv.pdf"),  # a NUL is dropped from the name (app/core/files.py safe_name)
    ],
)
async def test_a_readable_filename_star_names_the_file(relay: Relay, filename_star: bytes, name: str) -> None:
    response = await _post_raw_form(
        relay, b'form-data; name="resume"; filename="fallback.pdf"; filename*=' + filename_star
    )
    assert response.status_code == 202, response.text
    [cv] = (await stored(relay, response.json()["id"])).attachments
    assert (cv.type, cv.name) == ("CV", name)


async def test_an_unreadable_filename_star_falls_back_to_the_plain_filename(relay: Relay) -> None:
    """RFC 6266 4.3 and appendix D: a sender adds `filename` for a recipient that cannot read
    `filename*`; the CV keeps its file and that name, where it was a 400 before."""
    response = await _post_raw_form(
        relay, b'form-data; name="resume"; filename="cv-ana.pdf"; filename*=x-bogus\'\'cv.pdf'
    )
    assert response.status_code == 202, response.text
    [cv] = (await stored(relay, response.json()["id"])).attachments
    assert (cv.type, cv.name) == ("CV", "cv-ana.pdf")


async def _streamed_form(boundary: str, cv_size: int) -> AsyncIterator[bytes]:
    """A multipart body produced chunk by chunk, so the client holds no copy of the CV."""
    for chunk in _sync_form(boundary, cv_size):
        yield chunk


def _sync_form(boundary: str, cv_size: int) -> Iterator[bytes]:
    def field(name: str, value: str) -> bytes:
        return f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()

    yield field("first_name", "Zoë") + field("last_name", "Big") + field("email", "big@example.org")
    yield (
        f'--{boundary}\r\nContent-Disposition: form-data; name="resume"; filename="big.pdf"\r\n'
        f"Content-Type: application/pdf\r\n\r\n"
    ).encode()
    chunk = (PDF_BYTES * 200)[: 256 * 1024]
    yield b"%PDF-1.4\n"
    sent = 9
    while sent < cv_size:
        piece = chunk[: min(len(chunk), cv_size - sent)]
        sent += len(piece)
        yield piece
    yield f"\r\n--{boundary}--\r\n".encode()


def _peak(run: Any) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_the_parser_holds_a_20_mb_cv_once(relay: Relay) -> None:
    """The streaming parser alone: the file is collected once as it arrives (no spooling copy)."""
    size = 20_000_000
    connection = relay.settings.config.connections["big"]

    def run() -> None:
        stream = forms.MultipartStream("multipart/form-data; boundary=BoUnDaRy", connection)
        for chunk in _sync_form("BoUnDaRy", size):
            stream.feed(chunk)
        [cv] = stream.finish().files["resume"]
        assert len(cv.data) == size

    used = _peak(run)
    print(f"\n20 MB CV, parser alone: peak {used / 1e6:.1f} MB ({used / size:.2f}x the file)")
    assert used < 1.2 * size


async def test_a_post_of_too_many_files_is_refused_while_parsing(relay: Relay) -> None:
    """Each file part is a blob written as it arrives: hundreds of tiny ones are refused (413) as
    the parser meets the 41st, and the 40 already written are deleted."""
    files = [("attachments[]", (f"f{i}.pdf", PDF_BYTES, "application/pdf")) for i in range(forms.MAX_FILE_PARTS + 1)]
    response = await post_form(relay, files=files)
    assert response.status_code == 413, response.text
    assert response.headers["content-type"].startswith("application/problem+json") and response.json()["code"]
    assert f"more than {forms.MAX_FILE_PARTS} files" in response.json()["detail"]
    await assert_nothing_stored(relay)
    assert await relay.blobs_held() == [] and await relay.redis.zcard("ar:blobs:pending") == 0


def _cv_sha256(cv_size: int) -> str:
    """The sha256 of the CV `_sync_form` sends."""
    digest = hashlib.sha256()
    parts = list(_sync_form("B", cv_size))
    for piece in parts[2:-1]:
        digest.update(piece)
    return digest.hexdigest()


async def test_a_20_mb_cv_goes_to_the_blob_store_as_it_arrives(relay: Relay) -> None:
    """The whole request, posted, parsed, checked and stored: peak Python memory (tracemalloc; the
    server runs in this process). The file part is sealed and written to the blob store piece by
    piece as it is parsed (app/delivery/staging.py), never held whole: a PDF's first 64 KB and
    last 4 KB are all the type check reads. Holding it (as the route did) cost 2-3x the file."""
    size = 20_000_000
    headers = {"accept": "application/json", "content-type": "multipart/form-data; boundary=BoUnDaRy"}
    # refused once parsed (no token: the form's field would carry it): its streamed file is deleted
    refused = await relay.client.post(
        "/inbound/forms/big/2001", content=_streamed_form("BoUnDaRy", size), headers=headers
    )
    assert refused.status_code == 401, refused.text
    assert await relay.blobs_held() == [] and await relay.redis.zcard("ar:blobs:pending") == 0

    gc.collect()
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        response = await relay.client.post(
            "/inbound/forms/big/2001",
            content=_streamed_form("BoUnDaRy", size),
            headers={**headers, "x-form-token": FORM_TOKEN},
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 202, response.text
    delivery_id = response.json()["id"]
    [cv] = (await stored(relay, delivery_id)).attachments
    assert cv.size == size and cv.sha256 == _cv_sha256(size) and cv.content_type == "application/pdf"
    used = peak - base
    print(f"\n20 MB CV, whole request: peak {used / 1e6:.1f} MB ({used / size:.2f}x the file)")
    assert used < 0.5 * size, f"{used / size:.2f}x the CV size"
    # sealed under the delivery's own name (moved from its staging name), nothing left pending
    assert await relay.blobs_held() == [file_blob_name(delivery_id, 0)]
    sealed = await relay.blobs.get(file_blob_name(delivery_id, 0))
    assert sealed is not None and sealed[:1] == b"\x01" and len(sealed) == size + 1 + 4 + 12 + 16
    assert await relay.redis.zcard("ar:blobs:pending") == 0
    assert hashlib.sha256(await relay.store.load_file(delivery_id, 0) or b"").hexdigest() == cv.sha256


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (apt-get install -y chromium)")
async def test_a_real_browser_posts_a_pdf_and_it_reaches_factorial(
    relay: Relay, site: CareerSite, factorial: Emulator
) -> None:
    from playwright.async_api import async_playwright

    await relay.start_worker()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = await browser.new_page()
            await page.goto(f"{site.url}/apply")
            await page.fill("input[name=first_name]", "Zoë")
            await page.fill("input[name=last_name]", "Van der Berg-Ñúñez")
            await page.fill("input[name=email]", "zoe.browser@example.org")
            await page.fill("input[name=phone]", "+34 612 345 678")
            await page.fill("textarea[name=question_3001]", "Ich möchte — 因为")
            await page.select_option("select[name=question_3003]", "Yes")
            await page.check("input[name='question_3004[]'][value=Python]")
            await page.check("input[name='question_3004[]'][value=Rust]")
            await page.check("input[name=gdpr_consent]")
            await page.set_input_files(
                "input[name=resume]",
                files=[{"name": "Zoë CV — 履歴書.pdf", "mimeType": "application/pdf", "buffer": PDF_BYTES}],
            )
            async with page.expect_navigation(url=f"{site.url}/thanks"):
                await page.click("button[type=submit]")
            assert "Thank you" in await page.inner_text("h1")
        finally:
            await browser.close()
    [delivery_id] = [i.decode() for i in await relay.redis.zrange("ar:ix:all", 0, -1)]
    await relay.wait_for(delivery_id, "delivered")
    records = factorial.records()
    [candidate] = records["candidates"]
    assert (candidate["first_name"], candidate["last_name"]) == ("Zoë", "Van der Berg-Ñúñez")
    assert candidate["consent_given_at"]
    answers = {a["ats_question_id"]: a["value"] for a in records["answers"]}
    assert answers == {"3001": "Ich möchte — 因为", "3003": "Yes", "3004": "Python, Rust"}
    [cv] = records["files"]
    assert cv["filename"] == "Zoë CV — 履歴書.pdf" and cv["sha256"] == hashlib.sha256(PDF_BYTES).hexdigest()
    assert records["applications"][0]["source_id"] == "4003"  # "Career site"


async def test_names_are_kept_as_nfc_and_a_full_name_field_is_split(relay: Relay) -> None:
    decomposed = "Zoe\u0301 Cv\u0327.pdf"  # NFD, as macOS browsers send it: stored as NFC (issue 22)
    response = await post_form(
        relay,
        fields(first_name=None, last_name=None, name="Ngũgĩ wa Thiong'o"),
        [("resume", (decomposed, PDF_BYTES, "application/pdf"))],
    )
    assert response.status_code == 202, response.text
    application = await stored(relay, response.json()["id"])
    assert (application.candidate.first_name, application.candidate.last_name) == ("Ngũgĩ", "wa Thiong'o")
    assert application.attachments[0].name == "Zo\u00e9 Cv\u0327.pdf"  # é composed; v̧ has no precomposed form


def test_inbound_settings_are_checked_at_start() -> None:
    from app.config import ConfigError, parse_config

    for bad in (
        {"indeed_jobs": "REQ-1"},
        {"indeed_job_field": "jobKey"},
        {"form_rate_limit": "ten"},
        {"inbound_job_check": "no"},
        {"form_thank_you_url": 3},
    ):
        table = {"connector": "factorial", "base_url": "http://127.0.0.1:1", "credentials_env": "K", **bad}
        with pytest.raises(ConfigError, match=f"connections.acme.{next(iter(bad))}"):
            parse_config({"connections": {"acme": table}}, {"K": "k"})
