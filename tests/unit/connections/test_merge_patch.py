"""PATCH /v1/connections/{id} merges `settings` as RFC 7386 says (app/connections/service.py)."""

from __future__ import annotations

from app.connections.service import merge_patch


def test_a_merge_patch_sets_removes_and_merges_objects_as_rfc_7386_says() -> None:
    stored = {"concurrency": 3, "apply": {"title": "Jobs", "css_url": "https://a"}, "retry_schedule": [1, 2]}
    patch = {"concurrency": None, "apply": {"css_url": None, "privacy_url": "https://p"}, "retry_schedule": [5]}
    assert merge_patch(stored, patch) == {"apply": {"title": "Jobs", "privacy_url": "https://p"}, "retry_schedule": [5]}
    assert stored["concurrency"] == 3  # the stored settings are not changed in place
    assert merge_patch(stored, {}) == stored
    assert merge_patch({"a": 1}, {"a": {"b": None, "c": 2}}) == {"a": {"c": 2}}
