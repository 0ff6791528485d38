"""Bucket bootstrap on the S3 server: versioned, object-locked, no default retention, idempotent."""

from __future__ import annotations

import uuid

import pytest
from minio import Minio
from minio.versioningconfig import ENABLED
from pydantic import SecretStr

from vigil_kit import objectstore
from vigil_kit.settings import ServiceSettings


@pytest.fixture
def client(s3_server) -> Minio:
    settings = ServiceSettings(
        service_name="test",
        s3_endpoint=s3_server.address,
        s3_access_key=SecretStr("k"),
        s3_secret_key=SecretStr("s"),
    )
    return objectstore.make_minio(settings)


async def test_bootstrap_creates_versioned_lock_enabled_buckets(client: Minio) -> None:
    names = [f"vigil-test-{uuid.uuid4().hex[:8]}", f"vigil-test-{uuid.uuid4().hex[:8]}"]
    assert await objectstore.bootstrap_buckets(client, names) == names
    for name in names:
        assert client.get_bucket_versioning(name).status == ENABLED
        lock = client.get_object_lock_config(name)
        assert lock.mode is None and lock.duration is None  # objects carry their own retention


async def test_bootstrap_twice_creates_nothing_the_second_time(client: Minio) -> None:
    names = [f"vigil-test-{uuid.uuid4().hex[:8]}"]
    await objectstore.bootstrap_buckets(client, names)
    assert await objectstore.bootstrap_buckets(client, names) == []
    assert client.get_bucket_versioning(names[0]).status == ENABLED


async def test_a_bucket_without_object_lock_is_reported(client: Minio) -> None:
    name = f"vigil-test-{uuid.uuid4().hex[:8]}"
    client.make_bucket(name)
    with pytest.raises(objectstore.BucketSetupError, match="object lock"):
        await objectstore.bootstrap_buckets(client, [name])


async def test_default_buckets_are_segments_and_evidence(client: Minio) -> None:
    await objectstore.bootstrap_buckets(client)
    assert client.bucket_exists(objectstore.SEGMENTS_BUCKET) and client.bucket_exists(
        objectstore.EVIDENCE_BUCKET
    )


def test_the_client_keeps_as_many_connections_alive_as_the_settings_say(s3_server) -> None:
    settings = ServiceSettings(service_name="t", s3_endpoint=s3_server.address, s3_connections=48)
    client = objectstore.make_minio(settings)
    # More S3 calls in flight than minio's default pool of 10 each reuse a kept-alive connection.
    assert client._http.connection_pool_kw["maxsize"] == 48
    assert client.bucket_exists("no-such-bucket-here") is False
