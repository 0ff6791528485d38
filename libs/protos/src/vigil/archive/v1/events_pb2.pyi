import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from vigil.archive.v1 import archive_service_pb2 as _archive_service_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SegmentArchived(_message.Message):
    __slots__ = ("segment", "source")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    segment: _archive_service_pb2.Segment
    source: str
    def __init__(self, segment: _Optional[_Union[_archive_service_pb2.Segment, _Mapping]] = ..., source: _Optional[str] = ...) -> None: ...

class SegmentExpired(_message.Message):
    __slots__ = ("segment", "expire_time")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    segment: _archive_service_pb2.Segment
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, segment: _Optional[_Union[_archive_service_pb2.Segment, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HoldPlaced(_message.Message):
    __slots__ = ("hold",)
    HOLD_FIELD_NUMBER: _ClassVar[int]
    hold: _archive_service_pb2.Hold
    def __init__(self, hold: _Optional[_Union[_archive_service_pb2.Hold, _Mapping]] = ...) -> None: ...

class HoldReleased(_message.Message):
    __slots__ = ("hold",)
    HOLD_FIELD_NUMBER: _ClassVar[int]
    hold: _archive_service_pb2.Hold
    def __init__(self, hold: _Optional[_Union[_archive_service_pb2.Hold, _Mapping]] = ...) -> None: ...

class IntegrityViolation(_message.Message):
    __slots__ = ("device_id", "finding", "detected_by", "detect_time")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    FINDING_FIELD_NUMBER: _ClassVar[int]
    DETECTED_BY_FIELD_NUMBER: _ClassVar[int]
    DETECT_TIME_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    finding: _archive_service_pb2.Finding
    detected_by: str
    detect_time: _timestamp_pb2.Timestamp
    def __init__(self, device_id: _Optional[str] = ..., finding: _Optional[_Union[_archive_service_pb2.Finding, _Mapping]] = ..., detected_by: _Optional[str] = ..., detect_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OrphanReindexed(_message.Message):
    __slots__ = ("segment",)
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    segment: _archive_service_pb2.Segment
    def __init__(self, segment: _Optional[_Union[_archive_service_pb2.Segment, _Mapping]] = ...) -> None: ...

class ClipExported(_message.Message):
    __slots__ = ("clip", "exported_by", "purpose", "export_time")
    CLIP_FIELD_NUMBER: _ClassVar[int]
    EXPORTED_BY_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    EXPORT_TIME_FIELD_NUMBER: _ClassVar[int]
    clip: _archive_service_pb2.ExportedClip
    exported_by: str
    purpose: str
    export_time: _timestamp_pb2.Timestamp
    def __init__(self, clip: _Optional[_Union[_archive_service_pb2.ExportedClip, _Mapping]] = ..., exported_by: _Optional[str] = ..., purpose: _Optional[str] = ..., export_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
