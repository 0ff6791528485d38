import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from vigil.common.v1 import identity_pb2 as _identity_pb2
from vigil.common.v1 import time_range_pb2 as _time_range_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_ALLOWED: _ClassVar[Decision]
    DECISION_DENIED: _ClassVar[Decision]
DECISION_UNSPECIFIED: Decision
DECISION_ALLOWED: Decision
DECISION_DENIED: Decision

class Resources(_message.Message):
    __slots__ = ("unit_ids", "site_ids", "device_ids", "grant_ids", "segment_ids", "hold_ids", "export_ids")
    UNIT_IDS_FIELD_NUMBER: _ClassVar[int]
    SITE_IDS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    GRANT_IDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    HOLD_IDS_FIELD_NUMBER: _ClassVar[int]
    EXPORT_IDS_FIELD_NUMBER: _ClassVar[int]
    unit_ids: _containers.RepeatedScalarFieldContainer[str]
    site_ids: _containers.RepeatedScalarFieldContainer[str]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    grant_ids: _containers.RepeatedScalarFieldContainer[str]
    segment_ids: _containers.RepeatedScalarFieldContainer[str]
    hold_ids: _containers.RepeatedScalarFieldContainer[str]
    export_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, unit_ids: _Optional[_Iterable[str]] = ..., site_ids: _Optional[_Iterable[str]] = ..., device_ids: _Optional[_Iterable[str]] = ..., grant_ids: _Optional[_Iterable[str]] = ..., segment_ids: _Optional[_Iterable[str]] = ..., hold_ids: _Optional[_Iterable[str]] = ..., export_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("record_id", "time", "source_service", "actor", "action", "resources", "purpose", "reason", "footage", "decision", "rule_id", "approver", "grant_id", "request_id", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SERVICE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    FOOTAGE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    APPROVER_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    time: _timestamp_pb2.Timestamp
    source_service: str
    actor: _identity_pb2.Principal
    action: str
    resources: Resources
    purpose: str
    reason: str
    footage: _time_range_pb2.TimeRange
    decision: Decision
    rule_id: str
    approver: _identity_pb2.Principal
    grant_id: str
    request_id: str
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, record_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source_service: _Optional[str] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ..., action: _Optional[str] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., purpose: _Optional[str] = ..., reason: _Optional[str] = ..., footage: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., decision: _Optional[_Union[Decision, str]] = ..., rule_id: _Optional[str] = ..., approver: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ..., grant_id: _Optional[str] = ..., request_id: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...
