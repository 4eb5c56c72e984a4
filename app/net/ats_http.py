"""The HTTP client the connectors talk to the ATSs with: httpx's API on aiohttp's connection pool.

Why not httpx's own transport: profiling P2 (bench/RESULTS.md) put more than half of the
worker's CPU in httpcore and anyio (a scan of every pooled connection per request, cancel scopes,
locks); with aiohttp underneath the same deliveries cost ~40 % less CPU. Connectors keep httpx's
API (requests, responses, exceptions), so nothing above this module knows the difference.

The transport is `httpx-aiohttp` (by an httpx maintainer; OpenAI's and Anthropic's SDKs ship it
as their aiohttp option). Its exception mapping is too coarse for us: it reports a connection the
server dropped *after* our request left as `ConnectTimeout`, which would tell the connectors the
ATS never saw the request. `_to_httpx` maps failures by where they happened, because "sent or
not" decides between a plain retry and an unknown outcome (connectors/base.error_for_transport).

The SSRF-guarded fetches and the outbound status callbacks keep httpx's own transport
(`Runtime.http`): rare calls, pinned addresses with SNI, no reason to change what is proven.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.request import proxy_bypass_environment  # type: ignore[attr-defined]

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
POOL = httpx.Limits(max_connections=200, max_keepalive_connections=50)


def _to_httpx(exc: BaseException) -> httpx.TransportError | None:
    """The httpx error for an aiohttp failure (or for httpx-aiohttp's own mapping of one)."""
    cause = exc.__cause__ if isinstance(exc, httpx.TransportError) and exc.__cause__ is not None else exc
    message = str(cause) or type(cause).__name__
    if isinstance(cause, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return None  # a bad base_url: httpx-aiohttp's UnsupportedProtocol says so; nothing was sent
    if isinstance(cause, aiohttp.ConnectionTimeoutError):  # no connection (pool or connect): not sent
        return httpx.ConnectTimeout(message)
    if isinstance(cause, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake: not sent
        return httpx.ConnectError(message)
    if isinstance(cause, aiohttp.ServerTimeoutError | TimeoutError):  # sent, no (full) answer in time
        return httpx.ReadTimeout(message)
    if isinstance(cause, aiohttp.ClientPayloadError):
        return httpx.ReadError(message)
    if isinstance(cause, aiohttp.ServerDisconnectedError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(message)
    if isinstance(cause, aiohttp.ClientError):  # reset mid-exchange and the rest: assume it was sent
        return httpx.ReadError(message)
    return None


@contextmanager
def _mapped() -> Iterator[None]:
    try:
        yield
    except (TimeoutError, aiohttp.ClientError, httpx.TransportError) as exc:
        mapped = _to_httpx(exc)
        if mapped is None:
            raise
        raise mapped from exc


# The most an ATS answer may take once decompressed: more than any file the relay takes (25 MB an
# application). A 1 MB gzip body inflating to 1 GiB took a worker to 3.3 GB and held its loop past
# the job timeout (a probe); a plain 60 MB one was read whole too.
MAX_ANSWER_BYTES = 32 * 1024 * 1024
DECODED = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": 32 + zlib.MAX_WBITS}
REFUSED_CODINGS = frozenset({"br", "zstd", "compress", "x-compress"})  # real codings never asked for


class AnswerTooLarge(httpx.ReadError):
    """More than MAX_ANSWER_BYTES, declared or once inflated (the connectors name the class)."""


class AnswerTooSlow(httpx.ReadTimeout):
    """The whole answer did not arrive within the call's read timeout."""


class AnswerUndecodable(httpx.DecodingError):
    """A compressed answer that is damaged, or in an encoding that was not asked for."""


class _MappedStream(httpx.AsyncByteStream):
    """The response body, with the same mapping for failures while it is read, decompressed
    here rather than by httpx so that it is bounded (`MAX_ANSWER_BYTES` once inflated) and read
    within the call's read timeout as a whole: aiohttp bounds only each read, so an answer
    trickling a byte every half second held a worker slot until the run budget cut it."""

    def __init__(self, inner: httpx.AsyncByteStream, encoding: str | None, deadline: float, seconds: float) -> None:
        self._inner = inner
        self._inflate = zlib.decompressobj(wbits=DECODED[encoding]) if encoding else None
        self._raw_deflate_ok = encoding == "deflate"  # a raw stream with no zlib header, as httpx allows
        self._head = b""  # the first bytes, until they tell a zlib stream from a raw one
        self._deadline, self._seconds = deadline, seconds

    async def __aiter__(self) -> AsyncIterator[bytes]:
        size, loop = 0, asyncio.get_running_loop()
        with _mapped():
            async for chunk in self._inner:
                if loop.time() > self._deadline:
                    raise AnswerTooSlow(f"the answer took longer than {self._seconds:g} s to arrive")
                data = self._inflated(chunk, MAX_ANSWER_BYTES - size + 1)
                size += len(data)
                if size > MAX_ANSWER_BYTES:
                    raise AnswerTooLarge(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
                if data:  # zlib holds no output back: what `room` cut off is over the cap anyway
                    yield data

    def _inflated(self, chunk: bytes, room: int) -> bytes:
        if self._inflate is None:
            return chunk
        if self._raw_deflate_ok:
            self._head += chunk
        try:
            data = self._inflate.decompress(self._inflate.unconsumed_tail + chunk, room)
        except zlib.error as exc:
            if not self._raw_deflate_ok:
                raise AnswerUndecodable(f"the answer's compressed body is damaged ({exc})") from None
            self._inflate = zlib.decompressobj(wbits=-zlib.MAX_WBITS)  # IIS-style "deflate": no header
            self._raw_deflate_ok, head, self._head = False, self._head, b""
            return self._inflated(head, room)
        if self._raw_deflate_ok and (data or len(self._head) >= 2):  # the header is two bytes
            self._raw_deflate_ok, self._head = False, b""
        return data

    async def aclose(self) -> None:
        with _mapped():
            await self._inner.aclose()


class ATSTransport(AiohttpTransport):
    def get_client(self) -> aiohttp.ClientSession:
        """No cookie jar, and no `trust_env`: with it aiohttp reads ~/.netrc in a thread on every
        request (74 % of the worker's samples in P2). A proxy is read from the environment once,
        in `ats_client`."""
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0, ssl=self.ssl_context, keepalive_timeout=self.limits.keepalive_expiry
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _mapped():
            response = await super().handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        declared = response.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
            await response.aclose()
            raise AnswerTooLarge(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
        # As httpx reads it: comma-separated codings, `identity` and tokens no one defines
        # ("utf-8", "binary": misconfigured servers send them over plain bodies) ignored.
        codings = [token.strip().lower() for token in response.headers.get("content-encoding", "").split(",")]
        real = [c for c in codings if c in DECODED or c in REFUSED_CODINGS]
        if any(c in REFUSED_CODINGS for c in real) or len(real) > 1:  # asked for gzip and deflate, once
            await response.aclose()
            raise AnswerUndecodable(f"the answer is encoded as {', '.join(real)[:60]!r}, which was not asked for")
        encoding = real[0] if real else None
        if "content-encoding" in response.headers:  # decoded (and bounded) by the stream, not by httpx
            del response.headers["content-encoding"]
            if encoding is not None:
                response.headers.pop("content-length", None)
        seconds = float((request.extensions.get("timeout") or {}).get("read") or 60.0)
        deadline = asyncio.get_running_loop().time() + seconds
        response.stream = _MappedStream(response.stream, encoding, deadline, seconds)
        return response


def _no_cookies() -> CookieJar:
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class _NoCookies(httpx.Cookies):
    """A jar that stays empty without looking: httpx hands every response to its client's jar,
    which builds urllib request and response objects (a parse of the URL) before any policy can
    refuse; that was a sixth of a Factorial call's CPU in bench P2 (bench/RESULTS.md, 2026-12-01)."""

    def __init__(self) -> None:
        super().__init__(_no_cookies())

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set(self, name: str, value: str, domain: str = "", path: str = "/") -> None:
        return None  # nothing is ever kept: see `ats_client`


class _ATSClient(httpx.AsyncClient):
    """httpx's client whose cookies are `_NoCookies` whatever is assigned (httpx wraps what its
    setter gets in a plain `Cookies`)."""

    _jar = _NoCookies()

    @property
    def cookies(self) -> httpx.Cookies:
        return self._jar

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        return None


def ats_client(limits: httpx.Limits = POOL) -> httpx.AsyncClient:
    """One per process, shared by every connection's connector (aiohttp pools per host).

    It keeps no cookies: two connections may be two tenants of the same ATS host, and a cookie
    one tenant's answer sets must never ride along on the other's requests. Connectors
    authenticate with headers or tokens they hold themselves.

    An egress proxy comes from HTTPS_PROXY (or HTTP_PROXY) and NO_PROXY, read here once."""
    proxy_url = next((os.environ[name] for name in PROXY_ENV if os.environ.get(name)), None)
    direct = ATSTransport(limits=limits)
    if proxy_url is None:
        return _ATSClient(transport=direct)
    proxied = ATSTransport(limits=limits, proxy=httpx.Proxy(proxy_url))
    return _ATSClient(transport=_ProxyRouter(direct, proxied, _no_proxy()))


def _no_proxy() -> dict[str, str]:
    value = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
    return {"no": value} if value else {}


class _ProxyRouter(httpx.AsyncBaseTransport):
    """Through the proxy, except for the hosts NO_PROXY names (as httpx and curl do)."""

    def __init__(
        self, direct: httpx.AsyncBaseTransport, proxied: httpx.AsyncBaseTransport, no_proxy: dict[str, str]
    ) -> None:
        self.direct, self.proxied, self.no_proxy = direct, proxied, no_proxy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host + (f":{request.url.port}" if request.url.port else "")
        bypass = bool(self.no_proxy) and proxy_bypass_environment(host, self.no_proxy)
        return await (self.direct if bypass else self.proxied).handle_async_request(request)

    async def aclose(self) -> None:
        await self.direct.aclose()
        await self.proxied.aclose()
