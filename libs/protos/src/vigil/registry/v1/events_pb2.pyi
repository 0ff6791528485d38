import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from vigil.common.v1 import identity_pb2 as _identity_pb2
from vigil.registry.v1 import registry_service_pb2 as _registry_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UnitCreated(_message.Message):
    __slots__ = ("unit", "actor")
    UNIT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    unit: _registry_service_pb2.Unit
    actor: _identity_pb2.Principal
    def __init__(self, unit: _Optional[_Union[_registry_service_pb2.Unit, _Mapping]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class UnitUpdated(_message.Message):
    __slots__ = ("unit", "changed_fields", "actor")
    UNIT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    unit: _registry_service_pb2.Unit
    changed_fields: _containers.RepeatedScalarFieldContainer[str]
    actor: _identity_pb2.Principal
    def __init__(self, unit: _Optional[_Union[_registry_service_pb2.Unit, _Mapping]] = ..., changed_fields: _Optional[_Iterable[str]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class SiteCreated(_message.Message):
    __slots__ = ("site", "actor")
    SITE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    site: _registry_service_pb2.Site
    actor: _identity_pb2.Principal
    def __init__(self, site: _Optional[_Union[_registry_service_pb2.Site, _Mapping]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class SiteUpdated(_message.Message):
    __slots__ = ("site", "changed_fields", "actor")
    SITE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    site: _registry_service_pb2.Site
    changed_fields: _containers.RepeatedScalarFieldContainer[str]
    actor: _identity_pb2.Principal
    def __init__(self, site: _Optional[_Union[_registry_service_pb2.Site, _Mapping]] = ..., changed_fields: _Optional[_Iterable[str]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class DeviceRegistered(_message.Message):
    __slots__ = ("device", "actor")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    device: _registry_service_pb2.Device
    actor: _identity_pb2.Principal
    def __init__(self, device: _Optional[_Union[_registry_service_pb2.Device, _Mapping]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class DeviceUpdated(_message.Message):
    __slots__ = ("device", "changed_fields", "work_order_ref", "moved", "actor")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    WORK_ORDER_REF_FIELD_NUMBER: _ClassVar[int]
    MOVED_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    device: _registry_service_pb2.Device
    changed_fields: _containers.RepeatedScalarFieldContainer[str]
    work_order_ref: str
    moved: bool
    actor: _identity_pb2.Principal
    def __init__(self, device: _Optional[_Union[_registry_service_pb2.Device, _Mapping]] = ..., changed_fields: _Optional[_Iterable[str]] = ..., work_order_ref: _Optional[str] = ..., moved: _Optional[bool] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class DeviceActivated(_message.Message):
    __slots__ = ("device", "actor")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    device: _registry_service_pb2.Device
    actor: _identity_pb2.Principal
    def __init__(self, device: _Optional[_Union[_registry_service_pb2.Device, _Mapping]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class DeviceSuspended(_message.Message):
    __slots__ = ("device", "reason", "actor")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    device: _registry_service_pb2.Device
    reason: str
    actor: _identity_pb2.Principal
    def __init__(self, device: _Optional[_Union[_registry_service_pb2.Device, _Mapping]] = ..., reason: _Optional[str] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class DeviceDecommissioned(_message.Message):
    __slots__ = ("device", "work_order_ref", "reason", "actor")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WORK_ORDER_REF_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    device: _registry_service_pb2.Device
    work_order_ref: str
    reason: str
    actor: _identity_pb2.Principal
    def __init__(self, device: _Optional[_Union[_registry_service_pb2.Device, _Mapping]] = ..., work_order_ref: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class UnauthorizedChangeDetected(_message.Message):
    __slots__ = ("device_id", "changed_fields", "distance_m", "angle_deg", "reported_latitude", "reported_longitude", "reported_direction_deg", "device", "detect_time", "reporter")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_M_FIELD_NUMBER: _ClassVar[int]
    ANGLE_DEG_FIELD_NUMBER: _ClassVar[int]
    REPORTED_LATITUDE_FIELD_NUMBER: _ClassVar[int]
    REPORTED_LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    REPORTED_DIRECTION_DEG_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DETECT_TIME_FIELD_NUMBER: _ClassVar[int]
    REPORTER_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    changed_fields: _containers.RepeatedScalarFieldContainer[str]
    distance_m: float
    angle_deg: float
    reported_latitude: float
    reported_longitude: float
    reported_direction_deg: float
    device: _registry_service_pb2.Device
    detect_time: _timestamp_pb2.Timestamp
    reporter: _identity_pb2.Principal
    def __init__(self, device_id: _Optional[str] = ..., changed_fields: _Optional[_Iterable[str]] = ..., distance_m: _Optional[float] = ..., angle_deg: _Optional[float] = ..., reported_latitude: _Optional[float] = ..., reported_longitude: _Optional[float] = ..., reported_direction_deg: _Optional[float] = ..., device: _Optional[_Union[_registry_service_pb2.Device, _Mapping]] = ..., detect_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reporter: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class DeviceWentOnline(_message.Message):
    __slots__ = ("device_id", "site_id", "owner_unit_id", "division_code", "online_time", "offline_time", "outage")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    DIVISION_CODE_FIELD_NUMBER: _ClassVar[int]
    ONLINE_TIME_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_TIME_FIELD_NUMBER: _ClassVar[int]
    OUTAGE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site_id: str
    owner_unit_id: str
    division_code: str
    online_time: _timestamp_pb2.Timestamp
    offline_time: _timestamp_pb2.Timestamp
    outage: _duration_pb2.Duration
    def __init__(self, device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., owner_unit_id: _Optional[str] = ..., division_code: _Optional[str] = ..., online_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offline_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outage: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class DeviceWentOffline(_message.Message):
    __slots__ = ("device_id", "site_id", "owner_unit_id", "division_code", "offline_time", "last_keepalive_time", "detect_time")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    DIVISION_CODE_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_KEEPALIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    DETECT_TIME_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site_id: str
    owner_unit_id: str
    division_code: str
    offline_time: _timestamp_pb2.Timestamp
    last_keepalive_time: _timestamp_pb2.Timestamp
    detect_time: _timestamp_pb2.Timestamp
    def __init__(self, device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., owner_unit_id: _Optional[str] = ..., division_code: _Optional[str] = ..., offline_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_keepalive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., detect_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
