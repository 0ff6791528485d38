import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from vigil.common.v1 import time_range_pb2 as _time_range_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ViolationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIOLATION_KIND_UNSPECIFIED: _ClassVar[ViolationKind]
    VIOLATION_KIND_HASH_MISMATCH: _ClassVar[ViolationKind]
    VIOLATION_KIND_MISSING: _ClassVar[ViolationKind]
    VIOLATION_KIND_NEWER_VERSION: _ClassVar[ViolationKind]
    VIOLATION_KIND_SIZE_MISMATCH: _ClassVar[ViolationKind]
    VIOLATION_KIND_DAY_ROOT_MISMATCH: _ClassVar[ViolationKind]

class ExportStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPORT_STAGE_UNSPECIFIED: _ClassVar[ExportStage]
    EXPORT_STAGE_AUTHORIZED: _ClassVar[ExportStage]
    EXPORT_STAGE_READING: _ClassVar[ExportStage]
    EXPORT_STAGE_ENCODING: _ClassVar[ExportStage]
    EXPORT_STAGE_STORED: _ClassVar[ExportStage]
VIOLATION_KIND_UNSPECIFIED: ViolationKind
VIOLATION_KIND_HASH_MISMATCH: ViolationKind
VIOLATION_KIND_MISSING: ViolationKind
VIOLATION_KIND_NEWER_VERSION: ViolationKind
VIOLATION_KIND_SIZE_MISMATCH: ViolationKind
VIOLATION_KIND_DAY_ROOT_MISMATCH: ViolationKind
EXPORT_STAGE_UNSPECIFIED: ExportStage
EXPORT_STAGE_AUTHORIZED: ExportStage
EXPORT_STAGE_READING: ExportStage
EXPORT_STAGE_ENCODING: ExportStage
EXPORT_STAGE_STORED: ExportStage

class Segment(_message.Message):
    __slots__ = ("device_id", "sequence", "start_time", "end_time", "bucket", "key", "version_id", "size", "sha256", "retain_until", "hold_ids", "owner_unit_id", "codec", "container")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    RETAIN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    HOLD_IDS_FIELD_NUMBER: _ClassVar[int]
    OWNER_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    sequence: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    bucket: str
    key: str
    version_id: str
    size: int
    sha256: str
    retain_until: _timestamp_pb2.Timestamp
    hold_ids: _containers.RepeatedScalarFieldContainer[str]
    owner_unit_id: str
    codec: str
    container: str
    def __init__(self, device_id: _Optional[str] = ..., sequence: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bucket: _Optional[str] = ..., key: _Optional[str] = ..., version_id: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., retain_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., hold_ids: _Optional[_Iterable[str]] = ..., owner_unit_id: _Optional[str] = ..., codec: _Optional[str] = ..., container: _Optional[str] = ...) -> None: ...

class FindSegmentsRequest(_message.Message):
    __slots__ = ("device_id", "range", "page_size", "page_token")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    range: _time_range_pb2.TimeRange
    page_size: int
    page_token: str
    def __init__(self, device_id: _Optional[str] = ..., range: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class FindSegmentsResponse(_message.Message):
    __slots__ = ("segments", "next_page_token")
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    next_page_token: str
    def __init__(self, segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetCoverageRequest(_message.Message):
    __slots__ = ("device_id", "range")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    range: _time_range_pb2.TimeRange
    def __init__(self, device_id: _Optional[str] = ..., range: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ...) -> None: ...

class Gap(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Coverage(_message.Message):
    __slots__ = ("device_id", "range", "percent_covered", "earliest", "latest", "continuous_since", "gaps", "gap_count", "segment_count")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    PERCENT_COVERED_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_SINCE_FIELD_NUMBER: _ClassVar[int]
    GAPS_FIELD_NUMBER: _ClassVar[int]
    GAP_COUNT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    range: _time_range_pb2.TimeRange
    percent_covered: float
    earliest: _timestamp_pb2.Timestamp
    latest: _timestamp_pb2.Timestamp
    continuous_since: _timestamp_pb2.Timestamp
    gaps: _containers.RepeatedCompositeFieldContainer[Gap]
    gap_count: int
    segment_count: int
    def __init__(self, device_id: _Optional[str] = ..., range: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., percent_covered: _Optional[float] = ..., earliest: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latest: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., continuous_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., gaps: _Optional[_Iterable[_Union[Gap, _Mapping]]] = ..., gap_count: _Optional[int] = ..., segment_count: _Optional[int] = ...) -> None: ...

class VerifySegmentsRequest(_message.Message):
    __slots__ = ("device_id", "range")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    range: _time_range_pb2.TimeRange
    def __init__(self, device_id: _Optional[str] = ..., range: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("kind", "key", "version_id", "detail", "start_time")
    KIND_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    kind: ViolationKind
    key: str
    version_id: str
    detail: str
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[ViolationKind, str]] = ..., key: _Optional[str] = ..., version_id: _Optional[str] = ..., detail: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DayRoot(_message.Message):
    __slots__ = ("device_id", "day", "leaf_count", "root", "verified")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    LEAF_COUNT_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    day: str
    leaf_count: int
    root: bytes
    verified: bool
    def __init__(self, device_id: _Optional[str] = ..., day: _Optional[str] = ..., leaf_count: _Optional[int] = ..., root: _Optional[bytes] = ..., verified: _Optional[bool] = ...) -> None: ...

class VerifySegmentsResponse(_message.Message):
    __slots__ = ("checked", "findings", "day_roots", "ok")
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    DAY_ROOTS_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    checked: int
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    day_roots: _containers.RepeatedCompositeFieldContainer[DayRoot]
    ok: bool
    def __init__(self, checked: _Optional[int] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., day_roots: _Optional[_Iterable[_Union[DayRoot, _Mapping]]] = ..., ok: _Optional[bool] = ...) -> None: ...

class GetSegmentProofRequest(_message.Message):
    __slots__ = ("key", "version_id")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    key: str
    version_id: str
    def __init__(self, key: _Optional[str] = ..., version_id: _Optional[str] = ...) -> None: ...

class SegmentProof(_message.Message):
    __slots__ = ("segment", "day_root", "leaf_index", "path")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    DAY_ROOT_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    segment: Segment
    day_root: DayRoot
    leaf_index: int
    path: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, segment: _Optional[_Union[Segment, _Mapping]] = ..., day_root: _Optional[_Union[DayRoot, _Mapping]] = ..., leaf_index: _Optional[int] = ..., path: _Optional[_Iterable[bytes]] = ...) -> None: ...

class DeleteSegmentRequest(_message.Message):
    __slots__ = ("key", "version_id", "reason")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    key: str
    version_id: str
    reason: str
    def __init__(self, key: _Optional[str] = ..., version_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeleteSegmentResponse(_message.Message):
    __slots__ = ("segment", "audit_record_id")
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    AUDIT_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    segment: Segment
    audit_record_id: str
    def __init__(self, segment: _Optional[_Union[Segment, _Mapping]] = ..., audit_record_id: _Optional[str] = ...) -> None: ...

class Hold(_message.Message):
    __slots__ = ("hold_id", "device_ids", "range", "case_reference", "reason", "important", "placed_by", "place_time", "release_time", "released_by", "covered_segments")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    CASE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IMPORTANT_FIELD_NUMBER: _ClassVar[int]
    PLACED_BY_FIELD_NUMBER: _ClassVar[int]
    PLACE_TIME_FIELD_NUMBER: _ClassVar[int]
    RELEASE_TIME_FIELD_NUMBER: _ClassVar[int]
    RELEASED_BY_FIELD_NUMBER: _ClassVar[int]
    COVERED_SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    range: _time_range_pb2.TimeRange
    case_reference: str
    reason: str
    important: bool
    placed_by: str
    place_time: _timestamp_pb2.Timestamp
    release_time: _timestamp_pb2.Timestamp
    released_by: str
    covered_segments: int
    def __init__(self, hold_id: _Optional[str] = ..., device_ids: _Optional[_Iterable[str]] = ..., range: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., case_reference: _Optional[str] = ..., reason: _Optional[str] = ..., important: _Optional[bool] = ..., placed_by: _Optional[str] = ..., place_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., release_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., released_by: _Optional[str] = ..., covered_segments: _Optional[int] = ...) -> None: ...

class PlaceHoldRequest(_message.Message):
    __slots__ = ("device_ids", "range", "case_reference", "reason", "important")
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    CASE_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    IMPORTANT_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    range: _time_range_pb2.TimeRange
    case_reference: str
    reason: str
    important: bool
    def __init__(self, device_ids: _Optional[_Iterable[str]] = ..., range: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., case_reference: _Optional[str] = ..., reason: _Optional[str] = ..., important: _Optional[bool] = ...) -> None: ...

class ReleaseHoldRequest(_message.Message):
    __slots__ = ("hold_id", "reason")
    HOLD_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    hold_id: str
    reason: str
    def __init__(self, hold_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListHoldsRequest(_message.Message):
    __slots__ = ("device_id", "include_released", "page_size", "page_token")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RELEASED_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    include_released: bool
    page_size: int
    page_token: str
    def __init__(self, device_id: _Optional[str] = ..., include_released: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListHoldsResponse(_message.Message):
    __slots__ = ("holds", "next_page_token")
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    holds: _containers.RepeatedCompositeFieldContainer[Hold]
    next_page_token: str
    def __init__(self, holds: _Optional[_Iterable[_Union[Hold, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetPlaybackManifestRequest(_message.Message):
    __slots__ = ("device_id", "range")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    range: _time_range_pb2.TimeRange
    def __init__(self, device_id: _Optional[str] = ..., range: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ...) -> None: ...

class GetLiveManifestRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class PlaybackManifest(_message.Message):
    __slots__ = ("playlist", "expire_time", "audit_record_id", "grant_id", "masked", "segments", "urls")
    PLAYLIST_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    AUDIT_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    URLS_FIELD_NUMBER: _ClassVar[int]
    playlist: str
    expire_time: _timestamp_pb2.Timestamp
    audit_record_id: str
    grant_id: str
    masked: bool
    segments: _containers.RepeatedCompositeFieldContainer[Segment]
    urls: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, playlist: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audit_record_id: _Optional[str] = ..., grant_id: _Optional[str] = ..., masked: _Optional[bool] = ..., segments: _Optional[_Iterable[_Union[Segment, _Mapping]]] = ..., urls: _Optional[_Iterable[str]] = ...) -> None: ...

class GetStorageStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StorageStatus(_message.Message):
    __slots__ = ("object_lock_enforced", "detail", "checked_at")
    OBJECT_LOCK_ENFORCED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    object_lock_enforced: bool
    detail: str
    checked_at: _timestamp_pb2.Timestamp
    def __init__(self, object_lock_enforced: _Optional[bool] = ..., detail: _Optional[str] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExportClipRequest(_message.Message):
    __slots__ = ("device_id", "range", "purpose", "public")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    range: _time_range_pb2.TimeRange
    purpose: str
    public: bool
    def __init__(self, device_id: _Optional[str] = ..., range: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., purpose: _Optional[str] = ..., public: _Optional[bool] = ...) -> None: ...

class ExportedClip(_message.Message):
    __slots__ = ("export_id", "device_id", "range", "bucket", "key", "version_id", "sha256", "size", "manifest_key", "manifest_version_id", "manifest", "masked", "public", "retain_until", "audit_record_id", "grant_id", "segment_count", "url")
    EXPORT_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    BUCKET_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_KEY_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    MASKED_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_FIELD_NUMBER: _ClassVar[int]
    RETAIN_UNTIL_FIELD_NUMBER: _ClassVar[int]
    AUDIT_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    export_id: str
    device_id: str
    range: _time_range_pb2.TimeRange
    bucket: str
    key: str
    version_id: str
    sha256: str
    size: int
    manifest_key: str
    manifest_version_id: str
    manifest: bytes
    masked: bool
    public: bool
    retain_until: _timestamp_pb2.Timestamp
    audit_record_id: str
    grant_id: str
    segment_count: int
    url: str
    def __init__(self, export_id: _Optional[str] = ..., device_id: _Optional[str] = ..., range: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., bucket: _Optional[str] = ..., key: _Optional[str] = ..., version_id: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., manifest_key: _Optional[str] = ..., manifest_version_id: _Optional[str] = ..., manifest: _Optional[bytes] = ..., masked: _Optional[bool] = ..., public: _Optional[bool] = ..., retain_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., audit_record_id: _Optional[str] = ..., grant_id: _Optional[str] = ..., segment_count: _Optional[int] = ..., url: _Optional[str] = ...) -> None: ...

class ExportProgress(_message.Message):
    __slots__ = ("stage", "segments_done", "segments_total", "frames", "done")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_DONE_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    stage: ExportStage
    segments_done: int
    segments_total: int
    frames: int
    done: ExportedClip
    def __init__(self, stage: _Optional[_Union[ExportStage, str]] = ..., segments_done: _Optional[int] = ..., segments_total: _Optional[int] = ..., frames: _Optional[int] = ..., done: _Optional[_Union[ExportedClip, _Mapping]] = ...) -> None: ...

class GetExportKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExportKey(_message.Message):
    __slots__ = ("public_key_pem", "key_id")
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    public_key_pem: str
    key_id: str
    def __init__(self, public_key_pem: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...
