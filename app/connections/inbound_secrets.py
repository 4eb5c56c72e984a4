"""The inbound routes' secrets of a connection made through the API: listed (never their values),
added with a grace period for the ones they replace, revoked (docs/connections.md, "Inbound
secrets").

Every change is one read-modify-write of the connection's sealed secrets, under a short
per-connection Redis lock so two admins rotating at once cannot lose one another's secret, and
written through `ConnectionStore.update`: the version moves and every process reloads within a
second or two. Secrets past their `expires_at` are dropped on the next write; until then the
routes refuse them already (`InboundSecret.valid`, app/intake/boards/secrets.py).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import get_args

import structlog
from redis.exceptions import LockError

from app.config import ConfigError, InboundKind
from app.connections.registry import ConnectionRegistry, build
from app.connections.store import ConnectionRecord, ConnectionStore, StoredInboundSecret, StoredSecrets
from app.core.problems import FieldError, Problem
from app.redis.keys import connection_lock_key

log = structlog.get_logger("applyrelay.connections")

KINDS: tuple[InboundKind, ...] = get_args(InboundKind)
WHSEC_KINDS = frozenset({"webhook", "status_callback"})  # Standard Webhooks secrets: whsec_<base64>
DEFAULT_GRACE_S = 86_400
MAX_GRACE_S = 30 * 86_400
LOCK_TIMEOUT_S = 10.0  # a write takes milliseconds; the lock outlives a stalled process this long at most
LOCK_WAIT_S = 5.0

_WHSEC = re.compile(r"^whsec_(?P<key>[A-Za-z0-9+/]+={0,2})$")
_TOKEN = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: sent in headers and form fields as is
_INDEED = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$")  # Indeed's own secrets hold spaces
MIN_TOKEN_CHARS, MAX_TOKEN_CHARS = 16, 512
MIN_WHSEC_BYTES, MAX_WHSEC_BYTES = 24, 64  # Standard Webhooks: a secret of 24 to 64 random bytes


@dataclass(frozen=True)
class Added:
    """A secret just added: `value` only when the relay generated it (shown once)."""

    secret: StoredInboundSecret
    kind: InboundKind
    generated: bool
    replaced: tuple[StoredInboundSecret, ...]


def unknown_kind(kind: str) -> Problem:
    message = f"must be one of {', '.join(KINDS)}"
    return Problem(
        404,
        "Unknown secret kind",
        f"kind {kind!r}: {message}",
        [FieldError("kind", message)],
        code="PLATFORM.NOT_FOUND",
    )


def unknown_connection(connection_id: str) -> Problem:
    return Problem(404, "Unknown connection", f"connection {connection_id!r} does not exist", code="PLATFORM.NOT_FOUND")


def from_the_file(connection_id: str) -> Problem:
    """A file connection's inbound secrets are the environment variables its table names."""
    return Problem(
        409,
        "Connection from the file",
        f"connection {connection_id!r} is configured in the TOML file: its inbound secrets live in the "
        "environment variables its table names (indeed_secret_env, webhook_secret_env, form_token_env, "
        "hellowork_secret_env, status_callback_secret_env); change them there (the API cannot)",
        code="PLATFORM.CONFLICT",
    )


def check_kind(kind: str) -> InboundKind:
    if kind not in KINDS:
        raise unknown_kind(kind)
    return kind  # narrowed by the membership test


def invalid_value(kind: str, value: str) -> str | None:
    """Why `value` cannot be a `kind` secret (None: it can). Never echoes the value."""
    if kind in WHSEC_KINDS:
        found = _WHSEC.match(value)
        if found is None:
            return "must be a Standard Webhooks secret: whsec_ followed by base64"
        try:
            raw = base64.b64decode(found["key"], validate=True)
        except (binascii.Error, ValueError):
            return "must be a Standard Webhooks secret: whsec_ followed by base64 (it does not decode)"
        if not MIN_WHSEC_BYTES <= len(raw) <= MAX_WHSEC_BYTES:
            return f"must hold {MIN_WHSEC_BYTES} to {MAX_WHSEC_BYTES} bytes after whsec_ (got {len(raw)})"
        return None
    if not MIN_TOKEN_CHARS <= len(value) <= MAX_TOKEN_CHARS:
        return f"must be {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} characters"
    pattern, allowed = (
        (_INDEED, "printable ASCII, no space at either end")
        if kind == "indeed"
        else (_TOKEN, "printable ASCII without spaces")
    )
    if not pattern.match(value):
        return f"may only hold {allowed}"
    return None


def generate(kind: str) -> str:
    """A new random secret: whsec_ + base64 of 24 bytes for Standard Webhooks, else a URL-safe token."""
    if kind in WHSEC_KINDS:
        return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    return secrets.token_urlsafe(32)


def pruned(inbound: Mapping[str, list[StoredInboundSecret]], now: float) -> dict[str, list[StoredInboundSecret]]:
    """The secrets still valid at `now`, newest first, kinds left empty dropped."""
    kept = {kind: [s for s in items if s.expires_at is None or now < s.expires_at] for kind, items in inbound.items()}
    return {kind: items for kind, items in kept.items() if items}


def listing(secrets_: StoredSecrets, now: float) -> dict[str, list[dict[str, object]]]:
    """Every kind, with its valid secrets' ids and times, newest first: never a value."""
    valid = pruned(secrets_.inbound, now)
    return {
        kind: [{"id": s.id, "created_at": s.created_at, "expires_at": s.expires_at} for s in valid.get(kind, [])]
        for kind in KINDS
    }


class InboundSecrets:
    """The three operations of the API (app/web/api/connection_secrets.py), over the store."""

    def __init__(self, store: ConnectionStore, registry: ConnectionRegistry) -> None:
        self.store = store
        self.registry = registry

    async def _load(self, connection_id: str) -> tuple[ConnectionRecord, StoredSecrets]:
        if self.registry.from_file(connection_id):
            raise from_the_file(connection_id)
        record = await self.store.get(connection_id)
        found = await self.store.secrets(connection_id)
        if record is None or found is None:
            raise unknown_connection(connection_id)
        return record, found

    async def show(self, connection_id: str) -> dict[str, list[dict[str, object]]]:
        _, found = await self._load(connection_id)
        return listing(found, time.time())

    async def add(self, connection_id: str, kind: str, value: str | None, grace_s: int, actor: str) -> Added:
        """A new `kind` secret (generated when `value` is None), newest first; the older valid ones
        expire `grace_s` from now (0: at once, they are dropped)."""
        checked = check_kind(kind)
        if value is not None and (reason := invalid_value(checked, value)):
            raise Problem(422, "Invalid secret", f"value: {reason}", [FieldError("value", reason)])
        if not 0 <= grace_s <= MAX_GRACE_S:
            reason = f"must be 0 to {MAX_GRACE_S} seconds"
            raise Problem(422, "Invalid secret", f"grace_s: {reason}", [FieldError("grace_s", reason)])
        async with self._locked(connection_id):
            record, found = await self._load(connection_id)
            now = time.time()
            inbound = pruned(found.inbound, now)
            older = inbound.get(checked, [])
            if value is not None and any([secrets.compare_digest(s.value.encode(), value.encode()) for s in older]):
                reason = "is already one of this connection's secrets of that kind"
                raise Problem(
                    409, "Secret exists", f"value: {reason}", [FieldError("value", reason)], "PLATFORM.CONFLICT"
                )
            new = StoredInboundSecret(
                id=f"{checked}_{secrets.token_hex(6)}", value=value or generate(checked), created_at=now
            )
            for s in older:  # a grace shorter than one already running shortens it, never lengthens it
                s.expires_at = min(s.expires_at if s.expires_at is not None else now + grace_s, now + grace_s)
            kept = [s for s in older if s.expires_at is not None and now < s.expires_at]
            inbound[checked] = [new, *kept]
            await self._write(record, found, inbound)
        log.info(
            "connection.inbound_secret_added",
            connection=connection_id,
            kind=checked,
            secret_id=new.id,
            generated=value is None,
            grace_s=grace_s,
            actor=actor,
        )
        return Added(secret=new, kind=checked, generated=value is None, replaced=tuple(older))

    async def revoke(self, connection_id: str, kind: str, secret_id: str, actor: str) -> None:
        """Removed at once; every process refuses it after its next reload (about a second)."""
        checked = check_kind(kind)
        async with self._locked(connection_id):
            record, found = await self._load(connection_id)
            inbound = pruned(found.inbound, time.time())
            items = inbound.get(checked, [])
            if not any(s.id == secret_id for s in items):
                message = f"no valid {checked} secret of this id"
                raise Problem(
                    404, "Unknown secret", message, [FieldError("secret_id", message)], code="PLATFORM.NOT_FOUND"
                )
            inbound[checked] = left = [s for s in items if s.id != secret_id]
            signing = checked == "status_callback" and record.settings.get("status_callback_url")
            if signing and left and left[0].expires_at is not None:
                raise Problem(  # the callbacks would be signed with a secret about to expire
                    409,
                    "Secret still needed",
                    "the newest status_callback secret signs the status callbacks; the ones left are in "
                    "their grace period: add a new one first, then revoke this one",
                    code="PLATFORM.CONFLICT",
                )
            await self._write(record, found, pruned(inbound, time.time()))
        log.info(
            "connection.inbound_secret_revoked",
            connection=connection_id,
            kind=checked,
            secret_id=secret_id,
            actor=actor,
        )

    async def _write(
        self, record: ConnectionRecord, found: StoredSecrets, inbound: dict[str, list[StoredInboundSecret]]
    ) -> None:
        """Stored only if the connection still builds (its status callback needs a signing secret)."""
        found.inbound = inbound
        try:
            build(record, found, self.registry.limits)
        except ConfigError as exc:
            raise Problem(
                409,
                "Secret still needed",
                f"{exc}: add a new one before revoking the last",
                code="PLATFORM.CONFLICT",
            ) from None
        await self.store.update(record, found)
        await self.registry.refresh()  # this process at once; the others within a second

    def _locked(self, connection_id: str) -> _Lock:
        return write_lock(self.store, connection_id)


def write_lock(store: ConnectionStore, connection_id: str) -> _Lock:
    """The lock every read-modify-write of a connection's record and secrets takes (these, and
    the credentials' changes in service.py), so that none loses another's change."""
    return _Lock(store, connection_id)


class _Lock:
    """The per-connection write lock (redis-py's token lock: released only by its holder)."""

    def __init__(self, store: ConnectionStore, connection_id: str) -> None:
        self.lock = store.redis.lock(
            connection_lock_key(connection_id), timeout=LOCK_TIMEOUT_S, blocking_timeout=LOCK_WAIT_S
        )

    async def __aenter__(self) -> None:
        if not await self.lock.acquire():
            raise Problem(
                503,
                "Busy",
                "another change to this connection is under way; try again",
                code="PLATFORM.UNAVAILABLE",
                headers={"Retry-After": "1"},
            )

    async def __aexit__(self, *_: object) -> None:
        try:
            await self.lock.release()
        except LockError:  # it expired meanwhile: the write is done either way
            log.warning("connection.secret_lock_expired", connection=self.lock.name)
