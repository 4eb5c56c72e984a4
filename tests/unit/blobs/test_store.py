"""app/blobs/store.py against both kinds of store: local files and a real S3 API (moto's server)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.blobs.store import TMP_DIR, BlobSettings, BlobStore, BlobUnavailable, new_name
from tests.support.s3 import BlobTarget


async def test_put_get_exists_delete(blob_target: BlobTarget) -> None:
    store = BlobStore(blob_target.settings)
    name = new_name()
    assert await store.get(name) is None and not await store.exists(name)
    await store.put(name, b"sealed bytes")
    assert await store.exists(name) and await store.get(name) == b"sealed bytes"
    await store.delete(name)
    await store.delete(name)  # idempotent
    assert await store.get(name) is None
    await store.check()


async def test_a_streamed_put_is_whole_or_absent(blob_target: BlobTarget) -> None:
    store = BlobStore(blob_target.settings)
    chunks = [os.urandom(1 << 20) for _ in range(6)]  # past S3's 5 MB multipart part

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    name = new_name()
    assert await store.put_stream(name, body()) == 6 << 20
    assert await store.get(name) == b"".join(chunks)

    async def broken() -> AsyncIterator[bytes]:
        yield chunks[0]
        raise ConnectionResetError("the client went away")

    cut = new_name()
    with pytest.raises(ConnectionResetError):
        await store.put_stream(cut, broken())
    assert not await store.exists(cut)


def test_names_say_nothing() -> None:
    names = {new_name() for _ in range(1000)}
    assert len(names) == 1000
    assert all(len(n) == 35 and n[2] == "/" and n[:2] == n[3:5] for n in names)


async def test_an_unreachable_s3_is_unavailable_not_a_crash() -> None:
    store = BlobStore(
        BlobSettings(
            url="s3://cvs/relay",
            endpoint="http://127.0.0.1:9",
            region="us-east-1",
            access_key_id="x",
            secret_access_key="y",
            timeout_s=5,
        )
    )
    with pytest.raises(BlobUnavailable) as caught:
        await store.put(new_name(), b"x")
    assert caught.value.reason == "unreachable"
    with pytest.raises(BlobUnavailable):
        await store.check()


async def test_a_missing_bucket_is_refused(s3_server: object) -> None:
    from tests.support.s3 import S3Server

    assert isinstance(s3_server, S3Server)
    store = BlobStore(s3_server.settings("no-such-bucket"))
    with pytest.raises(BlobUnavailable) as caught:
        await store.put(new_name(), b"x")
    assert caught.value.reason == "refused"


async def test_a_read_only_directory_is_refused(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    store = BlobStore(BlobSettings(url=f"file://{tmp_path}"))
    (tmp_path / TMP_DIR).chmod(0o500)
    try:
        with pytest.raises(BlobUnavailable):
            await store.check()
        with pytest.raises(BlobUnavailable):
            await store.put(new_name(), b"x")
    finally:
        (tmp_path / TMP_DIR).chmod(0o700)


def test_stale_temp_files_are_found(tmp_path: Path) -> None:
    store = BlobStore(BlobSettings(url=f"file://{tmp_path}"))
    stale = tmp_path / TMP_DIR / "ab.x1y2"
    stale.write_bytes(b"half")
    os.utime(stale, (1, 1))
    (tmp_path / TMP_DIR / "cd.fresh").write_bytes(b"writing")
    assert store.stale_temp_files(3600) == [stale]


async def test_a_directory_that_cannot_be_made_is_refused_not_a_crash_at_start(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"not a directory")
    store = BlobStore(BlobSettings(url=f"file://{tmp_path / 'file' / 'blobs'}"))
    with pytest.raises(BlobUnavailable) as caught:
        await store.check()
    assert caught.value.reason == "refused" and "blobs" in str(caught.value)
    with pytest.raises(BlobUnavailable):
        await store.put(new_name(), b"x")


async def test_a_whole_file_put_is_fsynced_in_place_readable_by_opendal_and_leaves_no_temp(tmp_path: Path) -> None:
    """fs puts bypass OpenDAL's write (app/blobs/store.write_whole_file): the blob must land where
    OpenDAL reads it, in a fan-out directory made on first use, owner-only, with nothing left in
    the staging directory; a write that fails leaves no temporary file either."""
    store = BlobStore(BlobSettings(url=f"file://{tmp_path}"))
    name = new_name()
    await store.put(name, b"sealed CV bytes" * 1000)
    assert await store.get(name) == b"sealed CV bytes" * 1000
    assert (tmp_path / name).stat().st_mode & 0o777 == 0o600
    assert list((tmp_path / TMP_DIR).iterdir()) == []
    await store.put(name, b"again")  # the same name again replaces it whole
    assert await store.get(name) == b"again"
    (tmp_path / "zz").write_bytes(b"a file where a fan-out directory should be")
    with pytest.raises(BlobUnavailable):
        await store.put("zz/" + "0" * 32, b"x")
    assert list((tmp_path / TMP_DIR).iterdir()) == []
