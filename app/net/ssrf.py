"""Fetching `data_url` attachments without letting a payload reach inside our network.

Checked twice: at intake on the URL's text (https only, no literal internal address, no
localhost names), and in the worker on every address the name resolves to, right before
connecting to that very address (pinned, with the original Host and SNI), so DNS rebinding
cannot swap a public answer for an internal one in between.

`split_url` is the one place that knows what a usable URL is at all (scheme, host, port, a host
name DNS and IDNA accept, no control characters): intake's `data_url` and `statusApiUrl` checks,
the connections' `base_url` (app/config.py) and the fetch itself all go through it, so a URL
intake takes cannot crash the worker (nor be retried as if the network had failed) later.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import unicodedata
from collections.abc import Collection, Iterable
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

BLOCKED_NAMES = {"localhost", "localhost.localdomain", "metadata.google.internal", "metadata"}
MAX_LABEL = 63  # RFC 1035: the octets of one label of a name
MAX_NAME = 253  # and of the whole name, in its dotted form (no trailing dot)
# What a label of a host name may hold once in its A-label form (RFC 952/1123 letters, digits and
# hyphens; the underscore too, which DNS carries and some real hosts use). "%", "!", a space or a
# comma is no host a resolver can be asked for, whatever urlsplit and httpx let through.
NAME_CHARS = re.compile(r"[a-z0-9_-]+")


class UnsafeURL(ValueError):
    """The URL may not be fetched; the message says why (it names no PII)."""


# IPv6 prefixes that carry an IPv4 address in their last 32 bits, which the network translates to
# (RFC 6052's well-known NAT64 prefix): `64:ff9b::a00:1` reaches 10.0.0.1 on a NAT64 network.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Refused whatever they hold: the deprecated IPv4-compatible form (`::127.0.0.1`, RFC 4291 2.5.5.1),
# the local-use NAT64 prefix (RFC 8215, translated as each network chooses) and IPv6's old
# site-local range (RFC 3879), which Python counts as global.
UNROUTED_V6 = (
    ipaddress.ip_network("::/96"),
    ipaddress.ip_network("64:ff9b:1::/48"),
    ipaddress.ip_network("fec0::/10"),
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one leads to: mapped (`::ffff:a.b.c.d`), 6to4 (`2002::/16`) or
    NAT64 (`64:ff9b::/96`); Teredo's prefix is not global, so it is refused as it stands."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in network for network in UNROUTED_V6):
            return True
        ip = _embedded_ipv4(ip) or ip
    return not ip.is_global or ip.is_multicast


def _allowed(host: str, port: int | None, allow_hosts: Iterable[str]) -> bool:
    allow = set(allow_hosts)
    return host in allow or (port is not None and f"{host}:{port}" in allow)


def _bad_char(url: str) -> bool:
    """A control character anywhere: urlsplit quietly drops some (tab, newline), httpx refuses
    others (NUL), so such a URL would mean one thing here and another there. A space is no
    control character: httpx sends one in a path or query percent-encoded, as browsers do, and
    one in the host fails the name's own check (`_valid_name`)."""
    return any(unicodedata.category(ch) == "Cc" for ch in url)


def _valid_name(ascii_host: str) -> bool:
    """`ascii_host` (a name, not an IP, in the A-label form httpx sends and `_pinned` resolves:
    IDNA 2008) is one DNS takes: labels of 1-63 letters, digits, hyphens or underscores, 253 in
    all, every `xn--` label decodable to printable text (httpx decodes them, for one). Python's
    own IDNA 2003 codec is never asked: nothing resolves the Unicode form, and that codec refuses
    names IDNA 2008 takes (and maps some to another domain)."""
    name = ascii_host.lower().removesuffix(".")
    if not name or len(name) > MAX_NAME:
        return False
    for label in name.split("."):
        if not 0 < len(label) <= MAX_LABEL or not NAME_CHARS.fullmatch(label):
            return False
        if label.startswith("xn--"):
            try:
                decoded = label[4:].encode("ascii").decode("punycode")
            except UnicodeError:
                return False
            if not decoded or not decoded.isprintable():
                return False
    return True


def split_url(url: str, *, schemes: Collection[str] = ("https",)) -> SplitResult:
    """`url` split, if a request can be sent to it: one of `schemes`, a host that is a domain name
    (IDNA 2008; labels of 1-63 letters, digits, hyphens or underscores, 253 in all) or an IP, a
    port of 1-65535, no control characters in it. Else UnsafeURL saying which (urlsplit and httpx
    raise plain ValueErrors, UnicodeErrors or InvalidURL for these: a 500 or a worker's crash)."""
    if _bad_char(url):
        raise UnsafeURL("the URL holds a control character")
    try:
        parts = urlsplit(url)
    except ValueError:  # "[zz]" and the like: a bracketed host that is no IPv6 address
        raise UnsafeURL("the URL is malformed (its host is neither a name nor an IP address)") from None
    if parts.scheme not in schemes:
        raise UnsafeURL(f"the scheme must be {' or '.join(schemes)}")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeURL("the URL has no host")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise UnsafeURL("the port must be a number from 1 to 65535")
    bad_name = UnsafeURL(
        f"the host is not a valid domain name (IDNA; labels of letters, digits, - or _, at most "
        f"{MAX_LABEL} characters each, {MAX_NAME} in all)"
    )
    try:  # the client's own parse (its A-label form of the host, IDNA 2008)
        parsed = httpx.URL(url)
        raw_host = parsed.raw_host.decode("ascii")
        _ = parsed.host  # decodes a leading xn-- label, as the client does when it matches proxies
    except httpx.InvalidURL:  # for a non-ASCII host, its IDNA form; else the URL's own
        raise (bad_name if not host.isascii() else UnsafeURL("the URL is malformed")) from None
    except UnicodeError:
        raise bad_name from None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _valid_name(raw_host):
            raise bad_name from None
    return parts


def check_url(url: str, *, allow_hosts: Iterable[str] = (), allow_http: bool = False) -> None:
    """Static check, done at intake: a usable URL (`split_url`), https, no credentials, no
    literal internal address."""
    parts = split_url(url, schemes=("https", "http") if allow_http else ("https",))
    host = (parts.hostname or "").lower()
    if parts.username or parts.password:
        raise UnsafeURL("URLs with credentials are not fetched")
    if _allowed(host, parts.port, allow_hosts):
        return
    name = host.rstrip(".")  # `localhost.` is the same name, fully qualified
    if name in BLOCKED_NAMES or name.endswith(".localhost") or name.endswith(".internal"):
        raise UnsafeURL("internal host names are not fetched")
    ip = _literal_ip(host)
    if ip is not None and _forbidden(ip):
        raise UnsafeURL("private, loopback, link-local and metadata addresses are not fetched")


def _literal_ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address `host` writes, in any form the resolver reads as one: besides the dotted quad,
    inet_aton's `2130706433`, `0`, `127.1` and `0x7f.0.0.1` (getaddrinfo takes them for literals,
    so the worker's check refuses them; the intake must too, or the candidate is written to the
    ATS before the fetch fails). None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


async def resolve_public(host: str, port: int) -> str:
    """Resolve `host` and return an address to connect to, if every answer is public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError:  # a name the IDNA codec refuses: never resolvable, so no retry either
        raise UnsafeURL("the host is not a valid domain name") from None
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
    target, headers, extensions = await _pinned(url, allow_hosts)
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


def sent_host(url: str | httpx.URL) -> str:
    """The host of `url` (one `split_url` took) as httpx sends it and DNS must be asked for it:
    its A-label form (IDNA 2008). getaddrinfo's own encoding of a Unicode name is IDNA 2003's,
    which maps some names to another domain (faß.de to fass.de), so a resolver is never handed
    the Unicode form."""
    return httpx.URL(url).raw_host.decode("ascii")


async def _pinned(url: str, allow_hosts: Iterable[str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """(URL to connect to, extra headers, extensions): the resolved public address, pinned. The
    name resolved, sent as Host and as SNI is the one httpx itself would send (`sent_host`)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if _allowed(host.lower(), parts.port, allow_hosts):
        return url, {}, {}
    sent = httpx.URL(url)
    ascii_host = sent_host(sent)
    address = await resolve_public(ascii_host, port)
    literal = f"[{address}]" if ":" in address else address
    target = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path, parts.query, ""))
    return target, {"host": sent.netloc.decode("ascii")}, {"sni_hostname": ascii_host}


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
