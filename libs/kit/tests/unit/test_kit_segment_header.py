"""vigil_kit.segment_header: the shared signed-header code is ingest's, and the metadata codec round-trips."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from vigil_kit import segment_header as sh
from vigil_kit.errors import InvalidArgument, Unauthenticated


def _upload(key: sh.DeviceKey) -> sh.UploadHeader:
    segment = sh.SegmentHeader.of(
        device_id="32020501501320000001",
        sequence=9,
        start=datetime(2026, 11, 28, 10, 30, 0, 40_000, tzinfo=UTC),
        duration=timedelta(seconds=2),
        sha256=hashlib.sha256(b"bytes").hexdigest(),
    )
    return sh.UploadHeader(
        segment=segment,
        container=sh.Container.MPEG_TS,
        codec="h264",
        size=5,
        signature=sh.sign(key.private_key, segment),
    )


def test_the_published_vector_verifies_with_the_shared_code() -> None:
    vector = sh.SegmentHeader(
        device_id="32020501501320000001",
        sequence=42,
        start_ns=1_795_861_800 * 10**9 + 40_000_000,
        duration_ns=2 * 10**9,
        sha256=hashlib.sha256(b"").hexdigest(),
    )
    assert vector.canonical_bytes() == sh.TEST_VECTOR_CANONICAL
    sh.verify(sh.TEST_VECTOR_PUBLIC_KEY_B64, vector, base64.b64decode(sh.TEST_VECTOR_SIGNATURE_B64))


def test_stored_metadata_restores_a_header_whose_signature_still_verifies() -> None:
    key = sh.generate_device_key()
    upload = _upload(key)
    restored = sh.header_from_metadata({k.upper(): v for k, v in sh.object_metadata(upload).items()})
    assert restored == upload
    sh.verify(key.public_key_b64, restored.segment, restored.signature)


def test_a_restored_header_does_not_verify_under_another_key() -> None:
    restored = sh.header_from_metadata(sh.object_metadata(_upload(sh.generate_device_key())))
    with pytest.raises(Unauthenticated):
        sh.verify(sh.generate_device_key().public_key_b64, restored.segment, restored.signature)


def test_metadata_without_a_header_is_refused_naming_the_metadata() -> None:
    with pytest.raises(InvalidArgument) as caught:
        sh.header_from_metadata({"content-type": "video/mp2t"})
    assert caught.value.field == "metadata"


def test_ingest_keeps_its_names_for_the_same_objects() -> None:
    ingest_signing = pytest.importorskip("vigil_ingest.domain.signing")
    ingest_upload = pytest.importorskip("vigil_ingest.domain.upload")
    ingest_container = pytest.importorskip("vigil_ingest.domain.container")
    assert ingest_signing.SegmentHeader is sh.SegmentHeader and ingest_signing.verify is sh.verify
    assert ingest_upload.UploadHeader is sh.UploadHeader
    assert ingest_upload.object_metadata is sh.object_metadata
    assert ingest_upload.header_from_metadata is sh.header_from_metadata
    assert ingest_container.Container is sh.Container
