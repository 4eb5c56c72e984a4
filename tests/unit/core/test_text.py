"""The text cleaner (app/core/text.py) and the one email key (app/core/model.py normalise_email):
controls, ANSI escapes, bidi overrides and zero-width characters removed, whitespace collapsed,
NFC; look-alike addresses refused. Properties: never raises (but a refusal), idempotent, output
without control or format characters."""

from __future__ import annotations

import unicodedata
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.core import text
from app.core.model import ApplicationIn, ScreeningAnswer, email_validator_key, normalise_email
from app.core.problems import Problem

REMOVED = {"Cc", "Cf", "Cs"}


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("  Ana  ", "Ana"),
        ("A\x00na", "Ana"),
        ("Ana\x1b[31m Red\x1b[0m", "Ana Red"),
        ("\x1b]0;pwned\x07Ana", "Ana"),
        ("\u202eAna\u202c", "Ana"),
        ("Zo\u200be\u0301", "Zoé"),  # the zero-width space goes, then NFC composes
        ("Ana\r\nMaría\u2028López", "Ana María López"),
        ("\ufeffAna\u00a0María", "Ana María"),
        ("\u3000", ""),
    ],
)
def test_clean_line(raw: str, clean: str) -> None:
    assert text.clean_line(raw) == clean


def test_clean_text_keeps_lines_and_at_most_one_blank_one() -> None:
    assert text.clean_text("\n\n  One \t two\x07\r\n\r\n\r\n\r\nthree\u200d  \n") == "One two\n\nthree"


def test_html_to_text_drops_markup_and_scripts() -> None:
    html = "<h1>Ana</h1><p>Ten years of <b>Python</b> &amp; Rust.</p><script>alert(1)</script><style>p{}</style>"
    assert text.html_to_text(html) == "Ana\n\nTen years of Python & Rust."


@pytest.mark.parametrize(
    ("address", "stored"),
    [
        ("ana@example.org", "ana@example.org"),
        (" Ana.Lopez+cv@Example.ORG ", "Ana.Lopez+cv@example.org"),
        ("Zoë@Bücher.de", "Zoë@xn--bcher-kva.de"),
        ("иван@пример.рф", "иван@xn--e1afmkfd.xn--p1ai"),  # one script: fine
        ("たなかタロウ@example.jp", "たなかタロウ@example.jp"),  # Hiragana with Katakana: a normal mix
    ],
)
def test_clean_email_stores_a_validated_idna_form(address: str, stored: str) -> None:
    assert text.clean_email(address) == stored


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("j\u043ehn@example.com", "scripts"),  # Cyrillic о
        ("\u03b1na@example.com", "scripts"),  # Greek α
        ("\uff4a\uff4f\uff48\uff4e@example.com", "fullwidth"),
        ("jo\u200bhn@example.com", "invisible"),
        ("john\u202e@example.com", "invisible"),
        ("jo hn@example.com", "space"),
        ("john@example", "period"),
        ("john@@example.com", "invalid characters"),
    ],
)
def test_clean_email_refuses_look_alikes(address: str, reason: str) -> None:
    with pytest.raises(text.EmailRefused, match=reason):
        text.clean_email(address)


def test_one_key_for_one_address() -> None:
    assert normalise_email(" ANA@Example.org") == normalise_email("ana@example.org") == "ana@example.org"
    assert normalise_email("Zoë@Bücher.DE") == normalise_email("zoe\u0308@xn--bcher-kva.de") == "zoë@xn--bcher-kva.de"
    assert normalise_email(text.clean_email("Zoë@Bücher.DE")) == normalise_email("Zoë@Bücher.DE")


def _application(**candidate: str) -> ApplicationIn:
    base = {"first_name": "Ana", "last_name": "López", "email_address": "ana@example.org"}
    return msgspec.convert(
        {"connection_id": "acme", "candidate": {**base, **candidate}, "application": {"job_id": "1"}}, ApplicationIn
    )


def test_clean_application_refuses_an_empty_name_naming_it() -> None:
    with pytest.raises(Problem) as refused:
        text.clean_application(_application(last_name="\u200b \x00"))
    assert refused.value.status == 422 and refused.value.code == "PLATFORM.INPUT_INVALID"
    assert [e.field for e in refused.value.errors] == ["candidate.last_name"]


GROWS = "\u0958"  # one character that NFC makes two (U+0915 U+093C)


def _grown(field: str, value: str) -> ApplicationIn:
    """`_application` with `value` at `field` (a dotted path of the canonical body)."""
    body: dict[str, Any] = {
        "connection_id": "acme",
        "candidate": {"first_name": "Ana", "last_name": "López", "email_address": "ana@example.org"},
        "application": {"job_id": "1"},
    }
    if field.startswith("screening_question_answers"):
        answer = [value] if field.endswith("answer[0]") else value
        body["screening_question_answers"] = [{"question_id": "q", "answer": answer}]
    else:
        *parents, leaf = field.split(".")
        node = body
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return msgspec.convert(body, ApplicationIn)


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("candidate.first_name", 200),
        ("candidate.last_name", 200),
        ("candidate.company", 200),
        ("candidate.location.city", 200),
        ("candidate.location.zip_code", 20),
        ("source.name", 200),
        ("screening_question_answers[0].answer", 20_000),
        ("screening_question_answers[0].answer[0]", 1_000),
    ],
)
def test_text_that_normalisation_lengthens_past_its_limit_is_refused_naming_the_field(field: str, limit: int) -> None:
    """Accepted by the decoder's length check, over it once NFC: stored so, the record could not
    be read back (the worker's plan failed, the API's reads answered 500)."""
    with pytest.raises(Problem) as refused:
        text.clean_application(_grown(field, GROWS * limit))
    assert refused.value.status == 422 and refused.value.code == "PLATFORM.LIMIT_EXCEEDED"
    assert [e.field for e in refused.value.errors] == [field]
    cleaned = text.clean_application(_grown(field, GROWS * (limit // 2)))  # exactly the limit once normalised
    msgspec.json.decode(msgspec.json.encode(cleaned), type=ApplicationIn)  # and it reads back


# -- properties --------------------------------------------------------------------------------

# every code point (surrogates too, which JSON's \\ud800 escapes can carry), and the pieces
# attackers and careless boards send
PIECES = ["\x1b[", "\x1b]0;", "\x9b", "\u202e", "\u200b", "\ufeff", "\r\n", "e\u0301", "\u0301", "\x00", " ", "\n"]
TEXTS = st.lists(
    st.characters(exclude_categories=()) | st.sampled_from([*PIECES, "\u3000", "\u2028"]), max_size=40
).map("".join)


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_clean_line_never_raises_is_idempotent_and_clean(raw: str) -> None:
    once = text.clean_line(raw)
    assert text.clean_line(once) == once
    assert not any(unicodedata.category(c) in REMOVED for c in once)
    assert once == once.strip() and "  " not in once and "\n" not in once
    assert unicodedata.is_normalized("NFC", once)


@settings(max_examples=200, deadline=None)
@given(TEXTS)
def test_clean_text_never_raises_is_idempotent_and_clean(raw: str) -> None:
    once = text.clean_text(raw)
    assert text.clean_text(once) == once
    assert not any(unicodedata.category(c) in REMOVED and c != "\n" for c in once)
    assert "\n\n\n" not in once and unicodedata.is_normalized("NFC", once)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20) | st.sampled_from(["ana@example.org", "Zoë@Bücher.de"]), st.text(max_size=20))
def test_clean_email_never_raises_but_a_refusal_and_is_idempotent(local: str, domain: str) -> None:
    for address in (local, f"{local}@{domain}", f"{local}@example.org"):
        try:
            stored = text.clean_email(address)
        except text.EmailRefused:
            continue
        assert text.clean_email(stored) == stored
        assert normalise_email(stored) == normalise_email(address)
        assert not any(unicodedata.category(c) in REMOVED for c in stored)


def test_the_removed_ranges_are_unicodes_control_format_and_surrogate_characters() -> None:
    """REMOVED_RANGES is written out for speed; it must be exactly this Python's Cc, Cf and Cs."""
    listed = {cp for low, high in text.REMOVED_RANGES for cp in range(low, high + 1)}
    actual = {cp for cp in range(0x110000) if unicodedata.category(chr(cp)) in text.REMOVED_CATEGORIES}
    assert actual <= listed, sorted(actual - listed)[:10]  # a newer Unicode adds format characters
    assert {unicodedata.category(chr(cp)) for cp in listed - actual} <= {"Cn"}  # reserved now, format later


@settings(max_examples=200, deadline=None)
@given(
    first=TEXTS,
    last=TEXTS,
    answer=TEXTS,
    items=st.lists(TEXTS, max_size=3),
    remote=st.dictionaries(st.text(max_size=5), TEXTS, max_size=3),
)
def test_clean_application_cleans_every_text_or_refuses_the_name_with_a_422(
    first: str, last: str, answer: str, items: list[str], remote: dict[str, str]
) -> None:
    app = msgspec.structs.replace(
        _application(),
        candidate=msgspec.structs.replace(_application().candidate, first_name=first, last_name=last),
        screening_question_answers=[ScreeningAnswer("1", answer), ScreeningAnswer("2", items)],
        remote_fields=remote,
    )
    try:
        cleaned = text.clean_application(app)
    except Problem as exc:
        assert exc.status == 422 and exc.code == "PLATFORM.INPUT_INVALID"
        assert exc.errors[0].field in ("candidate.first_name", "candidate.last_name")
        return
    assert text.clean_application(cleaned) == cleaned  # idempotent
    msgspec.json.decode(msgspec.json.encode(cleaned), type=ApplicationIn)  # within the model's own limits
    answers = cleaned.screening_question_answers
    assert isinstance(answers[0].answer, str) and isinstance(answers[1].answer, list)
    strings = [cleaned.candidate.first_name, cleaned.candidate.last_name, answers[0].answer, *answers[1].answer]
    strings += list(cleaned.remote_fields.values())
    assert cleaned.candidate.first_name and cleaned.candidate.last_name
    assert not any(unicodedata.category(c) in REMOVED and c != "\n" for value in strings for c in value)


_ASCII_ADDRESS_PARTS = st.text(alphabet="aZ09._+-!#'@ \t[]\"", min_size=0, max_size=12)


@settings(max_examples=400)
@given(local=_ASCII_ADDRESS_PARTS, domain=st.sampled_from(["Example.ORG", "sub.Domain.co.uk", "b", "x.org.", "-x.org"]))
def test_the_ascii_fast_path_is_email_validators_key(local: str, domain: str) -> None:
    """An ASCII address skips email-validator: its key must be the one email-validator gives,
    valid or refused address alike."""
    address = f"{local}@{domain}"
    assert normalise_email(address) == email_validator_key(address)


@pytest.mark.parametrize("address", ["Ana@xn--bcher-kva.DE", "a@XN--bcher-jua.de", "Zoë@Bücher.de", "\u00a0ana@x.org"])
def test_idna_unicode_and_space_padded_addresses_get_email_validators_key(address: str) -> None:
    assert normalise_email(address) == email_validator_key(address)
