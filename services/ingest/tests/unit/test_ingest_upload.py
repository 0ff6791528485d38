"""The upload session state machine, storage plan, object key, retain-until, replay decisions and metadata."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from vigil_ingest import video
from vigil_ingest.domain import signing
from vigil_ingest.domain.container import Container, ContainerError
from vigil_ingest.domain.signing import SegmentHeader
from vigil_ingest.domain.upload import (
    MiB,
    Replay,
    State,
    UploadHeader,
    UploadLimits,
    UploadSession,
    decide_replay,
    header_from_metadata,
    key_time,
    object_key,
    object_metadata,
    plan_upload,
    retain_until,
)
from vigil_kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument

DEVICE = "32020501501320000001"
START = datetime(2026, 11, 28, 10, 30, 0, 40_000, tzinfo=UTC)
NOW = START + timedelta(seconds=5)


@pytest.fixture(scope="module")
def segment() -> bytes:
    return video.encode_segment(DEVICE, START, seconds=0.4, container="mpegts")


def header_for(data: bytes, *, container: Container | None = Container.MPEG_TS, **changes) -> UploadHeader:
    seg = SegmentHeader.of(
        device_id=DEVICE, sequence=7, start=START, duration=0.4, sha256=hashlib.sha256(data).hexdigest()
    )
    upload = UploadHeader(segment=seg, container=container, codec="h264", size=len(data), signature=bytes(64))
    return dataclasses.replace(upload, **changes)


def chunks(data: bytes, size: int = 64 * 1024) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def upload_all(session: UploadSession, data: bytes, size: int = 64 * 1024):
    parts = []
    for chunk in chunks(data, size):
        parts += session.chunk(chunk)
    return parts, session.finish()


def synthetic_ts(n_bytes: int) -> bytes:
    """Well-formed-enough MPEG-TS (sync bytes in place) of a size no short real clip reaches."""
    packet = b"\x47" + bytes(range(187))
    return packet * (n_bytes // 188)


# --- the happy paths ---------------------------------------------------------------------------------


def test_a_good_upload_is_accepted_as_one_put_of_exactly_the_bytes_sent(segment) -> None:
    session = UploadSession()
    plan = session.header(header_for(segment), now=NOW)
    parts, received = upload_all(session, segment, 10_000)
    assert not plan.multipart and parts == []
    assert [p.number for p in received.parts] == [1]
    assert received.parts[0].data == segment
    assert received.sha256 == hashlib.sha256(segment).hexdigest()
    assert base64.b64decode(received.sha256_b64) == hashlib.sha256(segment).digest()
    assert (received.size, received.multipart, session.state) == (len(segment), False, State.COMPLETE)


def test_a_large_upload_streams_out_as_multipart_parts_with_a_bounded_buffer() -> None:
    data = synthetic_ts(12 * MiB)
    limits = UploadLimits(single_put_max_bytes=MiB, part_bytes=5 * MiB)
    session = UploadSession(limits)
    plan = session.header(header_for(data), now=NOW)
    assert (plan.multipart, plan.part_bytes, plan.parts) == (True, 5 * MiB, 3)
    emitted, peak = [], 0
    for chunk in chunks(data, MiB):
        emitted += session.chunk(chunk)
        peak = max(peak, session._buffered)
    received = session.finish()
    parts = emitted + list(received.parts)
    assert [p.number for p in parts] == [1, 2, 3]
    assert [len(p.data) for p in parts] == [5 * MiB, 5 * MiB, len(data) - 10 * MiB]
    assert b"".join(p.data for p in parts) == data
    assert peak < 5 * MiB + MiB


def test_a_part_carries_the_checksum_s3_expects() -> None:
    session = UploadSession()
    data = synthetic_ts(188 * 10)
    session.header(header_for(data), now=NOW)
    session.chunk(data)
    part = session.finish().parts[0]
    assert part.checksum_sha256_b64() == base64.b64encode(hashlib.sha256(data).digest()).decode()


def test_a_multipart_upload_of_a_whole_number_of_parts_keeps_its_last_part_for_finish() -> None:
    part = 188 * 27_889  # the smallest whole number of TS packets S3 accepts as a part (>= 5 MiB)
    data = synthetic_ts(2 * part)
    session = UploadSession(UploadLimits(single_put_max_bytes=MiB, part_bytes=part))
    session.header(header_for(data), now=NOW)
    parts, received = upload_all(session, data, MiB)
    assert [p.number for p in parts] == [1]
    assert [(p.number, len(p.data)) for p in received.parts] == [(2, part)]
    assert b"".join(p.data for p in [*parts, *received.parts]) == data


# --- each bad input --------------------------------------------------------------------------------


def test_a_chunk_before_the_header_is_refused_as_a_missing_header(segment) -> None:
    session = UploadSession()
    with pytest.raises(InvalidArgument, match="header is missing") as caught:
        session.chunk(segment[:1000])
    assert caught.value.field == "header"


def test_a_stream_that_ends_without_a_header_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="header is missing"):
        UploadSession().finish()


def test_a_repeated_header_is_refused(segment) -> None:
    session = UploadSession()
    session.header(header_for(segment), now=NOW)
    with pytest.raises(InvalidArgument, match="already sent") as caught:
        session.header(header_for(segment), now=NOW)
    assert caught.value.field == "header"


def test_a_declared_size_over_the_maximum_is_refused(segment) -> None:
    session = UploadSession(UploadLimits(max_segment_bytes=len(segment) - 1))
    with pytest.raises(InvalidArgument, match="exceeds the maximum segment size") as caught:
        session.header(header_for(segment), now=NOW)
    assert caught.value.field == "header.size"


def test_a_chunk_over_one_mebibyte_is_refused() -> None:
    data = synthetic_ts(2 * MiB)
    session = UploadSession()
    session.header(header_for(data), now=NOW)
    with pytest.raises(InvalidArgument, match="at most 1048576 bytes") as caught:
        session.chunk(data[: MiB + 188])
    assert caught.value.field == "chunk"


def test_bytes_past_the_declared_size_are_refused(segment) -> None:
    session = UploadSession()
    session.header(header_for(segment, size=len(segment) - 188), now=NOW)
    with pytest.raises(InvalidArgument, match="past the declared size") as caught:
        upload_all(session, segment)
    assert caught.value.field == "chunk"


def test_fewer_bytes_than_declared_are_refused_as_a_size_mismatch(segment) -> None:
    session = UploadSession()
    session.header(header_for(segment, size=len(segment) + 188), now=NOW)
    with pytest.raises(InvalidArgument, match="size mismatch") as caught:
        upload_all(session, segment)
    assert caught.value.field == "header.size"


def test_bytes_that_do_not_hash_to_the_header_are_refused_under_arc_4(segment) -> None:
    tampered = bytearray(segment)
    tampered[1000] ^= 0xFF
    session = UploadSession()
    session.header(header_for(segment), now=NOW)
    with pytest.raises(InvalidArgument, match="hash mismatch") as caught:
        upload_all(session, bytes(tampered))
    assert (caught.value.field, caught.value.rule) == ("header.sha256", "ARC-4")


def test_bytes_that_are_not_the_declared_container_are_refused() -> None:
    mp4 = video.encode_segment(DEVICE, START, seconds=0.2, container="mp4")
    session = UploadSession()
    session.header(header_for(mp4, container=Container.MPEG_TS), now=NOW)
    with pytest.raises(ContainerError, match="look like fragmented MP4") as caught:
        session.chunk(mp4[:4096])
    assert (caught.value.offset, caught.value.field) == (0, "chunk")


def test_text_uploaded_as_video_is_refused() -> None:
    data = b"this is not a video\n" * 20
    session = UploadSession()
    session.header(header_for(data), now=NOW)
    with pytest.raises(ContainerError, match="not a valid MPEG-TS segment"):
        session.chunk(data)


def test_a_header_without_a_container_is_refused(segment) -> None:
    with pytest.raises(InvalidArgument) as caught:
        UploadSession().header(header_for(segment, container=None), now=NOW)
    assert caught.value.field == "header.container"


def test_a_header_with_a_malformed_codec_is_refused(segment) -> None:
    with pytest.raises(InvalidArgument) as caught:
        UploadSession().header(header_for(segment, codec="H.264 video"), now=NOW)
    assert caught.value.field == "header.codec"


def test_a_start_time_beyond_the_allowed_clock_skew_is_refused(segment) -> None:
    with pytest.raises(InvalidArgument, match="in the future") as caught:
        UploadSession().header(header_for(segment), now=START - timedelta(minutes=6))
    assert caught.value.field == "header.start_time"


def test_a_duration_over_the_maximum_is_refused(segment) -> None:
    long = dataclasses.replace(header_for(segment).segment, duration_ns=11 * 60 * 10**9)
    with pytest.raises(InvalidArgument) as caught:
        UploadSession().header(header_for(segment, segment=long), now=NOW)
    assert caught.value.field == "header.duration"


def test_a_failed_session_keeps_refusing_with_its_first_error(segment) -> None:
    session = UploadSession()
    session.header(header_for(segment, size=188), now=NOW)
    with pytest.raises(InvalidArgument, match="past the declared size") as first:
        session.chunk(segment[:376])
    with pytest.raises(InvalidArgument) as again:
        session.chunk(segment[:188])
    assert again.value is first.value
    assert session.state is State.FAILED


def test_limits_refuse_parts_smaller_than_s3_allows() -> None:
    with pytest.raises(ValueError, match="5 MiB"):
        UploadLimits(part_bytes=MiB)


# --- plan, key, retention ----------------------------------------------------------------------------


def test_segments_up_to_the_threshold_go_up_as_one_put_and_larger_ones_as_multipart() -> None:
    limits = UploadLimits()
    assert not plan_upload(8 * MiB, limits).multipart
    plan = plan_upload(8 * MiB + 1, limits)
    assert (plan.multipart, plan.part_bytes, plan.parts) == (True, 8 * MiB, 2)


def test_the_part_size_grows_so_that_no_upload_needs_more_than_10000_parts() -> None:
    plan = plan_upload(100_000 * MiB, UploadLimits())
    assert plan.parts <= 10_000 and plan.part_bytes >= 8 * MiB


def test_the_object_key_follows_the_documented_layout() -> None:
    seg = SegmentHeader.of(device_id=DEVICE, sequence=42, start=START, duration=2, sha256="0" * 64)
    assert object_key(seg, Container.MPEG_TS) == f"segments/{DEVICE}/2026/11/28/20261128T103000.040Z-42.ts"
    assert object_key(seg, Container.FMP4).endswith("/20261128T103000.040Z-42.mp4")


def test_the_key_truncates_to_milliseconds_so_its_date_is_the_start_date() -> None:
    seg = SegmentHeader(
        device_id=DEVICE,
        sequence=1,
        start_ns=1_798_761_599 * 10**9 + 999_999_999,
        duration_ns=1,
        sha256="0" * 64,
    )
    assert seg.start_time_text == "2026-12-31T23:59:59.999999999Z"
    assert object_key(seg, Container.MPEG_TS) == f"segments/{DEVICE}/2026/12/31/20261231T235959.999Z-1.ts"
    assert key_time(seg.start_ns) == "20261231T235959.999Z"


def test_retain_until_counts_the_devices_retention_from_the_start_time() -> None:
    seg = SegmentHeader.of(device_id=DEVICE, sequence=1, start=START, duration=2, sha256="0" * 64)
    # 10:30:00.040 + 30 days, rounded up to the whole second.
    assert retain_until(seg, 30, now=NOW) == datetime(2026, 12, 28, 10, 30, 1, tzinfo=UTC)


def test_retain_until_allows_fractional_days() -> None:
    seg = SegmentHeader.of(
        device_id=DEVICE, sequence=1, start=START.replace(microsecond=0), duration=2, sha256="0" * 64
    )
    assert retain_until(seg, 0.5, now=NOW) == datetime(2026, 11, 28, 22, 30, tzinfo=UTC)


def test_retain_until_never_falls_before_now_plus_the_margin() -> None:
    seg = SegmentHeader.of(device_id=DEVICE, sequence=1, start=START, duration=2, sha256="0" * 64)
    late = START + timedelta(days=45)
    assert retain_until(seg, 30, now=late) == late.replace(microsecond=0) + timedelta(hours=1, seconds=1)


@pytest.mark.parametrize("days", [None, 0, -1, float("nan"), float("inf")])
def test_a_device_without_a_resolved_retention_cannot_be_stored(days) -> None:
    seg = SegmentHeader.of(device_id=DEVICE, sequence=1, start=START, duration=2, sha256="0" * 64)
    with pytest.raises(FailedPrecondition) as caught:
        retain_until(seg, days, now=NOW)
    assert caught.value.rule == "ARC-1"


# --- idempotency -------------------------------------------------------------------------------------


def test_an_unseen_sequence_is_new() -> None:
    seg = SegmentHeader.of(device_id=DEVICE, sequence=1, start=START, duration=2, sha256="a" * 64)
    assert decide_replay(seg, None) is Replay.NEW


def test_the_same_sequence_with_the_same_hash_is_a_replay() -> None:
    seg = SegmentHeader.of(device_id=DEVICE, sequence=1, start=START, duration=2, sha256="a" * 64)
    assert decide_replay(seg, "a" * 64) is Replay.REPLAY


def test_the_same_sequence_with_another_hash_is_refused_under_arc_4() -> None:
    seg = SegmentHeader.of(device_id=DEVICE, sequence=1, start=START, duration=2, sha256="a" * 64)
    with pytest.raises(AlreadyExists, match="immutable") as caught:
        decide_replay(seg, "b" * 64)
    assert (caught.value.rule, caught.value.field) == ("ARC-4", "header.sequence")


# --- metadata ----------------------------------------------------------------------------------------


def test_the_object_metadata_restores_a_header_whose_signature_still_verifies() -> None:
    key = signing.generate_device_key()
    seg = SegmentHeader(
        device_id=DEVICE,
        sequence=9,
        start_ns=1_795_861_800_123_456_789,
        duration_ns=1_999_999_999,
        sha256="c" * 64,
    )
    upload = UploadHeader(seg, Container.FMP4, "h264", 1234, signing.sign(key.private_key, seg))
    metadata = object_metadata(upload)
    assert all(k.startswith("x-amz-meta-vigil-") and v.isascii() for k, v in metadata.items())
    as_delivered = {k.title(): v for k, v in metadata.items()}  # HTTP may change the case of header names
    restored = header_from_metadata(as_delivered)
    assert restored == upload
    signing.verify(key.public_key_b64, restored.segment, restored.signature)


def test_metadata_without_a_header_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="does not hold a segment header"):
        header_from_metadata({"x-amz-meta-other": "1"})
