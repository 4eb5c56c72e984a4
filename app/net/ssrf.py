"""Fetching `data_url` attachments without letting a payload reach inside our network.

Checked twice: at intake on the URL's text (https only, no literal internal address, no
localhost names), and in the worker on every address the name resolves to, right before
connecting to that very address (pinned, with the original Host and SNI), so DNS rebinding
cannot swap a public answer for an internal one in between.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import httpx

BLOCKED_NAMES = {"localhost", "localhost.localdomain", "metadata.google.internal", "metadata"}


class UnsafeURL(ValueError):
    """The URL may not be fetched; the message says why (it names no PII)."""


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _allowed(host: str, port: int | None, allow_hosts: Iterable[str]) -> bool:
    allow = set(allow_hosts)
    return host in allow or (port is not None and f"{host}:{port}" in allow)


def check_url(url: str, *, allow_hosts: Iterable[str] = (), allow_http: bool = False) -> None:
    """Static check, done at intake: scheme, host present, no literal internal address."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" and not (allow_http and parts.scheme == "http"):
        raise UnsafeURL("only https URLs are fetched")
    if not host:
        raise UnsafeURL("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeURL("URLs with credentials are not fetched")
    if _allowed(host, parts.port, allow_hosts):
        return
    if host in BLOCKED_NAMES or host.endswith(".localhost") or host.endswith(".internal"):
        raise UnsafeURL("internal host names are not fetched")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return
    if _forbidden(ip):
        raise UnsafeURL("private, loopback, link-local and metadata addresses are not fetched")


async def resolve_public(host: str, port: int) -> str:
    """Resolve `host` and return an address to connect to, if every answer is public."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise UnsafeURL("the host does not resolve")
    addresses: list[str] = []
    for family, _, _, _, sockaddr in infos:
        # Only IPv4 and IPv6 answers are checked and connected to; any other family (whose
        # address is not an IP's text, and may be an int) is refused rather than crashing the check.
        if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(sockaddr[0], str):
            raise UnsafeURL("the host resolves to a non-IP address")
        address = sockaddr[0]
        if _forbidden(ipaddress.ip_address(address.split("%")[0])):
            raise UnsafeURL("the host resolves to a private, loopback or link-local address")
        addresses.append(address)
    return addresses[0]


async def fetch(
    url: str,
    http: httpx.AsyncClient,
    *,
    max_bytes: int,
    allow_hosts: Iterable[str] = (),
    allow_http: bool = False,
    timeout_s: float = 20.0,
) -> tuple[bytes, str | None]:
    """GET `url` behind the guard, at most `max_bytes`; returns (bytes, declared content type)."""
    check_url(url, allow_hosts=allow_hosts, allow_http=allow_http)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target, extensions, headers = url, {}, {}
    if not _allowed(host.lower(), parts.port, allow_hosts):
        address = await resolve_public(host, port)
        literal = f"[{address}]" if ":" in address else address
        target = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path, parts.query, ""))
        headers["host"] = parts.netloc
        extensions["sni_hostname"] = host
    request = http.build_request("GET", target, headers=headers, extensions=extensions, timeout=timeout_s)
    response = await http.send(request, stream=True, follow_redirects=False)
    try:
        if response.status_code != 200:
            raise httpx.HTTPStatusError(f"HTTP {response.status_code}", request=request, response=response)
        chunks, size = [], 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise UnsafeURL(f"the file is larger than {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks), response.headers.get("content-type")
    finally:
        await response.aclose()


async def _pinned(url: str, allow_hosts: Iterable[str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL to connect to, extra headers, extensions): the resolved public address, pinned."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if _allowed(host.lower(), parts.port, allow_hosts):
        return url, {}, {}
    address = await resolve_public(host, port)
    literal = f"[{address}]" if ":" in address else address
    target = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path, parts.query, ""))
    return target, {"host": parts.netloc}, {"sni_hostname": host}


async def post(
    url: str,
    http: httpx.AsyncClient,
    *,
    content: bytes,
    headers: dict[str, str],
    allow_hosts: Iterable[str] = (),
    allow_http: bool = False,
    timeout_s: float = 20.0,
) -> httpx.Response:
    """POST `content` to `url` behind the same guard as `fetch` (outbound status callbacks): no
    redirects followed, the answer's body not read past 64 kB. Returns the (closed) response."""
    check_url(url, allow_hosts=allow_hosts, allow_http=allow_http)
    target, extra, extensions = await _pinned(url, allow_hosts)
    request = http.build_request(
        "POST", target, content=content, headers={**headers, **extra}, extensions=extensions, timeout=timeout_s
    )
    response = await http.send(request, stream=True, follow_redirects=False)
    try:
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > 64_000:
                break
        return response
    finally:
        await response.aclose()
