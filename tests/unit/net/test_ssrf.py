"""The SSRF guard (app/net/ssrf.py): URLs to private, loopback, link-local or metadata addresses, with
credentials or another scheme, are refused, and so is a name that resolves to one."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

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
        "https://localhost./x",
        "https://metadata.google.internal./x",
        "https://[::127.0.0.1]/x",  # IPv4-compatible
        "https://[64:ff9b::a00:1]/x",  # NAT64 to 10.0.0.1
        "https://[64:ff9b::a9fe:a9fe]/x",  # NAT64 to the metadata address
        "https://[64:ff9b:1::a00:1]/x",  # local-use NAT64
        "https://[2002:7f00:1::]/x",  # 6to4 of 127.0.0.1
        "https://[2002:a00:1::1]/x",  # 6to4 of 10.0.0.1
        "https://[fec0::1]/x",  # site-local
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",  # Teredo
        "https://2130706433/x",  # 127.0.0.1 as inet_aton (and so getaddrinfo) reads it
        "https://0/x",
        "https://127.1/x",
        "https://0x7f.0.0.1/x",
        "https://167772161/x",  # 10.0.0.1
    ],
)
def test_ssrf_guard_refuses(url: str) -> None:
    with pytest.raises(ssrf.UnsafeURL):
        ssrf.check_url(url)


@pytest.mark.parametrize(
    "url", ["https://[64:ff9b::808:808]/x", "https://[2002:808:808::1]/x", "https://[2606:4700::1111]/x"]
)
def test_ipv6_forms_of_public_addresses_pass(url: str) -> None:
    ssrf.check_url(url)  # NAT64 and 6to4 of 8.8.8.8, and a plain global IPv6 address


@pytest.mark.parametrize(
    "url", ["https://134744072/x", "https://8.8.8.8/x", "https://1e100.net/x", "https://123.example/x"]
)
def test_public_numeric_hosts_and_names_with_digits_pass(url: str) -> None:
    ssrf.check_url(url)  # 134744072 is 8.8.8.8


async def test_an_answer_in_a_translated_private_range_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def getaddrinfo(*_: Any, **__: Any) -> list[tuple[Any, ...]]:
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::a00:1", 443, 0, 0))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    with pytest.raises(ssrf.UnsafeURL, match="private"):
        await ssrf.resolve_public("rebinding.example.org", 443)


async def test_ssrf_guard_checks_what_a_name_resolves_to() -> None:
    with pytest.raises(ssrf.UnsafeURL):
        await ssrf.resolve_public("localhost", 443)
    ssrf.check_url("https://files.example.org/cv.pdf")  # a public name passes the static check


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://example.com:99999/x", "port"),
        ("https://example.com:0/x", "port"),
        ("https://example.com:http/x", "port"),
        ("https://[zz]/x", "malformed"),
        ("https://" + "a" * 300 + ".com/x", "not a valid domain name"),
        ("https://" + "a" * 64 + ".com/x", "not a valid domain name"),
        ("https://" + "a." * 127 + "com/x", "not a valid domain name"),  # 257 characters
        ("https://xn--a.xn--/x", "not a valid domain name"),
        ("https://example.xn--/x", "not a valid domain name"),
        ("https://\u2603.com/x", "not a valid domain name"),  # IDNA 2008 refuses it, as httpx does
        ("https://example.com/\u0000", "control character"),
        ("https://exa\tmple.com/", "control character"),  # urlsplit would drop the tab
        ("https://exa mple.com/", "not a valid domain name"),
        ("https://exam%ple.com/", "not a valid domain name"),
        ("https://exam!ple.com/", "not a valid domain name"),
        ("https://exa,mple.com/", "not a valid domain name"),
        ("https://example.com/\u0085", "control character"),
        ("ftp://example.com/x", "scheme"),
        ("https:///x", "no host"),
    ],
)
def test_split_url_refuses_what_no_request_can_be_sent_to(url: str, reason: str) -> None:
    """Each a ValueError, UnicodeError or httpx.InvalidURL before: a 500 at intake, or a worker
    crash filed as transient (docs/operations.md)."""
    with pytest.raises(ssrf.UnsafeURL, match=reason):
        ssrf.split_url(url)
    with pytest.raises(ssrf.UnsafeURL, match=reason):
        ssrf.check_url(url, allow_http=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cv.pdf?x=1",
        "https://EXAMPLE.com.:8443/x",
        "https://faß.de/x",  # IDNA 2008's A-label, xn--fa-hia.de
        "https://xn--bcher-kva.de/x",
        "https://" + "a" * 63 + ".com/x",
        "https://" + "a." * 125 + "com/x",  # 253 characters
        "https://8.8.8.8/x",
        "https://[2001:4860:4860::8888]:443/x",
        "https://files_1.example.org/x",  # not a hostname by RFC 952, but resolvable and sent
        "https://example.com/a b/cv.pdf",  # httpx sends the space percent-encoded, as browsers do
        "https://שלום1.co.il/x",  # IDNA 2008 takes an RTL label ending in a digit; IDNA 2003 refused it
    ],
)
def test_split_url_keeps_usable_urls(url: str) -> None:
    assert ssrf.split_url(url).scheme == "https"
    ssrf.check_url(url)


def test_split_url_takes_the_schemes_it_is_given() -> None:
    assert ssrf.split_url("http://127.0.0.1:18091/api", schemes=("http", "https")).port == 18091
    with pytest.raises(ssrf.UnsafeURL, match="scheme must be https"):
        ssrf.split_url("http://example.com/")


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://faß.de/x", "xn--fa-hia.de"),  # IDNA 2003 (getaddrinfo's codec) would say fass.de
        ("https://EXAMPLE.com.:8443/x", "example.com."),
        ("https://שלום1.co.il/x", "xn--1-9hcuf1d.co.il"),
        ("https://[2001:db8::1]/x", "2001:db8::1"),
    ],
)
def test_sent_host_is_the_name_httpx_sends(url: str, host: str) -> None:
    assert ssrf.sent_host(url) == host


async def test_a_name_the_idna_codec_refuses_is_unsafe_when_resolved_not_a_crash() -> None:
    with pytest.raises(ssrf.UnsafeURL, match="not a valid domain name"):
        await ssrf.resolve_public("a" * 300 + ".com", 443)


async def test_the_pinned_name_is_the_a_label_httpx_sends(monkeypatch: pytest.MonkeyPatch) -> None:
    """getaddrinfo encodes a Unicode name with IDNA 2003, which makes faß.de another domain
    (fass.de); the guard resolves, and sends as Host and SNI, the IDNA 2008 A-label httpx sends.
    There is no DNS here: the loop's resolver is one that records the name it is asked."""
    asked: list[str] = []

    async def getaddrinfo(host: str, port: int, **_: Any) -> list[Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
    target, headers, extensions = await ssrf._pinned("https://faß.de/cv.pdf?v=1", ())
    assert asked == ["xn--fa-hia.de"]
    assert target == "https://93.184.215.14:443/cv.pdf?v=1"
    assert headers == {"host": "xn--fa-hia.de"} and extensions == {"sni_hostname": "xn--fa-hia.de"}
