"""An ATS that answers badly: an ASGI proxy in front of an emulator that forwards every request
(the write happens there) and lets a test replace chosen answers, as a real ATS behind a broken
gateway or in a bad release would send them. For the worker's side of "hostile input"."""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

Send = Callable[[dict[str, Any]], Awaitable[None]]
Answer = tuple[int, list[tuple[str, str]], bytes]
Action = Callable[[Callable[[], Awaitable[Answer]], Send], Awaitable[None]]


class HostileATS:
    """Forwards to `upstream`; `on(method, path regex, action, times)` answers matching requests."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.rules: list[dict[str, Any]] = []

    def on(self, method: str, pattern: str, action: Action, times: int | None = 1) -> None:
        self.rules.append({"method": method, "re": re.compile(pattern), "action": action, "left": times})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path, query = scope["method"], scope["path"], scope.get("query_string", b"").decode()
        headers = [(k.decode(), v.decode("latin-1")) for k, v in scope["headers"] if k.lower() != b"host"]

        async def forward() -> Answer:
            async with httpx.AsyncClient(timeout=30) as client:
                url = self.upstream + path + (f"?{query}" if query else "")
                answer = await client.request(method, url, headers=headers, content=body)
            kept = [
                (k, v) for k, v in answer.headers.items() if k.lower() not in ("content-length", "content-encoding")
            ]
            return answer.status_code, kept, answer.content

        rule = next((r for r in self.rules if r["method"] == method and r["re"].search(path) and r["left"] != 0), None)
        if rule is None:
            await respond(send, *await forward())
            return
        if rule["left"] is not None:
            rule["left"] -= 1
        await rule["action"](forward, send)


async def respond(send: Send, status: int, headers: list[tuple[str, str]], content: bytes) -> None:
    raw = [(k.encode(), v.encode("latin-1")) for k, v in headers if k.lower() != "transfer-encoding"]
    if not any(k.lower() == b"content-type" for k, _ in raw):
        raw.append((b"content-type", b"application/json"))
    raw.append((b"content-length", str(len(content)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": content})


def with_id(value: Any) -> Action:
    """The write is made; its answer's `id` is replaced by `value`."""

    async def action(forward: Callable[[], Awaitable[Answer]], send: Send) -> None:
        status, headers, content = await forward()
        document = json.loads(content)
        envelope = document["data"] if isinstance(document.get("data"), dict) else document  # Laura's
        envelope["id"] = value
        await respond(send, status, headers, json.dumps(document).encode())

    return action


def answer(status: int, content: bytes, headers: list[tuple[str, str]] | None = None, *, write: bool) -> Action:
    """`content` as the answer; with `write` the request still reaches the emulator first."""

    async def action(forward: Callable[[], Awaitable[Answer]], send: Send) -> None:
        if write:
            await forward()
        await respond(send, status, headers or [], content)

    return action


def gzip_bomb(inflated_mib: int) -> Action:
    """The write is made; the answer is `inflated_mib` MiB of zeros gzipped (a few KB a MiB)."""
    packer, parts = zlib.compressobj(9, wbits=31), []
    zeros = bytes(1024 * 1024)
    for _ in range(inflated_mib):
        parts.append(packer.compress(zeros))
    parts.append(packer.flush())
    bomb = b"".join(parts)

    async def action(forward: Callable[[], Awaitable[Answer]], send: Send) -> None:
        status, _, _ = await forward()
        await respond(send, status, [("content-encoding", "gzip")], bomb)

    return action


def trickled(every_s: float) -> Action:
    """The write is made; its answer is sent a byte at a time, `every_s` apart."""

    async def action(forward: Callable[[], Awaitable[Answer]], send: Send) -> None:
        status, _, content = await forward()
        raw = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        for i in range(len(content)):
            await send({"type": "http.response.body", "body": content[i : i + 1], "more_body": i < len(content) - 1})
            await asyncio.sleep(every_s)

    return action


WBITS = {"gzip": 31, "deflate": 15, "raw deflate": -15}  # how each writing of the codings is packed


def encoded(coding: str, header: str) -> Action:
    """The write is made; its (well-formed) answer is packed as `coding` ("gzip", "deflate" with
    its zlib header, "raw deflate" without, or "none": sent as it is) under `Content-Encoding: header`."""

    async def action(forward: Callable[[], Awaitable[Answer]], send: Send) -> None:
        status, headers, content = await forward()
        if coding != "none":
            packer = zlib.compressobj(wbits=WBITS[coding])
            content = packer.compress(content) + packer.flush()
        await respond(send, status, [*headers, ("content-encoding", header)], content)

    return action
