"""Erasure on request (GDPR art. 17): every stored payload and file of one candidate, wherever
its deliveries stand, and what the operator must still erase in the ATSs.

Finding a candidate's deliveries without storing the address: intake adds each delivery's id to
`ar:ix:email:<hmac>` (keyed hash of the normalised address, app/privacy/crypto.py) in the same
transaction that stores it. Actions queued on those applications later (add attachment, result
link, stage) are found by parent id or by the remote ids they target.

What erasure leaves: each delivery's state record (ids, statuses, remote ids, attempts — no
candidate data), marked `erased_at`, so the operator can still see that something was delivered
and erased; and a tombstone `ar:erased:<hmac>` (when, how many), so a later application from the
same address is recognised without the address being kept. What intake then does is in
`intake_verdict`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from app.delivery import transitions
from app.delivery.engine import FILE_SLACK, file_count
from app.delivery.record import TERMINAL, Delivery, ErrorInfo
from app.delivery.store import DeliveryStore
from app.privacy.crypto import Pseudonyms
from app.redis.client import awaited
from app.redis.keys import IX_ALL, PURGED_METRIC, SYNC_SET, email_index_key, tombstone_key

log = structlog.get_logger("applyrelay.erasure")
SCAN_BATCH = 500
# Checkpoints that are not candidate records in the ATS (the account's company, a source, a stage
# move; "answers" holds a count, the answers live on the application): left out of `erase_in_ats`.
NOT_CANDIDATE_RECORDS = frozenset({"company", "source", "stage", "move", "answers"})


async def hold_lease(store: DeliveryStore, delivery_id: str, wait_s: float) -> str | None:
    """The delivery's lease, waiting for a running delivery to finish its run (runs are bounded
    by the job timeout, and a dead worker's lease expires, so `wait_s` > lease is enough)."""
    deadline = time.monotonic() + wait_s
    while True:
        token = await store.acquire_lease(delivery_id, max(wait_s, 30.0))
        if token is not None or time.monotonic() >= deadline:
            return token
        await asyncio.sleep(0.1)


@dataclass
class ErasedDelivery:
    delivery_id: str
    kind: str
    status_before: str
    status: str
    connection_id: str
    connector: str
    remote_ids: dict[str, str]
    stopped: bool  # was queued or retrying, now failed with an "erased" error: never delivered
    in_flight: bool = False  # a run held it past the wait: its ATS side must be checked
    blobs_deleted: int = 0  # files deleted from the blob store (app/blobs)


@dataclass
class ErasureReport:
    subject: str  # the first 16 hex of the keyed hash: a reference, not the address
    erased_at: float
    deliveries: list[ErasedDelivery] = field(default_factory=list)

    def ats_records(self) -> list[dict[str, Any]]:
        """What the relay created in each ATS for this candidate: the operator erases it there."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for d in self.deliveries:
            if not set(d.remote_ids) - NOT_CANDIDATE_RECORDS:
                continue
            row = rows.setdefault(
                (d.connection_id, d.connector),
                {"connection_id": d.connection_id, "connector": d.connector, "records": []},
            )
            for step, remote_id in sorted(d.remote_ids.items()):
                if step.split(":", 1)[0] in NOT_CANDIDATE_RECORDS:
                    continue
                record = {"type": step.split(":", 1)[0], "step": step, "remote_id": remote_id}
                if record not in row["records"]:
                    row["records"].append(record)
        return list(rows.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "erased_at": self.erased_at,
            "deliveries_erased": len(self.deliveries),
            "blobs_deleted": sum(d.blobs_deleted for d in self.deliveries),
            "deliveries": [vars(d) for d in self.deliveries],
            "stopped": [d.delivery_id for d in self.deliveries if d.stopped],
            "in_flight": [d.delivery_id for d in self.deliveries if d.in_flight],
            "erase_in_ats": self.ats_records(),
        }


class Eraser:
    def __init__(
        self,
        store: DeliveryStore,
        pseudonyms: Pseudonyms,
        *,
        lease_wait_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.redis = store.redis
        self.pseudonyms = pseudonyms
        self.lease_wait_s = lease_wait_s
        self.clock = clock

    async def erase(self, email: str) -> ErasureReport:
        digest = await self.pseudonyms.email(email)
        index = email_index_key(digest)
        now = self.clock()
        report = ErasureReport(subject=digest[:16], erased_at=now)
        ids = sorted(i.decode() for i in await awaited(self.redis.smembers(index)))
        roots = await self.store.get_many(ids)
        for delivery in roots:
            report.deliveries.append(await self._erase_one(delivery.id, now))
        for child_id in await self._actions_on(roots):
            report.deliveries.append(await self._erase_one(child_id, now))
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(tombstone_key(digest), mapping={"at": now, "deliveries": len(report.deliveries)})
        pipe.hincrby(tombstone_key(digest), "requests", 1)
        pipe.delete(index)
        if report.deliveries:
            pipe.hincrby(PURGED_METRIC, "erasure", len(report.deliveries))
        await pipe.execute()
        log.info(
            "candidate.erased",
            subject=report.subject,
            deliveries=len(report.deliveries),
            blobs_deleted=sum(d.blobs_deleted for d in report.deliveries),
            stopped=sum(d.stopped for d in report.deliveries),
            in_flight=sum(d.in_flight for d in report.deliveries),
        )
        return report

    async def _actions_on(self, roots: Iterable[Delivery]) -> list[str]:
        """Action deliveries on the candidate's applications: by parent, or by the remote
        candidate/application ids they target. Actions come after their application, so only
        deliveries created since the oldest one are read."""
        roots = list(roots)
        if not roots:
            return []
        parents = {d.id for d in roots}
        remote = {
            (d.connection_id, v) for d in roots for k, v in d.checkpoints.items() if k in ("candidate", "application")
        }
        since = min(d.created_at for d in roots)
        found: list[str] = []
        offset = 0
        while True:
            ids = [
                i.decode() for i in await self.redis.zrangebyscore(IX_ALL, since, "+inf", start=offset, num=SCAN_BATCH)
            ]
            if not ids:
                return found
            offset += len(ids)
            for d in await self.store.get_many(ids):
                if d.kind != "action" or d.id in parents:
                    continue
                targets = {
                    (d.connection_id, str(v))
                    for k, v in d.action_params.items()
                    if k in ("candidate_id", "application_id")
                }
                if d.parent_id in parents or targets & remote:
                    found.append(d.id)

    async def _erase_one(self, delivery_id: str, now: float) -> ErasedDelivery:
        token = await hold_lease(self.store, delivery_id, self.lease_wait_s)
        try:
            delivery = await self.store.get(delivery_id)
            if delivery is None:  # an id a duplicate intake left in the index: nothing stored
                return ErasedDelivery(delivery_id, "unknown", "missing", "missing", "", "", {}, False)
            before = delivery.status
            stopped = before not in TERMINAL
            count = await file_count(self.store, delivery) if not delivery.payload_purged else FILE_SLACK
            move = transitions.unchanged(delivery)
            if stopped:  # a pending job is now stale: it will not run
                move = transitions.dead_letter(
                    delivery,
                    ErrorInfo(kind="erased", message="erased at the candidate's request; not delivered", at=now),
                )
            delivery.erased_at = now
            await self.store.save(delivery, move)
            blobs = await self.store.purge(delivery, count)
            await self.redis.zrem(SYNC_SET, delivery.id)  # no more status polling of an erased application
            return ErasedDelivery(
                delivery.id,
                delivery.kind,
                before,
                delivery.status,
                delivery.connection_id,
                delivery.connector,
                dict(delivery.checkpoints),
                stopped,
                in_flight=token is None,
                blobs_deleted=blobs,
            )
        finally:
            if token is not None:
                await self.store.release_lease(delivery_id, token)
