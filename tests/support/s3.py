"""A real S3 API for the session: moto's server mode (`moto[server]`, the [test] extra) on a free
loopback port, since MinIO's server is not installable here. Tests that need it skip, saying why,
where it cannot start. `blob_store_settings` is parametrised over both kinds of blob store."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.blobs.store import BlobSettings
from app.redis.embedded import free_port

ACCESS_KEY, SECRET_KEY, REGION = "testing", "testing", "us-east-1"


@dataclass
class S3Server:
    endpoint: str
    client: Any  # boto3's S3 client, to create buckets and read raw objects

    def new_bucket(self) -> str:
        bucket = "cvs-" + secrets.token_hex(6)
        self.client.create_bucket(Bucket=bucket)
        return bucket

    def settings(self, bucket: str, prefix: str = "relay") -> BlobSettings:
        return BlobSettings(
            url=f"s3://{bucket}/{prefix}",
            endpoint=self.endpoint,
            region=REGION,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            timeout_s=10.0,
        )

    def objects(self, bucket: str) -> dict[str, bytes]:
        """Every object in the bucket, raw (key → bytes)."""
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                found[item["Key"]] = self.client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - the [test] extra has it
        pytest.skip(f"moto[server] is not installed ({exc}): no S3 API to test against")
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's server logs every request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        server.start()
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"moto's S3 server did not start on 127.0.0.1:{port}: {exc}")
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY, region_name=REGION
    )
    yield S3Server(endpoint, client)
    server.stop()


@dataclass
class BlobTarget:
    """One blob store under test and a way to read everything it holds, raw."""

    kind: str
    settings: BlobSettings
    raw: Any  # () -> dict[str, bytes]
    prefix: str = ""  # what the raw keys carry before a blob's name (S3: the URL's prefix)

    def names(self) -> set[str]:
        """The blob names the store holds (as app/blobs names them), without the staging dir."""
        return {k.removeprefix(self.prefix) for k in self.raw() if not k.startswith(".tmp")}


@pytest.fixture(params=["file", "s3"])
def blob_target(request: pytest.FixtureRequest, tmp_path: Path) -> BlobTarget:
    if request.param == "file":
        root = tmp_path / "blobs"

        def files() -> dict[str, bytes]:
            return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

        return BlobTarget("file", BlobSettings(url=f"file://{root}"), files)
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    return BlobTarget("s3", server.settings(bucket), lambda: server.objects(bucket), prefix="relay/")
