"""Mapping between vigil.ingest.v1 / vigil.registry.v1 messages and ingest's domain types, in one place."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil.registry.v1 import registry_service_pb2 as registry_pb
from vigil_ingest.domain.container import Container
from vigil_ingest.domain.signing import SegmentHeader
from vigil_ingest.domain.upload import UploadHeader
from vigil_ingest.store import DeviceFacts, UploadRecord
from vigil_kit.errors import InvalidArgument

_NS = 1_000_000_000

CONTAINERS = {pb.CONTAINER_MPEG_TS: Container.MPEG_TS, pb.CONTAINER_FMP4: Container.FMP4}
CONTAINER_ENUMS = {v: k for k, v in CONTAINERS.items()}


def ts(t: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(t.astimezone(UTC))
    return out


def ts_ns(ns: int) -> Timestamp:
    seconds, nanos = divmod(ns, _NS)
    return Timestamp(seconds=seconds, nanos=nanos)


def duration_ns(ns: int) -> Duration:
    seconds, nanos = divmod(ns, _NS)
    return Duration(seconds=seconds, nanos=nanos)


def from_ts(t: Timestamp) -> datetime:
    return t.ToDatetime(tzinfo=UTC)


def upload_header(msg: pb.SegmentHeader) -> UploadHeader:
    """The domain header of a wire header; INVALID_ARGUMENT naming the field when it cannot be one.

    Timestamp/Duration are read as integers of nanoseconds, never via floats, so the signed text of
    the start time is exactly what the device formatted.
    """
    if not msg.HasField("start_time"):
        raise InvalidArgument("header.start_time is required", field="header.start_time")
    if not msg.HasField("duration"):
        raise InvalidArgument("header.duration is required", field="header.duration")
    start, dur = msg.start_time, msg.duration
    if not 0 <= start.nanos < _NS:
        raise InvalidArgument("header.start_time.nanos must be 0..999999999", field="header.start_time")
    if (dur.seconds < 0 or dur.nanos < 0) or not -_NS < dur.nanos < _NS:
        raise InvalidArgument("header.duration must be positive", field="header.duration")
    segment = SegmentHeader(
        device_id=msg.device_id,
        sequence=msg.sequence,
        start_ns=start.seconds * _NS + start.nanos,
        duration_ns=dur.seconds * _NS + dur.nanos,
        sha256=msg.sha256,
    )
    return UploadHeader(
        segment=segment,
        container=CONTAINERS.get(msg.container),
        codec=msg.codec,
        size=msg.size,
        signature=bytes(msg.signature),
    )


def stored_segment(record: UploadRecord) -> pb.StoredSegment:
    return pb.StoredSegment(
        device_id=record.device_id,
        sequence=record.sequence,
        bucket=record.bucket,
        key=record.object_key,
        version_id=record.version_id,
        size=record.size,
        sha256=record.sha256,
        retain_until=ts(record.retain_until),
        start_time=ts_ns(record.start_ns),
        end_time=ts_ns(record.start_ns + record.duration_ns),
        container=CONTAINER_ENUMS[Container(record.container)],
        codec=record.codec,
        ingest_time=ts(record.ingest_time),
    )


def device_facts(device: registry_pb.Device) -> DeviceFacts:
    """The cache's view of a registry Device (from an event or a GetDevice answer)."""
    return DeviceFacts(
        device_id=device.device_id,
        state=registry_pb.DeviceState.Name(device.state),
        public_key=device.public_key,
        retention_days=device.retention_days,
        owner_unit_id=device.owner_unit_id,
        site_id=device.site_id,
        division_code=device.site.division_code,
        source_time=from_ts(device.update_time) if device.HasField("update_time") else None,
    )
