"""Helpers for the data-protection tests: operator tokens, distinctive candidates, and a raw dump of Redis."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from app.tokens import ApiToken
from tests.support.builders import PDF_BYTES, b64

# Operator tokens of the access and audit tests: one without `pii`, one with it.
READER = ApiToken("reader", "reader-token-0123456789", frozenset({"read", "retry"}))
DPO = ApiToken("dpo", "dpo-token-000123456789", frozenset({"read", "pii"}))


def bearer(token: ApiToken) -> dict[str, str]:
    return {"authorization": f"Bearer {token.secret}"}


class Person:
    """A candidate whose every identifying string is unique to the test (so a match is a leak)."""

    def __init__(self, tag: str = "") -> None:
        u = uuid.uuid4().hex[:10]
        self.first = f"Ingrid{tag}{u}"
        self.last = f"Sørensen-Ødegård{u}"
        self.email = f"ingrid.{u}@example.org"
        self.phone = f"+47 {int(u[:6], 16) % 10**8:08d}"
        self.answer = f"My secret motivation {u}"
        self.cv = PDF_BYTES[:9] + f"CV-BYTES-OF-{u}".encode() + PDF_BYTES[9:]

    def application(self, job_id: str = "2001", *, cv: bool = True, **overrides: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "connection_id": "acme",
            "candidate": {
                "first_name": self.first,
                "last_name": self.last,
                "email_address": self.email,
                "phone_number": self.phone,
            },
            "application": {"job_id": job_id},
            "attachments": [
                {"name": f"{self.first} CV.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(self.cv)}
            ]
            if cv
            else [],
        }
        if job_id == "2001":
            body["screening_question_answers"] = [
                {"question_id": "3001", "answer": self.answer},
                {"question_id": "3003", "answer": True},
            ]
        body.update(overrides)
        return body

    def needles(self) -> dict[str, bytes]:
        """What must never appear in Redis in clear (several spellings of each)."""
        u = self.email.split(".")[1].split("@")[0]
        return {
            "first name": self.first.encode(),
            "last name": self.last.encode(),
            "last name (ascii part)": f"{u}".encode() + b"@",  # the address's local part
            "email": self.email.encode(),
            "email (upper)": self.email.upper().encode(),
            "phone": self.phone.encode(),
            "answer": self.answer.encode(),
            "CV bytes": f"CV-BYTES-OF-{u}".encode(),
            "CV base64": b64(self.cv)[8:60].encode(),
        }


async def dead_letter(relay: Any, factorial: Any, person: Person) -> str:
    """A delivery that becomes a dead letter: an application to the archived posting 2003, posted
    while Factorial cannot be read (intake accepts it unchecked), which the worker then refuses
    before writing (ATS.JOB_CLOSED). A closed job known at intake is a 422 instead."""
    factorial.faults(error_rate=1.0, error_status=503, methods=["GET"])
    try:
        response = await relay.post(person.application("2003", cv=False))
    finally:
        factorial.faults()
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def dump(redis: Redis) -> bytes:
    """Every key and every value in the database, whatever its type, as one blob."""
    parts: list[bytes] = []
    async for key in redis.scan_iter(count=1000):
        parts.append(key)
        kind = (await redis.type(key)).decode()
        if kind == "string":
            parts.append(await redis.get(key) or b"")
        elif kind == "hash":
            for k, v in (await redis.hgetall(key)).items():
                parts += [k, v]
        elif kind == "list":
            parts += await redis.lrange(key, 0, -1)
        elif kind == "set":
            parts += list(await redis.smembers(key))
        elif kind == "zset":
            parts += [m for m, _ in await redis.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            for entry_id, fields in await redis.xrange(key):
                parts.append(entry_id)
                for k, v in fields.items():
                    parts += [k, v]
        else:
            raise AssertionError(f"unexpected Redis type {kind} for {key!r}")
    return b"\n".join(p if isinstance(p, bytes) else str(p).encode() for p in parts)


async def aof_bytes(redis: Redis) -> bytes | None:
    """The append-only files on disk (what a stolen disk or backup holds), if this Redis is local."""
    directory = Path((await redis.config_get("dir"))["dir"])
    sub = (await redis.config_get("appenddirname")).get("appenddirname", "appendonlydir")
    files = sorted((directory / sub).glob("*.aof")) if (directory / sub).is_dir() else []
    if not files:
        return None
    return b"".join(f.read_bytes() for f in files)


def leaks(blob: bytes, person: Person) -> list[str]:
    return [name for name, needle in person.needles().items() if needle in blob]
