from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_PLATFORM_ADMIN: _ClassVar[Role]
    ROLE_PUBLIC_SECURITY_OFFICER: _ClassVar[Role]
    ROLE_DEPARTMENT_ANALYST: _ClassVar[Role]
    ROLE_UNIT_OPERATOR: _ClassVar[Role]
    ROLE_AUDITOR: _ClassVar[Role]
    ROLE_PARTNER: _ClassVar[Role]
    ROLE_CONTRACTOR: _ClassVar[Role]
    ROLE_SERVICE: _ClassVar[Role]

class UnitKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNIT_KIND_UNSPECIFIED: _ClassVar[UnitKind]
    UNIT_KIND_GOVERNMENT_DEPARTMENT: _ClassVar[UnitKind]
    UNIT_KIND_PUBLIC_SECURITY_ORGAN: _ClassVar[UnitKind]
    UNIT_KIND_ENTERPRISE: _ClassVar[UnitKind]
    UNIT_KIND_INSTITUTION: _ClassVar[UnitKind]
    UNIT_KIND_INDIVIDUAL: _ClassVar[UnitKind]
    UNIT_KIND_PARTNER: _ClassVar[UnitKind]
ROLE_UNSPECIFIED: Role
ROLE_PLATFORM_ADMIN: Role
ROLE_PUBLIC_SECURITY_OFFICER: Role
ROLE_DEPARTMENT_ANALYST: Role
ROLE_UNIT_OPERATOR: Role
ROLE_AUDITOR: Role
ROLE_PARTNER: Role
ROLE_CONTRACTOR: Role
ROLE_SERVICE: Role
UNIT_KIND_UNSPECIFIED: UnitKind
UNIT_KIND_GOVERNMENT_DEPARTMENT: UnitKind
UNIT_KIND_PUBLIC_SECURITY_ORGAN: UnitKind
UNIT_KIND_ENTERPRISE: UnitKind
UNIT_KIND_INSTITUTION: UnitKind
UNIT_KIND_INDIVIDUAL: UnitKind
UNIT_KIND_PARTNER: UnitKind

class Principal(_message.Message):
    __slots__ = ("id", "name", "unit", "unit_kind", "roles")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    UNIT_KIND_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    unit: str
    unit_kind: UnitKind
    roles: _containers.RepeatedScalarFieldContainer[Role]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., unit: _Optional[str] = ..., unit_kind: _Optional[_Union[UnitKind, str]] = ..., roles: _Optional[_Iterable[_Union[Role, str]]] = ...) -> None: ...
