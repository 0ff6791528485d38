from vigil.common.v1 import identity_pb2 as _identity_pb2
from vigil.sharing.v1 import sharing_service_pb2 as _sharing_service_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AccessRequested(_message.Message):
    __slots__ = ("access_request", "actor")
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    access_request: _sharing_service_pb2.AccessRequest
    actor: _identity_pb2.Principal
    def __init__(self, access_request: _Optional[_Union[_sharing_service_pb2.AccessRequest, _Mapping]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class AccessApproved(_message.Message):
    __slots__ = ("access_request", "actor")
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    access_request: _sharing_service_pb2.AccessRequest
    actor: _identity_pb2.Principal
    def __init__(self, access_request: _Optional[_Union[_sharing_service_pb2.AccessRequest, _Mapping]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class AccessDenied(_message.Message):
    __slots__ = ("access_request", "actor")
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    access_request: _sharing_service_pb2.AccessRequest
    actor: _identity_pb2.Principal
    def __init__(self, access_request: _Optional[_Union[_sharing_service_pb2.AccessRequest, _Mapping]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class GrantRevoked(_message.Message):
    __slots__ = ("access_request", "actor")
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    access_request: _sharing_service_pb2.AccessRequest
    actor: _identity_pb2.Principal
    def __init__(self, access_request: _Optional[_Union[_sharing_service_pb2.AccessRequest, _Mapping]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class GrantExpired(_message.Message):
    __slots__ = ("access_request",)
    ACCESS_REQUEST_FIELD_NUMBER: _ClassVar[int]
    access_request: _sharing_service_pb2.AccessRequest
    def __init__(self, access_request: _Optional[_Union[_sharing_service_pb2.AccessRequest, _Mapping]] = ...) -> None: ...

class PrincipalFactsChanged(_message.Message):
    __slots__ = ("facts", "actor")
    FACTS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    facts: _sharing_service_pb2.PrincipalFacts
    actor: _identity_pb2.Principal
    def __init__(self, facts: _Optional[_Union[_sharing_service_pb2.PrincipalFacts, _Mapping]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...

class SubscriptionCreated(_message.Message):
    __slots__ = ("subscription", "actor")
    SUBSCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    subscription: _sharing_service_pb2.Subscription
    actor: _identity_pb2.Principal
    def __init__(self, subscription: _Optional[_Union[_sharing_service_pb2.Subscription, _Mapping]] = ..., actor: _Optional[_Union[_identity_pb2.Principal, _Mapping]] = ...) -> None: ...
