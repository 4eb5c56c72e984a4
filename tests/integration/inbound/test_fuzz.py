"""Property-based: 210 generated bad inputs against the three inbound routes (70 each). Every one
gets a 4xx (never a 5xx), nothing is stored or enqueued, and the server keeps answering."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.delivery import queue
from app.intake.boards import indeed
from tests.support.builders import PDF_BYTES
from tests.support.emulators import Emulator
from tests.support.harness import Relay
from tests.support.inbound import (
    FORM_TOKEN,
    INDEED_SECRET,
    inbound_connection,
    inbound_env,
    indeed_payload,
    webhook_headers,
)

FUZZ = settings(
    max_examples=70,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ASCII = st.characters(min_codepoint=33, max_codepoint=126)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=25,
)
not_an_email = st.text(max_size=40).filter(lambda s: "@" not in s)
not_text = (
    st.none()
    | st.booleans()
    | st.lists(st.integers(), max_size=3)
    | st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)
)


class Fuzz:
    """Sync access to the relay (hypothesis drives plain functions): HTTP, and the queue's size."""

    def __init__(self, relay: Relay) -> None:
        self.http = httpx.Client(base_url=relay.server.url, timeout=30)
        self.redis = redis.Redis.from_url(relay.redis_url)

    def check(self, response: httpx.Response, what: Any) -> None:
        assert 400 <= response.status_code < 500, (response.status_code, response.text[:300], what)
        assert response.headers["content-type"].startswith("application/problem+json"), what
        assert self.redis.zcard(queue.QUEUE_NAME) == 0, what
        assert not self.redis.keys("ar:d:*"), what

    def close(self) -> None:
        assert self.http.get("/health").status_code == 200  # still answering
        self.http.close()
        self.redis.close()


@pytest.fixture
def fuzz(make_relay: Any, factorial: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Fuzz]:
    inbound_env(monkeypatch)
    relay = make_relay({"acme": inbound_connection(factorial.url, form_rate_limit=0, max_file_bytes=100_000)})
    client = Fuzz(relay)
    yield client
    client.close()


# -- Indeed -----------------------------------------------------------------------------------------


def _set(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(document)
    *parents, last = path.split(".")
    target = document
    for key in parents:
        target = target[key]
    target[last] = value
    return document


indeed_mutations = st.one_of(
    st.tuples(st.just("id"), not_text | st.just("") | st.text(min_size=201, max_size=300)),
    st.tuples(st.just("applicant.email"), not_an_email),
    st.tuples(st.just("applicant"), st.none() | st.text() | st.integers() | st.lists(st.integers())),
    st.tuples(st.just("job.jobId"), st.just("") | st.none() | st.booleans() | st.lists(st.text(max_size=3))),
    st.tuples(st.just("applicant.resume.file.data"), st.text(min_size=1, max_size=200)),
    st.tuples(
        st.just("questionsAndAnswers"),
        st.text(min_size=1) | st.integers() | st.lists(st.integers() | st.text(), min_size=1, max_size=3),
    ),
)

indeed_inputs = st.one_of(
    st.tuples(st.just("unsigned"), st.binary(max_size=300), st.none() | st.text(ASCII, max_size=40)),
    st.tuples(st.just("signed random json"), json_values.map(lambda v: json.dumps(v).encode()), st.just(None)),
    st.tuples(st.just("signed random bytes"), st.binary(max_size=300), st.just(None)),
    st.tuples(
        st.just("signed mutation"),
        indeed_mutations.map(lambda m: json.dumps(_set(indeed_payload(), m[0], m[1])).encode()),
        st.just(None),
    ),
)


@FUZZ
@given(case=indeed_inputs)
def test_bad_indeed_posts_get_a_4xx(fuzz: Fuzz, case: tuple[str, bytes, str | None]) -> None:
    kind, body, signature = case
    headers = {"content-type": "application/json"}
    if kind != "unsigned":
        headers["x-indeed-signature"] = indeed.sign(body, INDEED_SECRET)
    elif signature is not None:
        headers["x-indeed-signature"] = signature
    fuzz.check(fuzz.http.post("/inbound/indeed/acme", content=body, headers=headers), case)


# -- Standard Webhooks ----------------------------------------------------------------------------------


CANONICAL = {
    "candidate": {"first_name": "Ana", "last_name": "López", "email_address": "ana@example.org"},
    "application": {"job_id": "2001"},
    "attachments": [{"name": "cv.pdf", "type": "CV", "data": base64.b64encode(PDF_BYTES).decode()}],
}
webhook_mutations = st.one_of(
    st.tuples(st.just("candidate.email_address"), not_an_email | not_text),
    st.tuples(st.just("candidate.first_name"), st.just("") | not_text),
    st.tuples(st.just("application"), st.text() | st.integers() | st.just({})),
    st.tuples(st.just("attachments"), st.lists(json_values, min_size=1, max_size=2)),
    st.tuples(st.just("connection_id"), st.text(max_size=10).filter(lambda s: s != "acme") | not_text),
)
webhook_inputs = st.one_of(
    st.tuples(
        st.just("bad headers"),
        st.binary(max_size=300),
        st.dictionaries(
            st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"]), st.text(ASCII, max_size=60)
        ),
    ),
    st.tuples(st.just("signed random json"), json_values.map(lambda v: json.dumps(v).encode()), st.just({})),
    st.tuples(
        st.just("signed mutation"),
        webhook_mutations.map(lambda m: json.dumps(_set(CANONICAL, m[0], m[1])).encode()),
        st.just({}),
    ),
)


@FUZZ
@given(case=webhook_inputs, message=st.integers(min_value=0, max_value=10**9))
def test_bad_webhooks_get_a_4xx(fuzz: Fuzz, case: tuple[str, bytes, dict[str, str]], message: int) -> None:
    kind, body, headers = case
    if kind != "bad headers":
        try:
            body.decode()
        except UnicodeDecodeError:
            return
        headers = webhook_headers(body, msg_id=f"msg_{message}")
    headers = {**headers, "content-type": "application/json"}
    fuzz.check(fuzz.http.post("/inbound/webhooks/acme", content=body, headers=headers), case)


# -- career forms ---------------------------------------------------------------------------------------


field_names = st.text(min_size=1, max_size=20).filter(lambda s: s not in ("email", "website"))
form_inputs = st.one_of(
    st.tuples(
        st.just("random body"),
        st.binary(max_size=400),
        st.sampled_from(
            [
                "multipart/form-data; boundary=XyZ",
                "multipart/form-data",
                "application/json",
                "text/plain",
                "multipart/form-data; boundary=" + "b" * 300,
            ]
        ),
    ),
    st.tuples(st.just("no email"), st.dictionaries(field_names, st.text(max_size=30), max_size=6), st.none()),
    st.tuples(
        st.just("bad email"),
        st.fixed_dictionaries(
            {
                "first_name": st.text(min_size=1, max_size=10),
                "last_name": st.text(min_size=1, max_size=10),
                "email": not_an_email,
            }
        ),
        st.none(),
    ),
    st.tuples(
        st.just("bad file"),
        st.binary(max_size=300).filter(lambda b: not b.startswith(b"%PDF-")),
        st.sampled_from(["resume", "cover_letter", "question_3005", "mystery"]),
    ),
    # a file part's RFC 8187 name that cannot be read: bytes that are not UTF-8, or a charset the
    # relay does not read (a name like that was a 500)
    st.tuples(
        st.just("bad filename*"),
        st.one_of(
            st.binary(min_size=1, max_size=40).filter(lambda b: not _is_utf8(b)).map(lambda b: ("UTF-8", b)),
            st.tuples(
                st.text(ASCII, max_size=12).filter(lambda c: c.lower() not in ("utf-8", "iso-8859-1") and "'" not in c),
                st.binary(max_size=20),
            ),
        ),
        st.sampled_from(["resume", "cover_letter", "attachments[]", "question_3005"]),
    ),
)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@FUZZ
@given(case=form_inputs)
def test_bad_form_posts_get_a_4xx(fuzz: Fuzz, case: tuple[str, Any, Any]) -> None:
    kind, payload, extra = case
    url = "/inbound/forms/acme/2001"
    headers = {"x-form-token": FORM_TOKEN, "accept": "application/json"}
    if kind == "random body":
        response = fuzz.http.post(url, content=payload, headers={**headers, "content-type": extra})
    elif kind == "bad filename*":
        charset, name = payload
        disposition = f"form-data; name=\"{extra}\"; filename*={charset}''{quote(name, safe='')}"
        form = (
            b'--XyZ\r\nContent-Disposition: form-data; name="email"\r\n\r\nana@example.org\r\n'
            + f"--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
            + PDF_BYTES
            + b"\r\n--XyZ--\r\n"
        )
        response = fuzz.http.post(
            url, content=form, headers={**headers, "content-type": "multipart/form-data; boundary=XyZ"}
        )
        assert response.status_code == 400, (response.text, case)
        assert [e["field"] for e in response.json()["errors"]] == [extra], (response.text, case)
    elif kind == "bad file":
        data = {"first_name": "Ana", "last_name": "López", "email": "ana@example.org"}
        response = fuzz.http.post(
            url, data=data, files=[(extra, ("cv.pdf", payload, "application/pdf"))], headers=headers
        )
    else:
        response = fuzz.http.post(
            url, data=payload, files=[("resume", ("cv.pdf", PDF_BYTES, "application/pdf"))], headers=headers
        )
    fuzz.check(response, case)
