import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from vigil.audit.v1 import audit_record_pb2 as _audit_record_pb2
from vigil.common.v1 import time_range_pb2 as _time_range_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EntryView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_VIEW_UNSPECIFIED: _ClassVar[EntryView]
    ENTRY_VIEW_FULL: _ClassVar[EntryView]
    ENTRY_VIEW_LEAF: _ClassVar[EntryView]
ENTRY_VIEW_UNSPECIFIED: EntryView
ENTRY_VIEW_FULL: EntryView
ENTRY_VIEW_LEAF: EntryView

class SignedTreeHead(_message.Message):
    __slots__ = ("tree_size", "root_hash", "timestamp", "signature", "key_id")
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    root_hash: str
    timestamp: _timestamp_pb2.Timestamp
    signature: bytes
    key_id: str
    def __init__(self, tree_size: _Optional[int] = ..., root_hash: _Optional[str] = ..., timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signature: _Optional[bytes] = ..., key_id: _Optional[str] = ...) -> None: ...

class GetPublicKeyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PublicKey(_message.Message):
    __slots__ = ("public_key_pem", "key_id")
    PUBLIC_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    public_key_pem: str
    key_id: str
    def __init__(self, public_key_pem: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class GetSignedTreeHeadRequest(_message.Message):
    __slots__ = ("tree_size",)
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    tree_size: int
    def __init__(self, tree_size: _Optional[int] = ...) -> None: ...

class ListTreeHeadsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "max_tree_size")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MAX_TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    max_tree_size: int
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., max_tree_size: _Optional[int] = ...) -> None: ...

class ListTreeHeadsResponse(_message.Message):
    __slots__ = ("tree_heads", "next_page_token")
    TREE_HEADS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tree_heads: _containers.RepeatedCompositeFieldContainer[SignedTreeHead]
    next_page_token: str
    def __init__(self, tree_heads: _Optional[_Iterable[_Union[SignedTreeHead, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("record_id", "leaf_index", "tree_size")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    leaf_index: int
    tree_size: int
    def __init__(self, record_id: _Optional[str] = ..., leaf_index: _Optional[int] = ..., tree_size: _Optional[int] = ...) -> None: ...

class InclusionProof(_message.Message):
    __slots__ = ("leaf_index", "leaf_hash", "tree_size", "root_hash", "hashes", "tree_head", "entry")
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    TREE_SIZE_FIELD_NUMBER: _ClassVar[int]
    ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    leaf_index: int
    leaf_hash: str
    tree_size: int
    root_hash: str
    hashes: _containers.RepeatedScalarFieldContainer[str]
    tree_head: SignedTreeHead
    entry: LogEntry
    def __init__(self, leaf_index: _Optional[int] = ..., leaf_hash: _Optional[str] = ..., tree_size: _Optional[int] = ..., root_hash: _Optional[str] = ..., hashes: _Optional[_Iterable[str]] = ..., tree_head: _Optional[_Union[SignedTreeHead, _Mapping]] = ..., entry: _Optional[_Union[LogEntry, _Mapping]] = ...) -> None: ...

class GetConsistencyProofRequest(_message.Message):
    __slots__ = ("old_size", "new_size")
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    old_size: int
    new_size: int
    def __init__(self, old_size: _Optional[int] = ..., new_size: _Optional[int] = ...) -> None: ...

class ConsistencyProof(_message.Message):
    __slots__ = ("old_size", "new_size", "old_root_hash", "new_root_hash", "hashes", "old_tree_head", "new_tree_head")
    OLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEW_SIZE_FIELD_NUMBER: _ClassVar[int]
    OLD_ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    NEW_ROOT_HASH_FIELD_NUMBER: _ClassVar[int]
    HASHES_FIELD_NUMBER: _ClassVar[int]
    OLD_TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    NEW_TREE_HEAD_FIELD_NUMBER: _ClassVar[int]
    old_size: int
    new_size: int
    old_root_hash: str
    new_root_hash: str
    hashes: _containers.RepeatedScalarFieldContainer[str]
    old_tree_head: SignedTreeHead
    new_tree_head: SignedTreeHead
    def __init__(self, old_size: _Optional[int] = ..., new_size: _Optional[int] = ..., old_root_hash: _Optional[str] = ..., new_root_hash: _Optional[str] = ..., hashes: _Optional[_Iterable[str]] = ..., old_tree_head: _Optional[_Union[SignedTreeHead, _Mapping]] = ..., new_tree_head: _Optional[_Union[SignedTreeHead, _Mapping]] = ...) -> None: ...

class LogEntry(_message.Message):
    __slots__ = ("leaf_index", "leaf_hash", "leaf", "record")
    LEAF_INDEX_FIELD_NUMBER: _ClassVar[int]
    LEAF_HASH_FIELD_NUMBER: _ClassVar[int]
    LEAF_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    leaf_index: int
    leaf_hash: str
    leaf: bytes
    record: _audit_record_pb2.AuditRecord
    def __init__(self, leaf_index: _Optional[int] = ..., leaf_hash: _Optional[str] = ..., leaf: _Optional[bytes] = ..., record: _Optional[_Union[_audit_record_pb2.AuditRecord, _Mapping]] = ...) -> None: ...

class ListRecordsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "start_index", "end_index", "view")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    END_INDEX_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    start_index: int
    end_index: int
    view: EntryView
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., start_index: _Optional[int] = ..., end_index: _Optional[int] = ..., view: _Optional[_Union[EntryView, str]] = ...) -> None: ...

class ListRecordsResponse(_message.Message):
    __slots__ = ("entries", "next_page_token", "log_size")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LOG_SIZE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LogEntry]
    next_page_token: str
    log_size: int
    def __init__(self, entries: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., log_size: _Optional[int] = ...) -> None: ...

class QueryRecordsRequest(_message.Message):
    __slots__ = ("device_id", "footage", "principal_id", "grant_id", "action", "export_id", "time", "page_size", "page_token", "view")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    FOOTAGE_FIELD_NUMBER: _ClassVar[int]
    PRINCIPAL_ID_FIELD_NUMBER: _ClassVar[int]
    GRANT_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    EXPORT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    footage: _time_range_pb2.TimeRange
    principal_id: str
    grant_id: str
    action: str
    export_id: str
    time: _time_range_pb2.TimeRange
    page_size: int
    page_token: str
    view: EntryView
    def __init__(self, device_id: _Optional[str] = ..., footage: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., principal_id: _Optional[str] = ..., grant_id: _Optional[str] = ..., action: _Optional[str] = ..., export_id: _Optional[str] = ..., time: _Optional[_Union[_time_range_pb2.TimeRange, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., view: _Optional[_Union[EntryView, str]] = ...) -> None: ...

class QueryRecordsResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[LogEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[LogEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
