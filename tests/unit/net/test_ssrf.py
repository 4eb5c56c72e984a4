"""The SSRF guard (app/net/ssrf.py): URLs to private, loopback, link-local or metadata addresses, with
credentials or another scheme, are refused, and so is a name that resolves to one."""

from __future__ import annotations

import pytest

from app.net import ssrf


@pytest.mark.parametrize(
    "url",
    [
        "http://example.org/cv.pdf",
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://[::1]/x",
        "https://169.254.169.254/latest",
        "https://[::ffff:127.0.0.1]/x",
        "https://localhost/x",
        "https://metadata.google.internal/x",
        "https://user:pw@example.org/x",
        "https://100.64.0.1/x",
        "file:///etc/passwd",
    ],
)
def test_ssrf_guard_refuses(url: str) -> None:
    with pytest.raises(ssrf.UnsafeURL):
        ssrf.check_url(url)


async def test_ssrf_guard_checks_what_a_name_resolves_to() -> None:
    with pytest.raises(ssrf.UnsafeURL):
        await ssrf.resolve_public("localhost", 443)
    ssrf.check_url("https://files.example.org/cv.pdf")  # a public name passes the static check
