"""CVs out of Redis (issue 20): the relay end to end with its attachment bytes in a blob store,
local files and a real S3 API (moto's server), both."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.blobs.store import file_blob_name
from app.core.model import stored_decoder
from app.delivery.record import Delivery
from app.delivery.staging import Stager
from app.delivery.store import unpack_payload
from app.privacy import retention
from app.redis.embedded import free_port
from connectors.sandbox.flatchr import COMPANY_ID
from tests.support.builders import DOCX_BYTES, PDF_BYTES, application, b64, connection_table
from tests.support.emulators import EmulatorFactory
from tests.support.harness import DATA_KEY, REPO, Relay, blob_env, config_toml
from tests.support.old_formats import to_old_format
from tests.support.s3 import BlobTarget

CV = PDF_BYTES + b"% the only copy of Zoe's CV\n" * 40
PEOPLE = [("Zoë", "Van der Berg-Ñúñez", "zoe.vdb@example.org"), ("Jeanne", "Martin", "jeanne.martin@example.fr")]


def _cv(name: str = "cv.pdf") -> dict[str, Any]:
    return {"name": name, "type": "CV", "content_type": "application/pdf", "data": b64(CV)}


def _candidate(first: str, last: str, email: str) -> dict[str, Any]:
    return {"first_name": first, "last_name": last, "email_address": email, "phone_number": "+34 612 345 678"}


CONNECTORS: dict[str, Callable[[str], tuple[dict[str, Any], dict[str, Any]]]] = {
    # connector → (its connection table for the emulator's URL, an application with a CV)
    "factorial": lambda url: (
        connection_table("factorial", url),
        {"application": {"job_id": "2001"}, "attachments": [_cv()], "screening_question_answers": []},
    ),
    "flatchr": lambda url: (
        connection_table("flatchr", url, company_id=COMPANY_ID),
        {
            "application": {"job_id": "Vq5r6pYxam9AmMvP"},
            "attachments": [_cv()],
            "screening_question_answers": [
                {"question_id": "q7Hd2LmQx9aB3cTe", "answer": "L'équipe"},
                {"question_id": "q2Kp8ZrW4nYv6JsU", "answer": False},
            ],
        },
    ),
    # Laura takes no files: with drop_attachments the CV is stored, then dropped with a warning
    "laura": lambda url: (
        connection_table("laura", url, drop_attachments=True),
        {
            "application": {"job_id": "101"},
            "attachments": [_cv()],
            "screening_question_answers": [
                {"question_id": "501", "answer": True},
                {"question_id": "502", "answer": ["1", "2"]},
                {"question_id": "503", "answer": "12"},
                {"question_id": "504", "answer": "Family lives there"},
                {"question_id": "505", "answer": 6},
                {"question_id": "506", "answer": "2027-02-01"},
                {"question_id": "507", "answer": "Happy to relocate."},
            ],
        },
    ),
    "otys": lambda url: (
        connection_table("otys", url),
        {"application": {"job_id": "a1b2c3d4e5f60718293a4b5c6d7e8f90"}, "attachments": [_cv()]},
    ),
}


def _files_received(records: dict[str, Any]) -> list[dict[str, Any]]:
    return list(records.get("files", []))


def _relay(make_relay: Callable[..., Relay], target: BlobTarget, table: dict[str, Any], **kw: Any) -> Relay:
    return make_relay({"acme": table}, blobs=target.settings, **kw)


def _body(extra: dict[str, Any], person: tuple[str, str, str] = PEOPLE[0]) -> dict[str, Any]:
    return {"connection_id": "acme", "candidate": _candidate(*person), **extra}


@pytest.mark.parametrize("connector", sorted(CONNECTORS))
async def test_a_cv_reaches_each_ats_through_the_blob_store(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, blob_target: BlobTarget, connector: str
) -> None:
    ats = emulator(connector)
    table, extra = CONNECTORS[connector](ats.url)
    relay = _relay(make_relay, blob_target, table)
    response = await relay.post(_body(extra))
    assert response.status_code == 202, response.text
    delivery_id = response.json()["id"]

    # Redis holds no file key: the sha256 in the (sealed) payload, the bytes in the delivery's blob
    assert not await relay.redis.keys("ar:f:*")
    assert blob_target.names() == {file_blob_name(delivery_id, 0)}
    payload = stored_decoder.decode(await relay.store.load_payload(delivery_id))
    assert payload.attachments[0].sha256 == hashlib.sha256(CV).hexdigest()
    assert await relay.redis.zcard("ar:blobs:pending") == 0  # cleared by the transaction that keeps the blob
    assert await relay.store.load_file(delivery_id, 0) == CV

    await relay.start_worker()
    delivery = await relay.wait_for(delivery_id, "delivered")
    if connector == "laura":
        assert "attachment_dropped" in {w["code"] for w in delivery["warnings"]}
    else:
        [received] = _files_received(ats.records())
        assert received["sha256"] == hashlib.sha256(CV).hexdigest()
    assert delivery["files_purged"] is True
    assert blob_target.raw() == {} or set(blob_target.raw()) <= {".tmp"}  # dropped once the ATS confirmed it
    assert not await relay.redis.keys("ar:f:*")


async def test_nothing_readable_at_rest_in_the_blob_store(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, blob_target: BlobTarget
) -> None:
    factorial = emulator("factorial")
    relay = _relay(make_relay, blob_target, connection_table("factorial", factorial.url))
    for person in PEOPLE:
        body = application(candidate=_candidate(*person), attachments=[_cv(f"{person[0]} CV.pdf")])
        body["attachments"].append({"name": "letter.docx", "type": "COVER_LETTER", "data": b64(DOCX_BYTES)})
        response = await relay.post(body)
        assert response.status_code == 202, response.text
    stored = blob_target.raw()
    assert len(stored) == 2 * 3  # CV, letter, the answer's file: for each
    needles = [CV[:64], CV[-64:], PDF_BYTES[:32], DOCX_BYTES[:48]]
    for first, last, email in PEOPLE:
        needles += [n.encode() for n in (first, last, email, email.split("@")[0])]
    for name, raw in stored.items():
        assert raw[:1] == b"\x01"  # sealed (app/privacy/crypto.py)
        for needle in needles:
            assert needle not in raw and needle not in name.encode(), (name, needle[:20])


async def test_erasure_and_retention_delete_the_blobs(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, blob_target: BlobTarget
) -> None:
    factorial = emulator("factorial")
    relay = _relay(make_relay, blob_target, connection_table("factorial", factorial.url))
    erased = await relay.post(application(attachments=[_cv()]))
    kept = await relay.post(application(candidate=_candidate(*PEOPLE[1]), attachments=[_cv()]))
    assert len(blob_target.raw()) == 4  # each: the CV and the answer's file

    response = await relay.client.post("/v1/erasure", json={"email": PEOPLE[0][2]}, headers=relay.admin)
    assert response.status_code == 200, response.text
    assert response.json()["blobs_deleted"] == 2
    assert len(blob_target.raw()) == 2
    assert await relay.store.load_file(erased.json()["id"], 0) is None

    # the other one dead-letters (its connection refuses it), and retention purges it later
    factorial.faults(error_rate=1.0, error_status=422, path_regex=r"/ats/candidates$")
    await relay.start_worker()
    await relay.wait_for(kept.json()["id"], "failed")
    policy = retention.RetentionPolicy(keep_delivered_s=1, keep_dead_letters_s=1)
    purged = await retention.sweep(relay.store, policy, now=time.time() + 10)
    assert purged["dead_letter"] == 1
    assert blob_target.raw() == {}


async def test_an_orphan_of_a_killed_web_process_is_swept(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, blob_target: BlobTarget
) -> None:
    """kill -9 between the blob write and the Redis transaction: no delivery, an orphan blob
    (noted pending), which the sweep deletes; a referenced blob it keeps."""
    factorial = emulator("factorial")
    relay = _relay(make_relay, blob_target, connection_table("factorial", factorial.url))
    script = (
        "import asyncio, sys\n"
        "from redis.asyncio import Redis\n"
        "from app.blobs.store import open_store\n"
        "from app.delivery.store import DeliveryStore\n"
        "from app.privacy.crypto import AesGcmSealer, parse_keys\n"
        "from app.settings import _blobs\n"
        "import os\n"
        "async def main():\n"
        "    sealer = AesGcmSealer(parse_keys(os.environ['APPLYRELAY_DATA_KEY']))\n"
        "    redis = Redis.from_url(os.environ['REDIS_URL'])\n"
        "    store = DeliveryStore(redis, sealer=sealer, blobs=open_store(_blobs(os.environ)))\n"
        "    await store._write_blobs('dlv_killed', [(0, b'%PDF-1.4 a CV')])\n"
        "    print('written', flush=True)\n"
        "    await asyncio.sleep(60)  # the Redis transaction would run here\n"
        "asyncio.run(main())\n"
    )
    env = {
        "REDIS_URL": relay.redis_url,
        "APPLYRELAY_DATA_KEY": DATA_KEY,
        "PYTHONPATH": str(REPO),
        "PATH": "/usr/bin:/bin",
        **blob_env(blob_target.settings),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    assert await asyncio.wait_for(process.stdout.readline(), 30) == b"written\n"
    process.send_signal(signal.SIGKILL)
    await process.wait()

    assert len(blob_target.raw()) == 1 and await relay.redis.zcard("ar:blobs:pending") == 1
    assert not await relay.redis.keys("ar:d:*") and not await relay.redis.keys("ar:f:*")
    live = await relay.post(application(attachments=[_cv()], screening_question_answers=[]))
    # as if a web process died after the transaction but before clearing its pending entry
    live_id = live.json()["id"]
    await relay.redis.zadd("ar:blobs:pending", {f"{file_blob_name(live_id, 0)} ar:f:{live_id}:0": 1})
    assert len(blob_target.raw()) == 2

    assert await relay.store.sweep_orphans(older_than_s=0) == 1
    assert len(blob_target.raw()) == 1 and await relay.redis.zcard("ar:blobs:pending") == 0
    assert await relay.store.load_file(live.json()["id"], 0) == CV  # the referenced one is kept


@pytest.mark.slow
async def test_a_worker_killed_mid_upload_delivers_once(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, blob_target: BlobTarget
) -> None:
    factorial = emulator("factorial")
    relay = _relay(make_relay, blob_target, connection_table("factorial", factorial.url), job_timeout_s=3.0)
    response = await relay.post(application(attachments=[_cv()], screening_question_answers=[]))
    delivery_id = response.json()["id"]
    factorial.faults(latency_ms=1500, path_regex=r"/ats/applications/[^/]+$")  # the CV's upload
    worker = relay.spawn_worker()
    await relay.wait_for(delivery_id, "delivering", "delivered", until=lambda d: "application" in d["checkpoints"])
    relay.kill(worker)  # the upload is in flight
    factorial.faults()
    await relay.start_worker()
    delivery = await relay.wait_for(delivery_id, "delivered", timeout=60)
    assert len(factorial.records()["applications"]) == 1
    assert [f["sha256"] for f in _files_received(factorial.records())] == [hashlib.sha256(CV).hexdigest()]
    assert delivery["files_purged"] is True and blob_target.raw() == {}


async def test_deliveries_stored_before_the_blob_store_are_delivered_retried_erased_and_migrated(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, blob_target: BlobTarget, tmp_path: Any
) -> None:
    factorial = emulator("factorial")
    relay = _relay(make_relay, blob_target, connection_table("factorial", factorial.url))
    people = [
        ("Ada", "Old", "ada.old@example.org"),
        ("Bea", "Old", "bea.old@example.org"),
        *PEOPLE[:1],
        ("Cai", "Ref", "cai.ref@example.org"),
        ("Dee", "Ref", "dee.ref@example.org"),
    ]
    ids = []
    for n, person in enumerate(people):
        response = await relay.post(
            application(candidate=_candidate(*person), attachments=[_cv()], screening_question_answers=[])
        )
        ids.append(response.json()["id"])
        # the first three as before the blob store (bytes in Redis), the others as the first
        # blob-store release stored them (a file key naming a random blob)
        assert await to_old_format(relay, ids[-1], as_ref=n >= 3) == 1
    assert len(blob_target.raw()) == 2 and not {file_blob_name(i, 0) for i in ids} & blob_target.names()
    retried, erased, migrated, migrated_ref, erased_ref = ids
    # and one payload as it was sealed before payloads were deflated
    sealer = relay.store.sealer
    raw = await relay.store.load_payload(retried)
    await relay.redis.set(f"ar:p:{retried}", sealer.seal(raw))
    assert unpack_payload(sealer.open(await relay.redis.get(f"ar:p:{migrated}"))) != sealer.open(
        await relay.redis.get(f"ar:p:{migrated}")
    )  # the others are deflated

    # erased: its bytes in Redis go, and the blob its file key names (counted)
    response = await relay.client.post("/v1/erasure", json={"email": people[1][2]}, headers=relay.admin)
    assert response.json()["deliveries_erased"] == 1 and not await relay.redis.keys(f"ar:f:{erased}:*")
    response = await relay.client.post("/v1/erasure", json={"email": people[4][2]}, headers=relay.admin)
    assert response.json()["blobs_deleted"] == 1 and not await relay.redis.keys(f"ar:f:{erased_ref}:*")
    assert len(blob_target.raw()) == 1

    # migrated, by the command, twice (idempotent), while the others stay as they are
    env = {**relay.env, "REDIS_URL": relay.redis_url, "APPLYRELAY_DATA_KEY": DATA_KEY, "PYTHONPATH": str(REPO)}
    env |= {"APPLYRELAY_ADMIN_TOKEN": "x", "APPLYRELAY_CONFIG": str(tmp_path / "applyrelay.toml"), "PATH": "/usr/bin"}
    (tmp_path / "applyrelay.toml").write_text(config_toml(relay.connections))
    env |= blob_env(blob_target.settings)
    factorial.faults(error_rate=1.0, error_status=422, path_regex=r"/ats/candidates$")
    await relay.start_worker()
    for delivery_id in (retried, migrated, migrated_ref):
        await relay.wait_for(delivery_id, "failed")
    outputs = []
    for _ in range(2):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "app.cli", "blobs", "migrate", env=env, cwd=REPO, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
        outputs.append(out.decode())
    assert "moved 3 files" in outputs[0] and "moved 0 files" in outputs[1], outputs
    assert not await relay.redis.keys("ar:f:*")  # no per-file key left (bench P5)
    assert blob_target.names() == {file_blob_name(i, 0) for i in (retried, migrated, migrated_ref)}

    # retried by an operator after the ATS accepts again: all arrive, the CV whole
    factorial.faults()
    await to_old_format(relay, retried)  # one still in the old format when it is retried
    for delivery_id in (retried, migrated, migrated_ref):
        response = await relay.client.post(f"/v1/deliveries/{delivery_id}/retry", headers=relay.admin)
        assert response.status_code in (200, 202), response.text
        await relay.wait_for(delivery_id, "delivered")
    files = _files_received(factorial.records())
    assert [f["sha256"] for f in files] == [hashlib.sha256(CV).hexdigest()] * 3
    assert blob_target.raw() == {} and not await relay.redis.keys("ar:f:*")


async def test_a_large_cv_is_sealed_and_written_in_pieces(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, blob_target: BlobTarget
) -> None:
    """Past 4 MB a file is sealed and streamed to the store (S3: a multipart upload), same layout."""
    factorial = emulator("factorial")
    relay = _relay(make_relay, blob_target, connection_table("factorial", factorial.url))
    large = PDF_BYTES + os.urandom(6 << 20)
    response = await relay.post(
        application(
            attachments=[{"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(large)}],
            screening_question_answers=[],
        )
    )
    assert response.status_code == 202, response.text
    [raw] = blob_target.raw().values()
    assert raw[:1] == b"\x01" and len(raw) == len(large) + 1 + 4 + 12 + 16 and large[-64:] not in raw
    assert await relay.store.load_file(response.json()["id"], 0) == large
    await relay.start_worker()
    await relay.wait_for(response.json()["id"], "delivered")
    [received] = _files_received(factorial.records())
    assert received["sha256"] == hashlib.sha256(large).hexdigest()


@pytest.mark.slow
async def test_a_web_process_killed_between_the_blob_and_the_transaction_leaves_only_an_orphan(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, blob_target: BlobTarget
) -> None:
    """A real `applyrelay web`, killed with SIGKILL while its CV is in the store and its Redis
    transaction is held back (CLIENT PAUSE WRITE): no delivery without its file, the orphan swept."""
    factorial = emulator("factorial")
    relay = _relay(make_relay, blob_target, connection_table("factorial", factorial.url))
    port = free_port()
    web = relay.spawn_web(port)
    large = PDF_BYTES + os.urandom(8 << 20)  # sealing and writing it takes long enough to step in
    body = application(
        attachments=[{"name": "cv.pdf", "type": "CV", "content_type": "application/pdf", "data": b64(large)}],
        screening_question_answers=[],
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=relay.admin, timeout=60) as client:
        for _ in range(200):
            try:
                if (await client.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        posting = asyncio.create_task(client.post("/v1/applications", json=body))
        try:
            for _ in range(20_000):  # the blob is being written once it is noted pending
                if await relay.redis.zcard("ar:blobs:pending"):
                    break
                await asyncio.sleep(0.001)
            await relay.redis.execute_command("CLIENT", "PAUSE", "20000", "WRITE")  # the transaction waits
            for _ in range(2000):
                if [k for k in blob_target.raw() if not k.startswith(".tmp")]:
                    break  # fsynced and renamed into place
                await asyncio.sleep(0.01)
            web.send_signal(signal.SIGKILL)
            web.wait(timeout=10)
        finally:
            await relay.redis.execute_command("CLIENT", "UNPAUSE")
        with pytest.raises(httpx.TransportError):
            await posting
    assert not await relay.redis.keys("ar:d:*") and not await relay.redis.keys("ar:f:*")
    assert len(blob_target.raw()) == 1  # the orphan
    assert await relay.store.sweep_orphans(older_than_s=0) == 1
    assert blob_target.raw() == {} and await relay.redis.zcard("ar:blobs:pending") == 0


async def test_a_form_file_streamed_to_the_store_is_moved_to_its_delivery_or_swept(
    make_relay: Callable[..., Relay], emulator: EmulatorFactory, blob_target: BlobTarget
) -> None:
    """The form route's files (app/delivery/staging.py): sealed and written under a staging name
    while they arrive, moved to the delivery's own name by intake (S3: a server-side copy), and
    swept like any orphan when the web process dies before its Redis transaction."""
    factorial = emulator("factorial")
    relay = _relay(make_relay, blob_target, connection_table("factorial", factorial.url))
    stager = Stager(relay.redis, relay.blobs, relay.store.sealer)
    large = PDF_BYTES + os.urandom(3 << 20)
    sink = await stager.open()
    for start in range(0, len(large), 65_536):
        await sink.write(large[start : start + 65_536])
    staged = await stager.close(sink)
    assert staged.size == len(large) and staged.sha256 == hashlib.sha256(large).hexdigest()
    assert not staged.whole and len(staged.head) + len(staged.tail) < 100_000  # a PDF: its ends only
    [raw] = [r for n, r in blob_target.raw().items() if not n.startswith(".tmp")]
    assert raw[:1] == b"\x01" and large[-64:] not in raw  # sealed on its way in

    delivery = Delivery(
        id="dlv_form",
        connection_id="acme",
        connector="factorial",
        status="queued",
        created_at=1.0,
        updated_at=1.0,
        idempotency_key_hash="form",
        channel="form",
    )
    assert (await relay.store.create(delivery, b"payload", [staged], "form")).created
    assert staged.moved and blob_target.names() == {file_blob_name("dlv_form", 0)}
    assert await relay.store.load_file("dlv_form", 0) == large
    assert await relay.redis.zcard("ar:blobs:pending") == 0
    await stager.discard()  # what the route does after any post: a moved file stays
    assert await relay.store.load_file("dlv_form", 0) == large

    # a web process killed mid-post: its staged file is noted pending, and swept
    crashed = Stager(relay.redis, relay.blobs, relay.store.sealer)
    sink = await crashed.open()
    await sink.write(PDF_BYTES)
    await crashed.close(sink)
    assert len(blob_target.names()) == 2
    assert await relay.store.sweep_orphans(older_than_s=0) == 1
    assert blob_target.names() == {file_blob_name("dlv_form", 0)}
