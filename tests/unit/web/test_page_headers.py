"""The one place the pages' security headers are built (app/web/page_headers.py)."""

from __future__ import annotations

from app.web.page_headers import page_headers


def _directives(headers: dict[str, str]) -> dict[str, str]:
    return dict(part.split(" ", 1) for part in headers["Content-Security-Policy"].split("; "))


def test_a_page_gets_only_the_sources_it_names_and_is_never_framed_cached_or_sniffed() -> None:
    headers = page_headers({"style-src": "'self'"})
    assert _directives(headers) == {
        "default-src": "'none'",
        "style-src": "'self'",
        "frame-ancestors": "'none'",
        "base-uri": "'none'",
    }
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "same-origin" and "X-Frame-Options" not in headers


def test_a_page_may_allow_its_framers_and_choose_its_referrer_policy() -> None:
    headers = page_headers({"frame-ancestors": "https://careers.example"}, referrer="no-referrer", deny_framing=False)
    assert _directives(headers)["frame-ancestors"] == "https://careers.example"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert page_headers({}, deny_framing=True)["X-Frame-Options"] == "DENY"
