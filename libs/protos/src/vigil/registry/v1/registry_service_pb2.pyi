import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from vigil.common.v1 import identity_pb2 as _identity_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PlaceCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLACE_CATEGORY_UNSPECIFIED: _ClassVar[PlaceCategory]
    PLACE_CATEGORY_ROAD_SQUARE_TUNNEL_BRIDGE: _ClassVar[PlaceCategory]
    PLACE_CATEGORY_TRANSPORT: _ClassVar[PlaceCategory]
    PLACE_CATEGORY_ENERGY_UTILITIES: _ClassVar[PlaceCategory]
    PLACE_CATEGORY_HAZARDOUS_MATERIALS: _ClassVar[PlaceCategory]
    PLACE_CATEGORY_MEDIA_TELECOM_FINANCE: _ClassVar[PlaceCategory]
    PLACE_CATEGORY_PUBLIC_SERVICES: _ClassVar[PlaceCategory]
    PLACE_CATEGORY_RESIDENTIAL_HOSPITALITY: _ClassVar[PlaceCategory]
    PLACE_CATEGORY_VALUABLES_TRADE: _ClassVar[PlaceCategory]
    PLACE_CATEGORY_OTHER_PUBLIC: _ClassVar[PlaceCategory]
    PLACE_CATEGORY_NON_PUBLIC: _ClassVar[PlaceCategory]

class AreaType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AREA_TYPE_UNSPECIFIED: _ClassVar[AreaType]
    AREA_TYPE_ENTRANCE: _ClassVar[AreaType]
    AREA_TYPE_LOBBY: _ClassVar[AreaType]
    AREA_TYPE_CORRIDOR: _ClassVar[AreaType]
    AREA_TYPE_ROADWAY: _ClassVar[AreaType]
    AREA_TYPE_INTERSECTION: _ClassVar[AreaType]
    AREA_TYPE_PLATFORM: _ClassVar[AreaType]
    AREA_TYPE_VEHICLE_INTERIOR: _ClassVar[AreaType]
    AREA_TYPE_PARKING: _ClassVar[AreaType]
    AREA_TYPE_PERIMETER: _ClassVar[AreaType]
    AREA_TYPE_SERVICE_COUNTER: _ClassVar[AreaType]
    AREA_TYPE_STOREFRONT: _ClassVar[AreaType]
    AREA_TYPE_OPEN_AREA: _ClassVar[AreaType]
    AREA_TYPE_OTHER_PUBLIC: _ClassVar[AreaType]
    AREA_TYPE_HOTEL_GUEST_ROOM: _ClassVar[AreaType]
    AREA_TYPE_DORMITORY_ROOM: _ClassVar[AreaType]
    AREA_TYPE_PUBLIC_BATH: _ClassVar[AreaType]
    AREA_TYPE_TOILET: _ClassVar[AreaType]
    AREA_TYPE_CHANGING_ROOM: _ClassVar[AreaType]
    AREA_TYPE_NURSING_ROOM: _ClassVar[AreaType]
    AREA_TYPE_FITTING_ROOM: _ClassVar[AreaType]
    AREA_TYPE_PRIVATE_SPACE_VIEW: _ClassVar[AreaType]

class Funding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUNDING_UNSPECIFIED: _ClassVar[Funding]
    FUNDING_GOVERNMENT: _ClassVar[Funding]
    FUNDING_PRIVATE: _ClassVar[Funding]

class DeviceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_STATE_UNSPECIFIED: _ClassVar[DeviceState]
    DEVICE_STATE_REGISTERED: _ClassVar[DeviceState]
    DEVICE_STATE_ACTIVE: _ClassVar[DeviceState]
    DEVICE_STATE_OFFLINE: _ClassVar[DeviceState]
    DEVICE_STATE_SUSPENDED: _ClassVar[DeviceState]
    DEVICE_STATE_DECOMMISSIONED: _ClassVar[DeviceState]

class FilingState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILING_STATE_UNSPECIFIED: _ClassVar[FilingState]
    FILING_STATE_DUE: _ClassVar[FilingState]
    FILING_STATE_FILED: _ClassVar[FilingState]
    FILING_STATE_OVERDUE: _ClassVar[FilingState]
    FILING_STATE_CHANGE_PENDING: _ClassVar[FilingState]
PLACE_CATEGORY_UNSPECIFIED: PlaceCategory
PLACE_CATEGORY_ROAD_SQUARE_TUNNEL_BRIDGE: PlaceCategory
PLACE_CATEGORY_TRANSPORT: PlaceCategory
PLACE_CATEGORY_ENERGY_UTILITIES: PlaceCategory
PLACE_CATEGORY_HAZARDOUS_MATERIALS: PlaceCategory
PLACE_CATEGORY_MEDIA_TELECOM_FINANCE: PlaceCategory
PLACE_CATEGORY_PUBLIC_SERVICES: PlaceCategory
PLACE_CATEGORY_RESIDENTIAL_HOSPITALITY: PlaceCategory
PLACE_CATEGORY_VALUABLES_TRADE: PlaceCategory
PLACE_CATEGORY_OTHER_PUBLIC: PlaceCategory
PLACE_CATEGORY_NON_PUBLIC: PlaceCategory
AREA_TYPE_UNSPECIFIED: AreaType
AREA_TYPE_ENTRANCE: AreaType
AREA_TYPE_LOBBY: AreaType
AREA_TYPE_CORRIDOR: AreaType
AREA_TYPE_ROADWAY: AreaType
AREA_TYPE_INTERSECTION: AreaType
AREA_TYPE_PLATFORM: AreaType
AREA_TYPE_VEHICLE_INTERIOR: AreaType
AREA_TYPE_PARKING: AreaType
AREA_TYPE_PERIMETER: AreaType
AREA_TYPE_SERVICE_COUNTER: AreaType
AREA_TYPE_STOREFRONT: AreaType
AREA_TYPE_OPEN_AREA: AreaType
AREA_TYPE_OTHER_PUBLIC: AreaType
AREA_TYPE_HOTEL_GUEST_ROOM: AreaType
AREA_TYPE_DORMITORY_ROOM: AreaType
AREA_TYPE_PUBLIC_BATH: AreaType
AREA_TYPE_TOILET: AreaType
AREA_TYPE_CHANGING_ROOM: AreaType
AREA_TYPE_NURSING_ROOM: AreaType
AREA_TYPE_FITTING_ROOM: AreaType
AREA_TYPE_PRIVATE_SPACE_VIEW: AreaType
FUNDING_UNSPECIFIED: Funding
FUNDING_GOVERNMENT: Funding
FUNDING_PRIVATE: Funding
DEVICE_STATE_UNSPECIFIED: DeviceState
DEVICE_STATE_REGISTERED: DeviceState
DEVICE_STATE_ACTIVE: DeviceState
DEVICE_STATE_OFFLINE: DeviceState
DEVICE_STATE_SUSPENDED: DeviceState
DEVICE_STATE_DECOMMISSIONED: DeviceState
FILING_STATE_UNSPECIFIED: FilingState
FILING_STATE_DUE: FilingState
FILING_STATE_FILED: FilingState
FILING_STATE_OVERDUE: FilingState
FILING_STATE_CHANGE_PENDING: FilingState

class Unit(_message.Message):
    __slots__ = ("unit_id", "name", "kind", "create_time", "update_time")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    name: str
    kind: _identity_pb2.UnitKind
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, unit_id: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[_Union[_identity_pb2.UnitKind, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Site(_message.Message):
    __slots__ = ("site_id", "name", "division_code", "address", "latitude", "longitude", "place_category", "key_public_area", "managing_unit_id", "funding", "near_military_zone", "military_opinion_ref", "secret_related", "designed_on", "built_on", "in_use_on", "create_time", "update_time")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIVISION_CODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    PLACE_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    KEY_PUBLIC_AREA_FIELD_NUMBER: _ClassVar[int]
    MANAGING_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    NEAR_MILITARY_ZONE_FIELD_NUMBER: _ClassVar[int]
    MILITARY_OPINION_REF_FIELD_NUMBER: _ClassVar[int]
    SECRET_RELATED_FIELD_NUMBER: _ClassVar[int]
    DESIGNED_ON_FIELD_NUMBER: _ClassVar[int]
    BUILT_ON_FIELD_NUMBER: _ClassVar[int]
    IN_USE_ON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    name: str
    division_code: str
    address: str
    latitude: float
    longitude: float
    place_category: PlaceCategory
    key_public_area: bool
    managing_unit_id: str
    funding: Funding
    near_military_zone: bool
    military_opinion_ref: str
    secret_related: bool
    designed_on: str
    built_on: str
    in_use_on: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, site_id: _Optional[str] = ..., name: _Optional[str] = ..., division_code: _Optional[str] = ..., address: _Optional[str] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., place_category: _Optional[_Union[PlaceCategory, str]] = ..., key_public_area: _Optional[bool] = ..., managing_unit_id: _Optional[str] = ..., funding: _Optional[_Union[Funding, str]] = ..., near_military_zone: _Optional[bool] = ..., military_opinion_ref: _Optional[str] = ..., secret_related: _Optional[bool] = ..., designed_on: _Optional[str] = ..., built_on: _Optional[str] = ..., in_use_on: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SiteFacts(_message.Message):
    __slots__ = ("site_id", "name", "division_code", "place_category", "mandatory", "key_public_area", "managing_unit_id", "funding", "near_military_zone", "secret_related")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIVISION_CODE_FIELD_NUMBER: _ClassVar[int]
    PLACE_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MANDATORY_FIELD_NUMBER: _ClassVar[int]
    KEY_PUBLIC_AREA_FIELD_NUMBER: _ClassVar[int]
    MANAGING_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    FUNDING_FIELD_NUMBER: _ClassVar[int]
    NEAR_MILITARY_ZONE_FIELD_NUMBER: _ClassVar[int]
    SECRET_RELATED_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    name: str
    division_code: str
    place_category: PlaceCategory
    mandatory: bool
    key_public_area: bool
    managing_unit_id: str
    funding: Funding
    near_military_zone: bool
    secret_related: bool
    def __init__(self, site_id: _Optional[str] = ..., name: _Optional[str] = ..., division_code: _Optional[str] = ..., place_category: _Optional[_Union[PlaceCategory, str]] = ..., mandatory: _Optional[bool] = ..., key_public_area: _Optional[bool] = ..., managing_unit_id: _Optional[str] = ..., funding: _Optional[_Union[Funding, str]] = ..., near_military_zone: _Optional[bool] = ..., secret_related: _Optional[bool] = ...) -> None: ...

class Point(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class PrivacyMask(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Point]
    def __init__(self, points: _Optional[_Iterable[_Union[Point, _Mapping]]] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("device_id", "site_id", "owner_unit_id", "name", "area_type", "latitude", "longitude", "direction_deg", "capture_range_m", "notice_sign_confirmed", "privacy_masks", "privacy_measures", "vendor", "model", "public_key", "retention_profile", "keepalive_interval_s", "keepalive_timeout_count", "state", "retention_days", "last_keepalive_time", "activate_time", "offline_time", "register_time", "update_time", "offline_deadline", "owner", "site")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    AREA_TYPE_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_DEG_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_RANGE_M_FIELD_NUMBER: _ClassVar[int]
    NOTICE_SIGN_CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_MASKS_FIELD_NUMBER: _ClassVar[int]
    PRIVACY_MEASURES_FIELD_NUMBER: _ClassVar[int]
    VENDOR_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    RETENTION_PROFILE_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    KEEPALIVE_TIMEOUT_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    LAST_KEEPALIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIVATE_TIME_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_TIME_FIELD_NUMBER: _ClassVar[int]
    REGISTER_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site_id: str
    owner_unit_id: str
    name: str
    area_type: AreaType
    latitude: float
    longitude: float
    direction_deg: float
    capture_range_m: float
    notice_sign_confirmed: bool
    privacy_masks: _containers.RepeatedCompositeFieldContainer[PrivacyMask]
    privacy_measures: str
    vendor: str
    model: str
    public_key: str
    retention_profile: str
    keepalive_interval_s: float
    keepalive_timeout_count: int
    state: DeviceState
    retention_days: float
    last_keepalive_time: _timestamp_pb2.Timestamp
    activate_time: _timestamp_pb2.Timestamp
    offline_time: _timestamp_pb2.Timestamp
    register_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    offline_deadline: _timestamp_pb2.Timestamp
    owner: Unit
    site: SiteFacts
    def __init__(self, device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., owner_unit_id: _Optional[str] = ..., name: _Optional[str] = ..., area_type: _Optional[_Union[AreaType, str]] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., direction_deg: _Optional[float] = ..., capture_range_m: _Optional[float] = ..., notice_sign_confirmed: _Optional[bool] = ..., privacy_masks: _Optional[_Iterable[_Union[PrivacyMask, _Mapping]]] = ..., privacy_measures: _Optional[str] = ..., vendor: _Optional[str] = ..., model: _Optional[str] = ..., public_key: _Optional[str] = ..., retention_profile: _Optional[str] = ..., keepalive_interval_s: _Optional[float] = ..., keepalive_timeout_count: _Optional[int] = ..., state: _Optional[_Union[DeviceState, str]] = ..., retention_days: _Optional[float] = ..., last_keepalive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., activate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offline_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., register_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offline_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., owner: _Optional[_Union[Unit, _Mapping]] = ..., site: _Optional[_Union[SiteFacts, _Mapping]] = ...) -> None: ...

class FilingFacts(_message.Message):
    __slots__ = ("device_count", "device_types", "division_code", "address", "retention_days")
    class DeviceTypesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TYPES_FIELD_NUMBER: _ClassVar[int]
    DIVISION_CODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RETENTION_DAYS_FIELD_NUMBER: _ClassVar[int]
    device_count: int
    device_types: _containers.ScalarMap[str, int]
    division_code: str
    address: str
    retention_days: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, device_count: _Optional[int] = ..., device_types: _Optional[_Mapping[str, int]] = ..., division_code: _Optional[str] = ..., address: _Optional[str] = ..., retention_days: _Optional[_Iterable[float]] = ...) -> None: ...

class Filing(_message.Message):
    __slots__ = ("unit_id", "site_id", "state", "in_use_on", "due_on", "filing_number", "filed_on", "changes", "filed_facts", "current_facts")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    IN_USE_ON_FIELD_NUMBER: _ClassVar[int]
    DUE_ON_FIELD_NUMBER: _ClassVar[int]
    FILING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FILED_ON_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    FILED_FACTS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FACTS_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    site_id: str
    state: FilingState
    in_use_on: str
    due_on: str
    filing_number: str
    filed_on: str
    changes: _containers.RepeatedScalarFieldContainer[str]
    filed_facts: FilingFacts
    current_facts: FilingFacts
    def __init__(self, unit_id: _Optional[str] = ..., site_id: _Optional[str] = ..., state: _Optional[_Union[FilingState, str]] = ..., in_use_on: _Optional[str] = ..., due_on: _Optional[str] = ..., filing_number: _Optional[str] = ..., filed_on: _Optional[str] = ..., changes: _Optional[_Iterable[str]] = ..., filed_facts: _Optional[_Union[FilingFacts, _Mapping]] = ..., current_facts: _Optional[_Union[FilingFacts, _Mapping]] = ...) -> None: ...

class CreateUnitRequest(_message.Message):
    __slots__ = ("unit",)
    UNIT_FIELD_NUMBER: _ClassVar[int]
    unit: Unit
    def __init__(self, unit: _Optional[_Union[Unit, _Mapping]] = ...) -> None: ...

class GetUnitRequest(_message.Message):
    __slots__ = ("unit_id",)
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    def __init__(self, unit_id: _Optional[str] = ...) -> None: ...

class ListUnitsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "kind")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    kind: _identity_pb2.UnitKind
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., kind: _Optional[_Union[_identity_pb2.UnitKind, str]] = ...) -> None: ...

class ListUnitsResponse(_message.Message):
    __slots__ = ("units", "next_page_token")
    UNITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    units: _containers.RepeatedCompositeFieldContainer[Unit]
    next_page_token: str
    def __init__(self, units: _Optional[_Iterable[_Union[Unit, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateUnitRequest(_message.Message):
    __slots__ = ("unit", "update_mask")
    UNIT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    unit: Unit
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, unit: _Optional[_Union[Unit, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class CreateSiteRequest(_message.Message):
    __slots__ = ("site",)
    SITE_FIELD_NUMBER: _ClassVar[int]
    site: Site
    def __init__(self, site: _Optional[_Union[Site, _Mapping]] = ...) -> None: ...

class GetSiteRequest(_message.Message):
    __slots__ = ("site_id",)
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    def __init__(self, site_id: _Optional[str] = ...) -> None: ...

class ListSitesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "division_prefix", "place_category", "managing_unit_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DIVISION_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PLACE_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MANAGING_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    division_prefix: str
    place_category: PlaceCategory
    managing_unit_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., division_prefix: _Optional[str] = ..., place_category: _Optional[_Union[PlaceCategory, str]] = ..., managing_unit_id: _Optional[str] = ...) -> None: ...

class ListSitesResponse(_message.Message):
    __slots__ = ("sites", "next_page_token")
    SITES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sites: _containers.RepeatedCompositeFieldContainer[Site]
    next_page_token: str
    def __init__(self, sites: _Optional[_Iterable[_Union[Site, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateSiteRequest(_message.Message):
    __slots__ = ("site", "update_mask")
    SITE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    site: Site
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, site: _Optional[_Union[Site, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class RegisterDeviceRequest(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class ImportDevicesRequest(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ...) -> None: ...

class ImportDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ...) -> None: ...

class GetDeviceRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "division_prefix", "place_category", "state", "owner_unit_id", "site_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DIVISION_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PLACE_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OWNER_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    division_prefix: str
    place_category: PlaceCategory
    state: DeviceState
    owner_unit_id: str
    site_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., division_prefix: _Optional[str] = ..., place_category: _Optional[_Union[PlaceCategory, str]] = ..., state: _Optional[_Union[DeviceState, str]] = ..., owner_unit_id: _Optional[str] = ..., site_id: _Optional[str] = ...) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices", "next_page_token")
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    next_page_token: str
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateDeviceRequest(_message.Message):
    __slots__ = ("device", "update_mask", "work_order_ref")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    WORK_ORDER_REF_FIELD_NUMBER: _ClassVar[int]
    device: Device
    update_mask: _field_mask_pb2.FieldMask
    work_order_ref: str
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., work_order_ref: _Optional[str] = ...) -> None: ...

class ActivateDeviceRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class SuspendDeviceRequest(_message.Message):
    __slots__ = ("device_id", "reason")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    reason: str
    def __init__(self, device_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DecommissionDeviceRequest(_message.Message):
    __slots__ = ("device_id", "work_order_ref", "reason")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    WORK_ORDER_REF_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    work_order_ref: str
    reason: str
    def __init__(self, device_id: _Optional[str] = ..., work_order_ref: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class KeepaliveRequest(_message.Message):
    __slots__ = ("device_id", "reported_latitude", "reported_longitude", "reported_direction_deg")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTED_LATITUDE_FIELD_NUMBER: _ClassVar[int]
    REPORTED_LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    REPORTED_DIRECTION_DEG_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    reported_latitude: float
    reported_longitude: float
    reported_direction_deg: float
    def __init__(self, device_id: _Optional[str] = ..., reported_latitude: _Optional[float] = ..., reported_longitude: _Optional[float] = ..., reported_direction_deg: _Optional[float] = ...) -> None: ...

class KeepaliveResponse(_message.Message):
    __slots__ = ("state", "last_keepalive_time", "offline_deadline", "went_online", "unauthorized_change_detected")
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_KEEPALIVE_TIME_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    WENT_ONLINE_FIELD_NUMBER: _ClassVar[int]
    UNAUTHORIZED_CHANGE_DETECTED_FIELD_NUMBER: _ClassVar[int]
    state: DeviceState
    last_keepalive_time: _timestamp_pb2.Timestamp
    offline_deadline: _timestamp_pb2.Timestamp
    went_online: bool
    unauthorized_change_detected: bool
    def __init__(self, state: _Optional[_Union[DeviceState, str]] = ..., last_keepalive_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offline_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., went_online: _Optional[bool] = ..., unauthorized_change_detected: _Optional[bool] = ...) -> None: ...

class KeepaliveRejection(_message.Message):
    __slots__ = ("device_id", "code", "rule", "message")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    code: str
    rule: str
    message: str
    def __init__(self, device_id: _Optional[str] = ..., code: _Optional[str] = ..., rule: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class StreamKeepalivesResponse(_message.Message):
    __slots__ = ("received", "accepted", "rejected", "rejections", "went_online", "unauthorized_changes")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    REJECTIONS_FIELD_NUMBER: _ClassVar[int]
    WENT_ONLINE_FIELD_NUMBER: _ClassVar[int]
    UNAUTHORIZED_CHANGES_FIELD_NUMBER: _ClassVar[int]
    received: int
    accepted: int
    rejected: int
    rejections: _containers.RepeatedCompositeFieldContainer[KeepaliveRejection]
    went_online: int
    unauthorized_changes: int
    def __init__(self, received: _Optional[int] = ..., accepted: _Optional[int] = ..., rejected: _Optional[int] = ..., rejections: _Optional[_Iterable[_Union[KeepaliveRejection, _Mapping]]] = ..., went_online: _Optional[int] = ..., unauthorized_changes: _Optional[int] = ...) -> None: ...

class GetFilingRequest(_message.Message):
    __slots__ = ("unit_id", "site_id")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    site_id: str
    def __init__(self, unit_id: _Optional[str] = ..., site_id: _Optional[str] = ...) -> None: ...

class ListFilingsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "unit_id", "site_id", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    unit_id: str
    site_id: str
    state: FilingState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., unit_id: _Optional[str] = ..., site_id: _Optional[str] = ..., state: _Optional[_Union[FilingState, str]] = ...) -> None: ...

class ListFilingsResponse(_message.Message):
    __slots__ = ("filings", "next_page_token")
    FILINGS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    filings: _containers.RepeatedCompositeFieldContainer[Filing]
    next_page_token: str
    def __init__(self, filings: _Optional[_Iterable[_Union[Filing, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RecordFilingRequest(_message.Message):
    __slots__ = ("unit_id", "site_id", "filing_number", "filed_on")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    FILING_NUMBER_FIELD_NUMBER: _ClassVar[int]
    FILED_ON_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    site_id: str
    filing_number: str
    filed_on: str
    def __init__(self, unit_id: _Optional[str] = ..., site_id: _Optional[str] = ..., filing_number: _Optional[str] = ..., filed_on: _Optional[str] = ...) -> None: ...

class ExportFilingDossierRequest(_message.Message):
    __slots__ = ("unit_id", "site_id")
    UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    unit_id: str
    site_id: str
    def __init__(self, unit_id: _Optional[str] = ..., site_id: _Optional[str] = ...) -> None: ...

class ExportFilingDossierResponse(_message.Message):
    __slots__ = ("dossier_json", "filing")
    DOSSIER_JSON_FIELD_NUMBER: _ClassVar[int]
    FILING_FIELD_NUMBER: _ClassVar[int]
    dossier_json: str
    filing: Filing
    def __init__(self, dossier_json: _Optional[str] = ..., filing: _Optional[_Union[Filing, _Mapping]] = ...) -> None: ...

class GetComplianceSummaryRequest(_message.Message):
    __slots__ = ("division_prefix", "max_items")
    DIVISION_PREFIX_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_FIELD_NUMBER: _ClassVar[int]
    division_prefix: str
    max_items: int
    def __init__(self, division_prefix: _Optional[str] = ..., max_items: _Optional[int] = ...) -> None: ...

class SiteGap(_message.Message):
    __slots__ = ("site_id", "name", "place_category", "managing_unit_id")
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PLACE_CATEGORY_FIELD_NUMBER: _ClassVar[int]
    MANAGING_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    site_id: str
    name: str
    place_category: PlaceCategory
    managing_unit_id: str
    def __init__(self, site_id: _Optional[str] = ..., name: _Optional[str] = ..., place_category: _Optional[_Union[PlaceCategory, str]] = ..., managing_unit_id: _Optional[str] = ...) -> None: ...

class DeviceGap(_message.Message):
    __slots__ = ("device_id", "site_id", "owner_unit_id", "state", "rule")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site_id: str
    owner_unit_id: str
    state: DeviceState
    rule: str
    def __init__(self, device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., owner_unit_id: _Optional[str] = ..., state: _Optional[_Union[DeviceState, str]] = ..., rule: _Optional[str] = ...) -> None: ...

class DeviceOutage(_message.Message):
    __slots__ = ("device_id", "site_id", "owner_unit_id", "offline_time", "outage", "over_limit")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_TIME_FIELD_NUMBER: _ClassVar[int]
    OUTAGE_FIELD_NUMBER: _ClassVar[int]
    OVER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    site_id: str
    owner_unit_id: str
    offline_time: _timestamp_pb2.Timestamp
    outage: _duration_pb2.Duration
    over_limit: bool
    def __init__(self, device_id: _Optional[str] = ..., site_id: _Optional[str] = ..., owner_unit_id: _Optional[str] = ..., offline_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outage: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., over_limit: _Optional[bool] = ...) -> None: ...

class ComplianceSummary(_message.Message):
    __slots__ = ("compute_time", "sites_without_active_device_count", "sites_without_active_device", "overdue_filings_count", "overdue_filings", "devices_missing_privacy_measures_count", "devices_missing_privacy_measures", "devices_missing_notice_sign_count", "devices_missing_notice_sign", "offline_devices_count", "outages_over_limit_count", "offline_devices", "outage_limit", "change_pending_filings_count", "device_count", "active_device_count", "site_count")
    COMPUTE_TIME_FIELD_NUMBER: _ClassVar[int]
    SITES_WITHOUT_ACTIVE_DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SITES_WITHOUT_ACTIVE_DEVICE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FILINGS_COUNT_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FILINGS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_MISSING_PRIVACY_MEASURES_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEVICES_MISSING_PRIVACY_MEASURES_FIELD_NUMBER: _ClassVar[int]
    DEVICES_MISSING_NOTICE_SIGN_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEVICES_MISSING_NOTICE_SIGN_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_DEVICES_COUNT_FIELD_NUMBER: _ClassVar[int]
    OUTAGES_OVER_LIMIT_COUNT_FIELD_NUMBER: _ClassVar[int]
    OFFLINE_DEVICES_FIELD_NUMBER: _ClassVar[int]
    OUTAGE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    CHANGE_PENDING_FILINGS_COUNT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_DEVICE_COUNT_FIELD_NUMBER: _ClassVar[int]
    SITE_COUNT_FIELD_NUMBER: _ClassVar[int]
    compute_time: _timestamp_pb2.Timestamp
    sites_without_active_device_count: int
    sites_without_active_device: _containers.RepeatedCompositeFieldContainer[SiteGap]
    overdue_filings_count: int
    overdue_filings: _containers.RepeatedCompositeFieldContainer[Filing]
    devices_missing_privacy_measures_count: int
    devices_missing_privacy_measures: _containers.RepeatedCompositeFieldContainer[DeviceGap]
    devices_missing_notice_sign_count: int
    devices_missing_notice_sign: _containers.RepeatedCompositeFieldContainer[DeviceGap]
    offline_devices_count: int
    outages_over_limit_count: int
    offline_devices: _containers.RepeatedCompositeFieldContainer[DeviceOutage]
    outage_limit: _duration_pb2.Duration
    change_pending_filings_count: int
    device_count: int
    active_device_count: int
    site_count: int
    def __init__(self, compute_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sites_without_active_device_count: _Optional[int] = ..., sites_without_active_device: _Optional[_Iterable[_Union[SiteGap, _Mapping]]] = ..., overdue_filings_count: _Optional[int] = ..., overdue_filings: _Optional[_Iterable[_Union[Filing, _Mapping]]] = ..., devices_missing_privacy_measures_count: _Optional[int] = ..., devices_missing_privacy_measures: _Optional[_Iterable[_Union[DeviceGap, _Mapping]]] = ..., devices_missing_notice_sign_count: _Optional[int] = ..., devices_missing_notice_sign: _Optional[_Iterable[_Union[DeviceGap, _Mapping]]] = ..., offline_devices_count: _Optional[int] = ..., outages_over_limit_count: _Optional[int] = ..., offline_devices: _Optional[_Iterable[_Union[DeviceOutage, _Mapping]]] = ..., outage_limit: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., change_pending_filings_count: _Optional[int] = ..., device_count: _Optional[int] = ..., active_device_count: _Optional[int] = ..., site_count: _Optional[int] = ...) -> None: ...
