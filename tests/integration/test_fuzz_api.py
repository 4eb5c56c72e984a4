"""Property-based (issue 22): mutated canonical applications, actions and operator calls against the
relay over HTTP. Whatever comes in: never a 5xx, never a hang (every request within its timeout,
the whole module within seconds), a refusal is problem+json with a `code` and stores nothing, an
acceptance stores one delivery at most. The inbound routes have theirs (tests/integration/inbound/
test_fuzz.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.model import MAX_ANSWER_CHARS, MAX_ANSWERS
from tests.support.builders import application, connection_table
from tests.support.emulators import Emulator
from tests.support.harness import Relay

FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["", " ", "\x00", "\u202e", "𝔘𝔫𝔦", "2030-13-45", "+", "a@b", "-5", "1e309"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
# What the caps are about: each just over (or at) a limit of app/core/model.py.
big_values = st.sampled_from(
    [
        "x" * (MAX_ANSWER_CHARS + 1),
        ["o"] * 101,
        [{"question_id": f"q{i}", "answer": "a"} for i in range(MAX_ANSWERS + 1)],
        {f"k{i}": i for i in range(101)},
        {"deep": [[[[[[[[[[["x"]]]]]]]]]]]},
    ]
)
KEYS = st.none() | st.sampled_from(["k-1", "k-2", "k-3"])  # reused across examples, with other bodies


def leaf_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from leaf_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from leaf_paths(v, (*prefix, i))


def replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy: Any = dict(doc) if isinstance(doc, dict) else list(doc)
    copy[path[0]] = replaced(doc[path[0]], path[1:], value)
    return copy


@st.composite
def mutated_applications(draw: st.DrawFn) -> Any:
    doc: Any = application()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = list(leaf_paths(doc))
        path = draw(st.sampled_from(paths))
        if draw(st.booleans()) and isinstance(doc, dict):
            path = (*path[:-1], draw(st.text(max_size=10))) if path else path  # a key of its own
        try:
            doc = replaced(doc, path, draw(json_values | big_values))
        except (KeyError, IndexError, TypeError):
            continue
    return doc


class Api:
    def __init__(self, relay: Relay) -> None:
        self.http = httpx.Client(base_url=relay.server.url, timeout=10, headers=relay.admin)
        self.redis = redis.Redis.from_url(relay.redis_url)

    def stored(self) -> tuple[int, int, int]:
        return (len(self.redis.keys("ar:d:*")), len(self.redis.keys("ar:f:*")), int(self.redis.zcard("arq:queue")))

    def call(self, method: str, path: str, what: Any, **kwargs: Any) -> httpx.Response:
        before = self.stored()
        response = self.http.request(method, path, **kwargs)  # a hang fails here, at the timeout
        after = self.stored()
        assert response.status_code < 500, (response.status_code, response.text[:300], what)
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), what
            assert response.json().get("code"), (response.text[:300], what)
            assert after == before, ("a refusal stored something", response.text[:300], what)
        else:
            assert after[0] - before[0] <= 1, what
        return response

    def close(self) -> None:
        assert self.http.get("/health").status_code == 200
        self.http.close()
        self.redis.close()


@pytest.fixture
def api(make_relay: Any, factorial: Emulator) -> Iterator[Api]:
    relay = make_relay({"acme": connection_table("factorial", factorial.url, max_file_bytes=100_000)})
    client = Api(relay)
    yield client
    client.close()


@FUZZ
@given(doc=mutated_applications(), key=KEYS)
def test_mutated_applications_never_5xx_and_refusals_store_nothing(api: Api, doc: Any, key: str | None) -> None:
    headers = {"content-type": "application/json", **({"idempotency-key": key} if key else {})}
    api.call("POST", "/v1/applications", (doc, key), content=json.dumps(doc).encode(), headers=headers)


@FUZZ
@given(
    route=st.sampled_from(["stage", "result-links", "attachments"]),
    remote_id=st.text(min_size=1, max_size=30).filter(lambda s: "/" not in s and s not in (".", "..")),
    body=json_values | st.fixed_dictionaries({"stage_id": json_values}) | big_values,
    key=KEYS,
)
def test_actions_never_5xx_and_refusals_store_nothing(
    api: Api, route: str, remote_id: str, body: Any, key: str | None
) -> None:
    path = f"/v1/connections/acme/applications/{quote(remote_id, safe='')}/{route}"
    headers = {"content-type": "application/json", **({"idempotency-key": key} if key else {})}
    api.call("POST", path, (route, remote_id, body), content=json.dumps(body).encode(), headers=headers)


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["limit", "cursor", "status", "connection", "received_from", "received_to", "q", "x"]),
        st.text(max_size=30) | st.integers().map(str),
        max_size=4,
    ),
    retry=json_values | st.dictionaries(st.sampled_from(["all", "status", "connection", "q"]), json_values),
)
def test_operator_calls_never_5xx(api: Api, params: dict[str, str], retry: Any) -> None:
    api.call("GET", "/v1/deliveries", params, params=params)
    api.call(
        "POST",
        "/v1/deliveries/retry",
        retry,
        content=json.dumps(retry).encode(),
        headers={"content-type": "application/json"},
    )
