"""Issue 22, points 4 and 5, through the relay: hostile files are refused with a 422 naming the
attachment and a code (nothing stored), file names are made safe, text is clean before it is
stored on every channel, and emails that differ only by homoglyph, fullwidth or zero-width
characters never become a second candidate in the ATS."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest

from tests.support.builders import DOCX_BYTES, PDF_BYTES, application, b64, connection_table, docx_bytes
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.inbound import (
    assert_nothing_stored,
    inbound_connection,
    inbound_env,
    indeed_payload,
    post_indeed,
    stored,
    webhook_headers,
)


@pytest.fixture
def relay(make_relay: Any, factorial: Emulator, monkeypatch: pytest.MonkeyPatch) -> Relay:
    inbound_env(monkeypatch)
    return make_relay(
        {
            "acme": inbound_connection(factorial.url),
            "pdfonly": connection_table("factorial", factorial.url, allowed_attachment_types=["application/pdf"]),
        }
    )


def body(*, attachment: dict[str, Any] | None = None, **candidate: str) -> dict[str, Any]:
    return {
        "connection_id": "acme",
        "candidate": {"first_name": "Ana", "last_name": "López", "email_address": "ana@example.org", **candidate},
        "application": {"job_id": "2001"},
        "attachments": [attachment or {"name": "cv.pdf", "type": "CV", "data": b64(PDF_BYTES)}],
    }


def _declared_huge(archive: bytes) -> bytes:
    out = bytearray(archive)
    at = out.find(b"PK\x01\x02")
    while at != -1:
        struct.pack_into("<I", out, at + 24, 0xFFFF_FFF0)
        at = out.find(b"PK\x01\x02", at + 4)
    return bytes(out)


HOSTILE_FILES = {
    "exe inside a docx": ("cv.docx", docx_bytes(**{"word/media/setup.exe": b"MZ" + b"\x00" * 64}), "FILE.EXECUTABLE"),
    "zip bomb shaped as a docx": ("cv.docx", _declared_huge(DOCX_BYTES), "FILE.ARCHIVE_BOMB"),
    "svg with a script": (
        "cv.svg",
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        "FILE.SCRIPT",
    ),
    "html named txt": ("cv.txt", b"<!doctype html><html><body><iframe src=x></iframe></body></html>", "FILE.SCRIPT"),
    "powershell named txt": ("cv.txt", b"$w = New-Object Net.WebClient\nInvoke-Expression $w\n", "FILE.SCRIPT"),
    "gif, not in the default list": ("cv.gif", b"GIF89a" + b"\x00" * 40, "FILE.TYPE_NOT_ALLOWED"),
}


@pytest.mark.parametrize("case", list(HOSTILE_FILES))
async def test_hostile_files_are_refused_naming_the_attachment(relay: Relay, case: str) -> None:
    name, data, code = HOSTILE_FILES[case]
    response = await relay.post(body(attachment={"name": name, "type": "CV", "data": b64(data)}))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code and [e["field"] for e in problem["errors"]] == ["attachments[0]"]
    await assert_nothing_stored(relay)


async def test_allowed_types_are_per_connection(relay: Relay) -> None:
    docx = {"name": "letter.docx", "type": "COVER_LETTER", "data": b64(DOCX_BYTES)}
    assert (await relay.post(body(attachment=docx))).status_code == 202
    response = await relay.post({**body(attachment=docx), "connection_id": "pdfonly"})
    assert response.status_code == 422 and response.json()["code"] == "FILE.TYPE_NOT_ALLOWED", response.text


async def test_file_names_are_reduced_to_a_safe_base_name(relay: Relay) -> None:
    response = await relay.post(
        body(attachment={"name": "../../etc/passwd\x00.pdf", "type": "CV", "data": b64(PDF_BYTES)})
    )
    assert response.status_code == 202, response.text
    [ref] = (await stored(relay, response.json()["id"])).attachments
    assert (ref.name, ref.content_type) == ("passwd.pdf", "application/pdf")
    response = await relay.post(
        body(attachment={"name": "cv.exe", "type": "CV", "data": b64(PDF_BYTES)}, email_address="b@example.org")
    )
    assert (await stored(relay, response.json()["id"])).attachments[0].name == "cv.exe.pdf"


async def test_names_and_text_are_cleaned_before_they_are_stored(relay: Relay) -> None:
    payload = body(
        first_name="\x00Ana\x1b[31m\u200b", last_name=" \u202eLo\u0301pez  \t García ", phone_number="+34 612 345 678"
    )
    payload["screening_question_answers"] = [
        {"question_id": "3001", "answer": "Line one\x07\r\n\r\n\r\n\u202eline   two\u200d"},
        {"question_id": "3003", "answer": "Yes"},  # required: the job's questions are checked too
        {"question_id": "3004", "answer": ["Py\u200bthon ", "\x1b[1mRust"]},
    ]
    payload["remote_fields"] = {"note": "a\x00b", "nested": [{"x": "\u202ey"}]}
    response = await relay.post(payload)
    assert response.status_code == 202, response.text
    application = await stored(relay, response.json()["id"])
    assert (application.candidate.first_name, application.candidate.last_name) == ("Ana", "López García")
    answers = {a.question_id: a.answer for a in application.screening_question_answers}
    assert answers["3001"] == "Line one\n\nline two"
    # cleaned, "Py\u200bthon " and "\x1b[1mRust" are the options Python and Rust, stored as their ids
    # (uncleaned they match no option and the answer is refused: app/core/answers.py)
    assert set(answers) == {"3001", "3003", "3004"} and len(answers["3004"]) == 2
    assert application.remote_fields == {"note": "ab", "nested": [{"x": "y"}]}


@pytest.mark.parametrize(
    ("field", "value"),
    [("first_name", "   "), ("first_name", "\u202e\u200b"), ("last_name", "\x00\x1b[0m"), ("last_name", "\u3000\t")],
)
async def test_a_name_empty_once_cleaned_is_refused_naming_the_field(relay: Relay, field: str, value: str) -> None:
    response = await relay.post(body(**{field: value}))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "PLATFORM.INPUT_INVALID" and problem["errors"][0]["field"] == f"candidate.{field}"
    await assert_nothing_stored(relay)


async def test_a_name_that_normalisation_lengthens_past_its_limit_is_refused(relay: Relay) -> None:
    """200 characters the decoder takes, 400 once NFC: was a 202, then a dead letter at the
    worker's plan and a 500 on every read of the delivery (a probe of the running service)."""
    response = await relay.post(body(first_name="\u0958" * 200))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "PLATFORM.LIMIT_EXCEEDED" and problem["errors"][0]["field"] == "candidate.first_name"
    await assert_nothing_stored(relay)
    response = await relay.post(body(first_name="\u0958" * 100))  # 200 once normalised: taken, and readable
    assert response.status_code == 202, response.text
    assert (await stored(relay, response.json()["id"])).candidate.first_name == "\u0915\u093c" * 100
    read = await relay.client.get(f"/v1/deliveries/{response.json()['id']}?include=candidate", headers=relay.admin)
    assert read.status_code == 200, read.text


async def test_indeed_names_are_cleaned_and_an_empty_one_names_the_indeed_field(relay: Relay) -> None:
    payload = indeed_payload(id="clean-1")
    payload["applicant"]["fullName"] = "\u202eZoë\x00   Van\u200b der Berg"
    response = await post_indeed(relay, payload)
    assert response.status_code == 202, response.text
    candidate = (await stored(relay, response.json()["id"])).candidate
    assert (candidate.first_name, candidate.last_name) == ("Zoë", "Van der Berg")
    payload = indeed_payload(id="clean-2")
    payload["applicant"]["fullName"] = "\u202e \u200b"
    response = await post_indeed(relay, payload)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "PLATFORM.INPUT_INVALID"
    assert response.json()["errors"][0]["field"].startswith("applicant.")
    payload = indeed_payload(id="clean-3")
    exe_docx = docx_bytes(**{"word/media/setup.exe": b"MZ" + b"\x00" * 64})
    payload["applicant"]["resume"]["file"]["data"] = b64(exe_docx)
    payload["applicant"]["resume"]["file"]["fileName"] = "cv.docx"
    payload["applicant"]["resume"]["file"]["contentType"] = "application/msword"
    response = await post_indeed(relay, payload)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "FILE.EXECUTABLE" and problem["errors"][0]["field"] == "applicant.resume.file"


async def test_webhook_text_is_cleaned_and_its_files_checked(relay: Relay) -> None:
    document = body(first_name="\u202eŁukasz\x1b[0m", last_name="Żółć\u200b")
    del document["connection_id"]  # the route names the connection
    raw = json.dumps(document, ensure_ascii=False).encode()
    response = await relay.client.post("/inbound/webhooks/acme", content=raw, headers=webhook_headers(raw, msg_id="m1"))
    assert response.status_code == 202, response.text
    candidate = (await stored(relay, response.json()["id"])).candidate
    assert (candidate.first_name, candidate.last_name) == ("Łukasz", "Żółć")
    document["attachments"] = [{"name": "cv.txt", "type": "CV", "data": b64(b"<svg onload=alert(1)>")}]
    raw = json.dumps(document, ensure_ascii=False).encode()
    response = await relay.client.post("/inbound/webhooks/acme", content=raw, headers=webhook_headers(raw, msg_id="m2"))
    assert response.status_code == 422 and response.json()["code"] == "FILE.SCRIPT", response.text


@pytest.mark.parametrize(
    "email",
    [
        "zo\u0435@example.org",  # Cyrillic е among Latin letters
        "\uff5a\uff4f\uff45@example.org",  # fullwidth
        "zo\u200be@example.org",  # zero-width space
        "zoe\u202e@example.org",  # bidi override
        "zoe\x00@example.org",
    ],
)
async def test_look_alike_emails_are_refused(relay: Relay, email: str) -> None:
    response = await relay.post(body(email_address=email))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "PLATFORM.INPUT_INVALID" and problem["errors"][0]["field"] == "candidate.email_address"
    await assert_nothing_stored(relay)


async def test_an_idn_domain_is_stored_idna_encoded_and_keys_as_one_address(relay: Relay) -> None:
    first = await relay.post(body(email_address="Zoë@Bücher.DE"))
    assert first.status_code == 202, first.text
    assert (await stored(relay, first.json()["id"])).candidate.email_address == "Zoë@xn--bcher-kva.de"
    again = await relay.post(body(email_address="zoë@xn--BCHER-kva.de"))  # the same candidate for the same job
    assert again.status_code in (200, 202) and again.json()["id"] == first.json()["id"], again.text


async def test_look_alike_emails_never_make_a_second_candidate(relay: Relay, factorial: Emulator) -> None:
    await relay.start_worker()
    first = await relay.post(application(), key="plain")
    assert first.status_code == 202, first.text
    await relay.wait_for(first.json()["id"], "delivered")
    email = application()["candidate"]["email_address"]
    local, domain = email.split("@")
    variants = [
        local.replace("o", "\u043e", 1) + "@" + domain,  # Cyrillic о
        "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in local) + "@" + domain,  # fullwidth
        local[:2] + "\u200b" + local[2:] + "@" + domain,  # zero-width
    ]
    for i, variant in enumerate(variants):
        response = await relay.post(
            application(candidate={**application()["candidate"], "email_address": variant}), key=f"v{i}"
        )
        assert response.status_code == 422, (variant, response.text)
    upper = await relay.post(
        application(candidate={**application()["candidate"], "email_address": email.upper()}), key="upper"
    )
    assert upper.status_code == 202, upper.text
    await relay.wait_for(upper.json()["id"], "delivered", "failed")
    assert len(factorial.records()["candidates"]) == 1
