import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Container(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTAINER_UNSPECIFIED: _ClassVar[Container]
    CONTAINER_MPEG_TS: _ClassVar[Container]
    CONTAINER_FMP4: _ClassVar[Container]

class AlarmKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALARM_KIND_UNSPECIFIED: _ClassVar[AlarmKind]
    ALARM_KIND_MOTION: _ClassVar[AlarmKind]
    ALARM_KIND_TAMPER: _ClassVar[AlarmKind]
    ALARM_KIND_VIDEO_LOSS: _ClassVar[AlarmKind]
    ALARM_KIND_STORAGE_FULL: _ClassVar[AlarmKind]
CONTAINER_UNSPECIFIED: Container
CONTAINER_MPEG_TS: Container
CONTAINER_FMP4: Container
ALARM_KIND_UNSPECIFIED: AlarmKind
ALARM_KIND_MOTION: AlarmKind
ALARM_KIND_TAMPER: AlarmKind
ALARM_KIND_VIDEO_LOSS: AlarmKind
ALARM_KIND_STORAGE_FULL: AlarmKind

class SegmentHeader(_message.Message):
    __slots__ = ("device_id", "sequence", "start_time", "duration", "container", "codec", "size", "sha256", "signature")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    sequence: int
    start_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    container: Container
    codec: str
    size: int
    sha256: str
    signature: bytes
    def __init__(self, device_id: _Optional[str] = ..., sequence: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., container: _Optional[_Union[Container, str]] = ..., codec: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class UploadSegmentRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SegmentHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[SegmentHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class StoredSegment(_message.Message):
    __slots__ = ("device_id", "sequence", "bucket", "key", "version_id", "size", "sha256", "retain_until", "start_time", "end_time", "container", "codec", "ingest_time")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    RETAIN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    INGEST_TIME_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    sequence: int
    bucket: str
    key: str
    version_id: str
    size: int
    sha256: str
    retain_until: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    container: Container
    codec: str
    ingest_time: _timestamp_pb2.Timestamp
    def __init__(self, device_id: _Optional[str] = ..., sequence: _Optional[int] = ..., bucket: _Optional[str] = ..., key: _Optional[str] = ..., version_id: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., retain_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., container: _Optional[_Union[Container, str]] = ..., codec: _Optional[str] = ..., ingest_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UploadSegmentResponse(_message.Message):
    __slots__ = ("segment", "replayed")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    segment: StoredSegment
    replayed: bool
    def __init__(self, segment: _Optional[_Union[StoredSegment, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ObjectRef(_message.Message):
    __slots__ = ("bucket", "key", "version_id", "size", "sha256")
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    bucket: str
    key: str
    version_id: str
    size: int
    sha256: str
    def __init__(self, bucket: _Optional[str] = ..., key: _Optional[str] = ..., version_id: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class ReportAlarmRequest(_message.Message):
    __slots__ = ("device_id", "kind", "alarm_time", "snapshot_jpeg", "description")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ALARM_TIME_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_JPEG_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    kind: AlarmKind
    alarm_time: _timestamp_pb2.Timestamp
    snapshot_jpeg: bytes
    description: str
    def __init__(self, device_id: _Optional[str] = ..., kind: _Optional[_Union[AlarmKind, str]] = ..., alarm_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., snapshot_jpeg: _Optional[bytes] = ..., description: _Optional[str] = ...) -> None: ...

class Alarm(_message.Message):
    __slots__ = ("alarm_id", "device_id", "kind", "alarm_time", "description", "snapshot", "owner_unit_id", "site_id", "division_code", "receive_time")
    ALARM_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ALARM_TIME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    OWNER_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    DIVISION_CODE_FIELD_NUMBER: _ClassVar[int]
    RECEIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    alarm_id: str
    device_id: str
    kind: AlarmKind
    alarm_time: _timestamp_pb2.Timestamp
    description: str
    snapshot: ObjectRef
    owner_unit_id: str
    site_id: str
    division_code: str
    receive_time: _timestamp_pb2.Timestamp
    def __init__(self, alarm_id: _Optional[str] = ..., device_id: _Optional[str] = ..., kind: _Optional[_Union[AlarmKind, str]] = ..., alarm_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., description: _Optional[str] = ..., snapshot: _Optional[_Union[ObjectRef, _Mapping]] = ..., owner_unit_id: _Optional[str] = ..., site_id: _Optional[str] = ..., division_code: _Optional[str] = ..., receive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReportAlarmResponse(_message.Message):
    __slots__ = ("alarm",)
    ALARM_FIELD_NUMBER: _ClassVar[int]
    alarm: Alarm
    def __init__(self, alarm: _Optional[_Union[Alarm, _Mapping]] = ...) -> None: ...
