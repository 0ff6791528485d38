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

class FindingKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINDING_KIND_UNSPECIFIED: _ClassVar[FindingKind]
    FINDING_KIND_FORBIDDEN_PLACE: _ClassVar[FindingKind]
    FINDING_KIND_UNAUTHORIZED_BUILDER: _ClassVar[FindingKind]
    FINDING_KIND_MISSING_PRIVACY_MEASURES: _ClassVar[FindingKind]
    FINDING_KIND_MISSING_NOTICE_SIGN: _ClassVar[FindingKind]
    FINDING_KIND_MANDATORY_COVERAGE_GAP: _ClassVar[FindingKind]
    FINDING_KIND_OVERDUE_FILING: _ClassVar[FindingKind]
    FINDING_KIND_EARLY_DELETION_ATTEMPT: _ClassVar[FindingKind]
    FINDING_KIND_RECORDING_GAP: _ClassVar[FindingKind]
    FINDING_KIND_FOOTAGE_PAST_EXPIRY: _ClassVar[FindingKind]
    FINDING_KIND_INTEGRITY_VIOLATION: _ClassVar[FindingKind]
    FINDING_KIND_DEVICE_OFFLINE: _ClassVar[FindingKind]
    FINDING_KIND_OUTAGE_OVER_LIMIT: _ClassVar[FindingKind]
    FINDING_KIND_ACCESS_OUTSIDE_GRANT: _ClassVar[FindingKind]
    FINDING_KIND_REFUSED_OUTSIDE_GRANT: _ClassVar[FindingKind]
    FINDING_KIND_BULK_EXPORT: _ClassVar[FindingKind]
    FINDING_KIND_NIGHT_ACCESS: _ClassVar[FindingKind]
    FINDING_KIND_MANY_DEVICES: _ClassVar[FindingKind]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]
FINDING_KIND_UNSPECIFIED: FindingKind
FINDING_KIND_FORBIDDEN_PLACE: FindingKind
FINDING_KIND_UNAUTHORIZED_BUILDER: FindingKind
FINDING_KIND_MISSING_PRIVACY_MEASURES: FindingKind
FINDING_KIND_MISSING_NOTICE_SIGN: FindingKind
FINDING_KIND_MANDATORY_COVERAGE_GAP: FindingKind
FINDING_KIND_OVERDUE_FILING: FindingKind
FINDING_KIND_EARLY_DELETION_ATTEMPT: FindingKind
FINDING_KIND_RECORDING_GAP: FindingKind
FINDING_KIND_FOOTAGE_PAST_EXPIRY: FindingKind
FINDING_KIND_INTEGRITY_VIOLATION: FindingKind
FINDING_KIND_DEVICE_OFFLINE: FindingKind
FINDING_KIND_OUTAGE_OVER_LIMIT: FindingKind
FINDING_KIND_ACCESS_OUTSIDE_GRANT: FindingKind
FINDING_KIND_REFUSED_OUTSIDE_GRANT: FindingKind
FINDING_KIND_BULK_EXPORT: FindingKind
FINDING_KIND_NIGHT_ACCESS: FindingKind
FINDING_KIND_MANY_DEVICES: FindingKind
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_CRITICAL: Severity

class GetComplianceReportRequest(_message.Message):
    __slots__ = ("range",)
    RANGE_FIELD_NUMBER: _ClassVar[int]
    range: _time_range_pb2.TimeRange
    def __init__(self, range: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("kind", "rule_id", "severity", "subject_kind", "subject_ids", "summary", "evidence_record_ids", "count", "first_time", "last_time")
    KIND_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_KIND_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_IDS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_RECORD_IDS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    FIRST_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_TIME_FIELD_NUMBER: _ClassVar[int]
    kind: FindingKind
    rule_id: str
    severity: Severity
    subject_kind: str
    subject_ids: _containers.RepeatedScalarFieldContainer[str]
    summary: str
    evidence_record_ids: _containers.RepeatedScalarFieldContainer[str]
    count: int
    first_time: _timestamp_pb2.Timestamp
    last_time: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[FindingKind, str]] = ..., rule_id: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., subject_kind: _Optional[str] = ..., subject_ids: _Optional[_Iterable[str]] = ..., summary: _Optional[str] = ..., evidence_record_ids: _Optional[_Iterable[str]] = ..., count: _Optional[int] = ..., first_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class FindingCount(_message.Message):
    __slots__ = ("kind", "rule_id", "count")
    KIND_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    kind: FindingKind
    rule_id: str
    count: int
    def __init__(self, kind: _Optional[_Union[FindingKind, str]] = ..., rule_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class CategoryCoverage(_message.Message):
    __slots__ = ("place_category", "device_count", "percent_covered", "devices_with_gaps")
    PLACE_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PERCENT_COVERED_FIELD_NUMBER: _ClassVar[int]
    DEVICES_WITH_GAPS_FIELD_NUMBER: _ClassVar[int]
    place_category: str
    device_count: int
    percent_covered: float
    devices_with_gaps: int
    def __init__(self, place_category: _Optional[str] = ..., device_count: _Optional[int] = ..., percent_covered: _Optional[float] = ..., devices_with_gaps: _Optional[int] = ...) -> None: ...

class DepartmentAccess(_message.Message):
    __slots__ = ("unit", "counts")
    UNIT_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    unit: str
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, unit: _Optional[str] = ..., counts: _Optional[_Iterable[int]] = ...) -> None: ...

class ComplianceReport(_message.Message):
    __slots__ = ("range", "generate_time", "findings", "counts", "coverage", "access_buckets", "access", "records_scanned", "log_size", "device_count", "active_device_count", "site_count", "notes")
    RANGE_FIELD_NUMBER: _ClassVar[int]
    GENERATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    ACCESS_BUCKETS_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_SCANNED_FIELD_NUMBER: _ClassVar[int]
    LOG_SIZE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SITE_COUNT_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    range: _time_range_pb2.TimeRange
    generate_time: _timestamp_pb2.Timestamp
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    counts: _containers.RepeatedCompositeFieldContainer[FindingCount]
    coverage: _containers.RepeatedCompositeFieldContainer[CategoryCoverage]
    access_buckets: _containers.RepeatedCompositeFieldContainer[_timestamp_pb2.Timestamp]
    access: _containers.RepeatedCompositeFieldContainer[DepartmentAccess]
    records_scanned: int
    log_size: int
    device_count: int
    active_device_count: int
    site_count: int
    notes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, range: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., generate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., counts: _Optional[_Iterable[_Union[FindingCount, _Mapping]]] = ..., coverage: _Optional[_Iterable[_Union[CategoryCoverage, _Mapping]]] = ..., access_buckets: _Optional[_Iterable[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]]] = ..., access: _Optional[_Iterable[_Union[DepartmentAccess, _Mapping]]] = ..., records_scanned: _Optional[int] = ..., log_size: _Optional[int] = ..., device_count: _Optional[int] = ..., active_device_count: _Optional[int] = ..., site_count: _Optional[int] = ..., notes: _Optional[_Iterable[str]] = ...) -> None: ...
