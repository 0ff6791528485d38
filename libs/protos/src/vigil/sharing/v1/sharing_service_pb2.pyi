import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from vigil.common.v1 import identity_pb2 as _identity_pb2
from vigil.common.v1 import time_range_pb2 as _time_range_pb2
from vigil.registry.v1 import registry_service_pb2 as _registry_service_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Purpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PURPOSE_UNSPECIFIED: _ClassVar[Purpose]
    PURPOSE_CRIMINAL_INVESTIGATION: _ClassVar[Purpose]
    PURPOSE_PUBLIC_ORDER: _ClassVar[Purpose]
    PURPOSE_TRAFFIC_MANAGEMENT: _ClassVar[Purpose]
    PURPOSE_EMERGENCY_RESPONSE: _ClassVar[Purpose]
    PURPOSE_URBAN_MANAGEMENT: _ClassVar[Purpose]
    PURPOSE_OTHER: _ClassVar[Purpose]

class Action(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_UNSPECIFIED: _ClassVar[Action]
    ACTION_LIVE_VIEW: _ClassVar[Action]
    ACTION_PLAYBACK: _ClassVar[Action]
    ACTION_EXPORT: _ClassVar[Action]
    ACTION_SUBSCRIBE_EVENTS: _ClassVar[Action]

class RequestState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REQUEST_STATE_UNSPECIFIED: _ClassVar[RequestState]
    REQUEST_STATE_PENDING: _ClassVar[RequestState]
    REQUEST_STATE_APPROVED: _ClassVar[RequestState]
    REQUEST_STATE_DENIED: _ClassVar[RequestState]
    REQUEST_STATE_REVOKED: _ClassVar[RequestState]
    REQUEST_STATE_EXPIRED: _ClassVar[RequestState]
PURPOSE_UNSPECIFIED: Purpose
PURPOSE_CRIMINAL_INVESTIGATION: Purpose
PURPOSE_PUBLIC_ORDER: Purpose
PURPOSE_TRAFFIC_MANAGEMENT: Purpose
PURPOSE_EMERGENCY_RESPONSE: Purpose
PURPOSE_URBAN_MANAGEMENT: Purpose
PURPOSE_OTHER: Purpose
ACTION_UNSPECIFIED: Action
ACTION_LIVE_VIEW: Action
ACTION_PLAYBACK: Action
ACTION_EXPORT: Action
ACTION_SUBSCRIBE_EVENTS: Action
REQUEST_STATE_UNSPECIFIED: RequestState
REQUEST_STATE_PENDING: RequestState
REQUEST_STATE_APPROVED: RequestState
REQUEST_STATE_DENIED: RequestState
REQUEST_STATE_REVOKED: RequestState
REQUEST_STATE_EXPIRED: RequestState

class Scope(_message.Message):
    __slots__ = ("device_ids", "site_ids", "division_prefixes", "place_categories")
    DEVICE_IDS_FIELD_NUMBER: _ClassVar[int]
    SITE_IDS_FIELD_NUMBER: _ClassVar[int]
    DIVISION_PREFIXES_FIELD_NUMBER: _ClassVar[int]
    PLACE_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    device_ids: _containers.RepeatedScalarFieldContainer[str]
    site_ids: _containers.RepeatedScalarFieldContainer[str]
    division_prefixes: _containers.RepeatedScalarFieldContainer[str]
    place_categories: _containers.RepeatedScalarFieldContainer[_registry_service_pb2.PlaceCategory]
    def __init__(self, device_ids: _Optional[_Iterable[str]] = ..., site_ids: _Optional[_Iterable[str]] = ..., division_prefixes: _Optional[_Iterable[str]] = ..., place_categories: _Optional[_Iterable[_Union[_registry_service_pb2.PlaceCategory, str]]] = ...) -> None: ...

class Officer(_message.Message):
    __slots__ = ("name", "work_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORK_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    work_id: str
    def __init__(self, name: _Optional[str] = ..., work_id: _Optional[str] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("principal_id", "unit", "approve_time")
    PRINCIPAL_ID_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    APPROVE_TIME_FIELD_NUMBER: _ClassVar[int]
    principal_id: str
    unit: str
    approve_time: _timestamp_pb2.Timestamp
    def __init__(self, principal_id: _Optional[str] = ..., unit: _Optional[str] = ..., approve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AccessRequest(_message.Message):
    __slots__ = ("request_id", "requester", "purpose", "legal_basis", "scope", "actions", "footage_window", "valid_from", "valid_until", "approval_document_ref", "officers", "agreement_ref", "state", "approvals", "required_approvals", "decided_by", "decide_time", "decision_reason", "revoked_by", "revoke_time", "revoke_reason", "expire_time", "create_time")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    FOOTAGE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    VALID_FROM_FIELD_NUMBER: _ClassVar[int]
    VALID_UNTIL_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_DOCUMENT_REF_FIELD_NUMBER: _ClassVar[int]
    OFFICERS_FIELD_NUMBER: _ClassVar[int]
    AGREEMENT_REF_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    DECISION_REASON_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    REVOKE_TIME_FIELD_NUMBER: _ClassVar[int]
    REVOKE_REASON_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    requester: _identity_pb2.Principal
    purpose: Purpose
    legal_basis: str
    scope: Scope
    actions: _containers.RepeatedScalarFieldContainer[Action]
    footage_window: _time_range_pb2.TimeRange
    valid_from: _timestamp_pb2.Timestamp
    valid_until: _timestamp_pb2.Timestamp
    approval_document_ref: str
    officers: _containers.RepeatedCompositeFieldContainer[Officer]
    agreement_ref: str
    state: RequestState
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    required_approvals: int
    decided_by: str
    decide_time: _timestamp_pb2.Timestamp
    decision_reason: str
    revoked_by: str
    revoke_time: _timestamp_pb2.Timestamp
    revoke_reason: str
    expire_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., requester: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ..., purpose: _Optional[_Union[Purpose, str]] = ..., legal_basis: _Optional[str] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[Action, str]]] = ..., footage_window: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., valid_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., valid_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., approval_document_ref: _Optional[str] = ..., officers: _Optional[_Iterable[_Union[Officer, _Mapping]]] = ..., agreement_ref: _Optional[str] = ..., state: _Optional[_Union[RequestState, str]] = ..., approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., required_approvals: _Optional[int] = ..., decided_by: _Optional[str] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., decision_reason: _Optional[str] = ..., revoked_by: _Optional[str] = ..., revoke_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., revoke_reason: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PrincipalFacts(_message.Message):
    __slots__ = ("principal_id", "unmask_right", "secret_clearance", "contract", "update_time")
    PRINCIPAL_ID_FIELD_NUMBER: _ClassVar[int]
    UNMASK_RIGHT_FIELD_NUMBER: _ClassVar[int]
    SECRET_CLEARANCE_FIELD_NUMBER: _ClassVar[int]
    CONTRACT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    principal_id: str
    unmask_right: bool
    secret_clearance: bool
    contract: Contract
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, principal_id: _Optional[str] = ..., unmask_right: _Optional[bool] = ..., secret_clearance: _Optional[bool] = ..., contract: _Optional[_Union[Contract, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Contract(_message.Message):
    __slots__ = ("contract_id", "scope", "end_time", "actions")
    CONTRACT_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    contract_id: str
    scope: Scope
    end_time: _timestamp_pb2.Timestamp
    actions: _containers.RepeatedScalarFieldContainer[Action]
    def __init__(self, contract_id: _Optional[str] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[Action, str]]] = ...) -> None: ...

class Subscription(_message.Message):
    __slots__ = ("subscription_id", "partner_unit_id", "event_types", "scope", "grant_id", "create_time", "creator")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    PARTNER_UNIT_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATOR_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    partner_unit_id: str
    event_types: _containers.RepeatedScalarFieldContainer[str]
    scope: Scope
    grant_id: str
    create_time: _timestamp_pb2.Timestamp
    creator: _identity_pb2.Principal
    def __init__(self, subscription_id: _Optional[str] = ..., partner_unit_id: _Optional[str] = ..., event_types: _Optional[_Iterable[str]] = ..., scope: _Optional[_Union[Scope, _Mapping]] = ..., grant_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., creator: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class PartnerEvent(_message.Message):
    __slots__ = ("ce_id", "ce_type", "ce_source", "ce_time", "subject", "data", "cursor")
    CE_ID_FIELD_NUMBER: _ClassVar[int]
    CE_TYPE_FIELD_NUMBER: _ClassVar[int]
    CE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    CE_TIME_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    ce_id: str
    ce_type: str
    ce_source: str
    ce_time: _timestamp_pb2.Timestamp
    subject: str
    data: bytes
    cursor: str
    def __init__(self, ce_id: _Optional[str] = ..., ce_type: _Optional[str] = ..., ce_source: _Optional[str] = ..., ce_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., subject: _Optional[str] = ..., data: _Optional[bytes] = ..., cursor: _Optional[str] = ...) -> None: ...

class CreateAccessRequestRequest(_message.Message):
    __slots__ = ("access_request",)
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    access_request: AccessRequest
    def __init__(self, access_request: _Optional[_Union[AccessRequest, _Mapping]] = ...) -> None: ...

class GetAccessRequestRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class ListAccessRequestsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state", "requester_id")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: RequestState
    requester_id: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[RequestState, str]] = ..., requester_id: _Optional[str] = ...) -> None: ...

class ListAccessRequestsResponse(_message.Message):
    __slots__ = ("access_requests", "next_page_token")
    ACCESS_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    access_requests: _containers.RepeatedCompositeFieldContainer[AccessRequest]
    next_page_token: str
    def __init__(self, access_requests: _Optional[_Iterable[_Union[AccessRequest, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ApproveAccessRequestRequest(_message.Message):
    __slots__ = ("request_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DenyAccessRequestRequest(_message.Message):
    __slots__ = ("request_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WithdrawAccessRequestRequest(_message.Message):
    __slots__ = ("request_id", "reason")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    reason: str
    def __init__(self, request_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RevokeGrantRequest(_message.Message):
    __slots__ = ("grant_id", "reason")
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    grant_id: str
    reason: str
    def __init__(self, grant_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class AuthorizeRequest(_message.Message):
    __slots__ = ("action", "device_id", "footage_window", "principal")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    FOOTAGE_WINDOW_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_FIELD_NUMBER: _ClassVar[int]
    action: Action
    device_id: str
    footage_window: _time_range_pb2.TimeRange
    principal: _identity_pb2.Principal
    def __init__(self, action: _Optional[_Union[Action, str]] = ..., device_id: _Optional[str] = ..., footage_window: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., principal: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class AuthorizeResponse(_message.Message):
    __slots__ = ("allowed", "reason", "rule", "grant_id", "unmasked_allowed", "audit_record_id")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    UNMASKED_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    AUDIT_RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    rule: str
    grant_id: str
    unmasked_allowed: bool
    audit_record_id: str
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ..., rule: _Optional[str] = ..., grant_id: _Optional[str] = ..., unmasked_allowed: _Optional[bool] = ..., audit_record_id: _Optional[str] = ...) -> None: ...

class GetPrincipalFactsRequest(_message.Message):
    __slots__ = ("principal_id",)
    PRINCIPAL_ID_FIELD_NUMBER: _ClassVar[int]
    principal_id: str
    def __init__(self, principal_id: _Optional[str] = ...) -> None: ...

class SetPrincipalFactsRequest(_message.Message):
    __slots__ = ("facts",)
    FACTS_FIELD_NUMBER: _ClassVar[int]
    facts: PrincipalFacts
    def __init__(self, facts: _Optional[_Union[PrincipalFacts, _Mapping]] = ...) -> None: ...

class CreateSubscriptionRequest(_message.Message):
    __slots__ = ("subscription",)
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subscription: Subscription
    def __init__(self, subscription: _Optional[_Union[Subscription, _Mapping]] = ...) -> None: ...

class ListSubscriptionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSubscriptionsResponse(_message.Message):
    __slots__ = ("subscriptions", "next_page_token")
    SUBSCRIPTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    subscriptions: _containers.RepeatedCompositeFieldContainer[Subscription]
    next_page_token: str
    def __init__(self, subscriptions: _Optional[_Iterable[_Union[Subscription, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("subscription_id", "cursor")
    SUBSCRIPTION_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    subscription_id: str
    cursor: str
    def __init__(self, subscription_id: _Optional[str] = ..., cursor: _Optional[str] = ...) -> None: ...
