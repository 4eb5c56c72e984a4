"""Signed file links (app/privacy/file_links.py): they expire, and any change to the token or the
secret makes them invalid."""

from __future__ import annotations

import pytest


def test_file_links_expire_and_resist_tampering() -> None:
    from app.privacy import file_links

    token = file_links.sign("s3cret", "dlv_1", 2, expires_at=1000)
    assert file_links.verify("s3cret", token, now=999) == ("dlv_1", 2)
    for bad_secret, bad_token, now in (
        ("other", token, 999),
        ("s3cret", token, 1001),
        ("s3cret", token.replace(".", ".x"), 999),
        ("s3cret", "garbage", 999),
    ):
        with pytest.raises(file_links.BadLink):
            file_links.verify(bad_secret, bad_token, now=now)
