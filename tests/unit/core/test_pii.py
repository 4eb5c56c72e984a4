"""Keeping candidates' data out of recorded messages (app/core/pii.py): what `scrub` redacts, and
which values of an application `personal_values` hands it."""

from __future__ import annotations

from app.core.model import (
    AttachmentRef,
    Candidate,
    JobRef,
    Location,
    Origin,
    StoredAnswer,
    StoredApplication,
)
from app.core.pii import personal_values, scrub


def test_scrub_redacts_addresses_and_the_given_values_case_insensitively() -> None:
    text = 'Candidate ANA RUIZ <ana.ruiz@example.org> already exists; cc "boss@corp.example"'
    assert scrub(text, ["Ana Ruiz"]) == 'Candidate <redacted> <<email>> already exists; cc "<email>"'
    # an address runs to the next space, quote or angle bracket: punctuation glued to it goes too
    assert scrub("(ana@example.org, ben@example.org)", []) == "<email> <email>"


def test_scrub_replaces_the_longest_value_first_and_ignores_tiny_ones() -> None:
    # "Ana" inside "Ana Ruiz" must not leave "Ruiz" behind; 2-letter values would eat every word
    assert scrub("Ana Ruiz, or just Ana, in a row", ["Ana", "Ana Ruiz", "in", ""]) == (
        "<redacted>, or just <redacted>, in a row"
    )


def test_scrub_numbers_and_length_limit() -> None:
    assert scrub("call +34 600-111 222 now", []) == "call +34 600-111 222 now"
    assert scrub("call +34 600-111 222 now", [], numbers=True) == "call <number> now"
    assert scrub("HTTP 422", [], numbers=True) == "HTTP 422"  # short codes stay readable
    assert scrub("x" * 600, []) == "x" * 500
    assert scrub("x" * 600, [], limit=10) == "x" * 10


def test_values_inside_an_address_do_not_break_its_redaction() -> None:
    assert scrub("mail ruiz@example.org", ["ruiz"]) == "mail <email>"


def test_personal_values_of_an_application() -> None:
    portfolio = AttachmentRef(index=1, name="Ana portfolio.pdf", type="OTHER")
    app = StoredApplication(
        connection_id="acme",
        candidate=Candidate(
            first_name="Ana",
            last_name="Ruiz",
            email_address="ana.ruiz@example.org",
            phone_number="+34 600 111 222",
            company="Acme Robotics",
            location=Location(city="València", zip_code="46001"),
        ),
        application=JobRef(job_id="2001"),
        origin=Origin(channel="api", received_at=0.0),
        screening_question_answers=[
            StoredAnswer("q1", "I love relays"),
            StoredAnswer("q2", ["Python", "Rust"]),
            StoredAnswer("q3", True),
            StoredAnswer("q4", 55000),
            StoredAnswer("q5", portfolio),
        ],
        attachments=[AttachmentRef(index=0, name="Ana Ruiz CV.pdf", type="CV")],
        remote_fields={"custom": {"nickname": "Anita", "tags": ["vip", 3]}},
    )
    values = personal_values(app)
    for expected in (
        "Ana",
        "Ruiz",
        "Ana Ruiz",
        "ana.ruiz@example.org",
        "ana.ruiz",
        "+34 600 111 222",
        "34600111222",
        "Acme Robotics",
        "València",
        "46001",
        "I love relays",
        "Python",
        "Rust",
        "Ana portfolio.pdf",
        "Ana Ruiz CV.pdf",
        "Anita",
        "vip",
    ):
        assert expected in values, expected
    assert "" not in values
    assert "2001" not in values and "acme" not in values  # ids are not personal
    message = scrub("ATS says: Anita from València (34600111222) is a duplicate", values)
    assert message == "ATS says: <redacted> from <redacted> (<redacted>) is a duplicate"


def test_an_action_has_no_personal_values() -> None:
    assert personal_values(None) == ()


def test_an_ats_echoing_the_candidate_in_other_writings_is_scrubbed() -> None:
    """A probe's hostile ATS echoed "Zoe" (for "Zoë"), "Van der Berg" (of "Van der Berg-Ñúñez")
    and the phone as "0612 345 678" and "+34-612-345-678": each reached the stored error."""
    app = StoredApplication(
        connection_id="acme",
        candidate=Candidate(
            first_name="Zoë",
            last_name="Van der Berg-Ñúñez",
            email_address="zoe@example.org",
            phone_number="+34 612 345 678",
        ),
        application=JobRef(job_id="2001"),
        origin=Origin(channel="api", received_at=0.0),
    )
    values = personal_values(app)
    for echoed in ("Zoe", "ZOE", "Van der Berg", "Nunez", "Ñúñez", "0612 345 678", "+34-612-345-678", "612345678"):
        scrubbed = scrub(f"candidate {echoed} already exists (job 2001, since 2026-12-04)", values)
        assert echoed.lower() not in scrubbed.lower(), scrubbed
        assert "job 2001, since 2026-12-04" in scrubbed  # the ATS's own ids and dates stay readable
