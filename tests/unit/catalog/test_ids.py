"""Job ids as callers write them (`remote:<id>`) and the listing cursor that wraps the connector's
(app/catalog/ids.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from app.catalog import parse_job_id
from app.catalog.ids import unwrap_cursor, wrap_cursor
from app.core.catalog import JobQuery
from app.core.problems import Problem


@pytest.mark.parametrize(("raw", "job_id"), [("42", "42"), ("remote:42", "42"), (" remote: ab-7 ", "ab-7")])
def test_a_job_id_is_the_ats_id_with_or_without_kombos_prefix(raw: str, job_id: str) -> None:
    assert parse_job_id(raw) == job_id


@pytest.mark.parametrize("raw", ["", "remote:", "   ", "a\x00b", "x" * 201])
def test_a_blank_or_odd_job_id_is_a_422_naming_the_field(raw: str) -> None:
    with pytest.raises(Problem) as caught:
        parse_job_id(raw, field="application.job_id")
    assert caught.value.status == 422 and caught.value.code == "PLATFORM.INPUT_INVALID"
    assert [e.field for e in caught.value.errors] == ["application.job_id"]


def test_a_cursor_carries_the_connectors_and_only_for_its_filters() -> None:
    query = JobQuery(status="OPEN", name_contains="dev", updated_after=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    cursor = wrap_cursor("page=3&x=/", query)
    assert cursor is not None and "=" not in cursor and "/" not in cursor
    assert (
        unwrap_cursor(
            cursor, JobQuery(status="OPEN", name_contains="dev", updated_after=query.updated_after, page_size=7)
        )
        == "page=3&x=/"
    )
    assert wrap_cursor(None, query) is None and unwrap_cursor(None, query) is None
    for other in (JobQuery(status="CLOSED", name_contains="dev"), JobQuery()):
        with pytest.raises(Problem) as caught:
            unwrap_cursor(cursor, other)
        assert caught.value.status == 422 and caught.value.errors[0].field == "cursor"
    for forged in ("not-base64!", "AAAA", ""):
        with pytest.raises(Problem) as caught:
            unwrap_cursor(forged, query)
        assert "next_cursor" in caught.value.errors[0].message
