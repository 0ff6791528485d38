import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from vigil.common.v1 import identity_pb2 as _identity_pb2
from vigil.ingest.v1 import ingest_service_pb2 as _ingest_service_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SegmentIngested(_message.Message):
    __slots__ = ("device_id", "sequence", "start_time", "end_time", "duration", "bucket", "key", "version_id", "size", "sha256", "codec", "container", "retain_until", "retention_days", "signature", "owner_unit_id", "ingest_time", "uploader")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    RETAIN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    OWNER_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    INGEST_TIME_FIELD_NUMBER: _ClassVar[int]
    UPLOADER_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    sequence: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    bucket: str
    key: str
    version_id: str
    size: int
    sha256: str
    codec: str
    container: _ingest_service_pb2.Container
    retain_until: _timestamp_pb2.Timestamp
    retention_days: float
    signature: bytes
    owner_unit_id: str
    ingest_time: _timestamp_pb2.Timestamp
    uploader: _identity_pb2.Principal
    def __init__(self, device_id: _Optional[str] = ..., sequence: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., bucket: _Optional[str] = ..., key: _Optional[str] = ..., version_id: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., codec: _Optional[str] = ..., container: _Optional[_Union[_ingest_service_pb2.Container, str]] = ..., retain_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., retention_days: _Optional[float] = ..., signature: _Optional[bytes] = ..., owner_unit_id: _Optional[str] = ..., ingest_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uploader: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class AlarmRaised(_message.Message):
    __slots__ = ("alarm", "reporter")
    ALARM_FIELD_NUMBER: _ClassVar[int]
    REPORTER_FIELD_NUMBER: _ClassVar[int]
    alarm: _ingest_service_pb2.Alarm
    reporter: _identity_pb2.Principal
    def __init__(self, alarm: _Optional[_Union[_ingest_service_pb2.Alarm, _Mapping]] = ..., reporter: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...
