"""vigil.audit.v1.AuditService: signed tree heads, proofs, entries and who-saw-what queries (AUD-1, AUD-2).

Reading the log needs ROLE_AUDITOR, ROLE_PLATFORM_ADMIN or ROLE_PUBLIC_SECURITY_OFFICER; everyone else is
refused (deny by default). Only the public key is open to any authenticated caller. A tree size beyond
the latest signed tree head is OUT_OF_RANGE; other bad arguments are INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from vigil.audit.v1 import audit_service_pb2 as pb
from vigil.audit.v1 import audit_service_pb2_grpc
from vigil_audit import codec
from vigil_audit.domain.sth import SignedTreeHead
from vigil_audit.signing import LogKey
from vigil_audit.store import (
    LogStore,
    RecordQuery,
    StoredEntry,
    decode_page_token,
    encode_page_token,
)
from vigil_kit import merkle
from vigil_kit.auth import current_principal
from vigil_kit.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange, PermissionDenied

READER_ROLES = ("ROLE_AUDITOR", "ROLE_PLATFORM_ADMIN", "ROLE_PUBLIC_SECURITY_OFFICER")

DEFAULT_PAGE = 100
MAX_HEADS_PAGE = 1000
MAX_RECORDS_PAGE = 5000
MAX_QUERY_PAGE = 1000


def _require_reader() -> None:
    principal = current_principal()
    if not principal.has_role(*READER_ROLES):
        raise PermissionDenied(
            "reading the audit log needs ROLE_AUDITOR, ROLE_PLATFORM_ADMIN or ROLE_PUBLIC_SECURITY_OFFICER",
            rule="AUD-1",
        )


def _page_size(value: int, maximum: int) -> int:
    if value < 0:
        raise InvalidArgument("page_size must not be negative", field="page_size")
    return min(value or DEFAULT_PAGE, maximum)


def _token(token: str, kind: str, fingerprint: str = "") -> int:
    """The position a page token continues after (or -1 for the first page)."""
    if not token:
        return -1
    try:
        payload = decode_page_token(token)
        if payload.get("k") != kind or payload.get("f", "") != fingerprint:
            raise ValueError("a page token of another request")
        position = payload["after"]
        if not isinstance(position, int) or position < -1:
            raise ValueError("bad position")
    except (ValueError, KeyError):
        raise InvalidArgument("page_token is not a token this request returned", field="page_token") from None
    return position


def _next_token(kind: str, after: int, fingerprint: str = "") -> str:
    payload = {"k": kind, "after": after}
    if fingerprint:
        payload["f"] = fingerprint
    return encode_page_token(payload)


def head_message(head: SignedTreeHead, key_id: str) -> pb.SignedTreeHead:
    stamp = Timestamp()
    stamp.FromDatetime(head.head.timestamp)
    return pb.SignedTreeHead(
        tree_size=head.tree_size,
        root_hash=head.root_hash.hex(),
        timestamp=stamp,
        signature=head.signature,
        key_id=key_id,
    )


def entry_message(entry: StoredEntry, view: int) -> pb.LogEntry:
    msg = pb.LogEntry(leaf_index=entry.leaf_index, leaf_hash=entry.leaf_hash.hex(), leaf=entry.leaf)
    if view != pb.ENTRY_VIEW_LEAF:
        msg.record.CopyFrom(codec.record_from_leaf(entry.leaf))
    return msg


def _view(value: int) -> int:
    if value not in (pb.ENTRY_VIEW_UNSPECIFIED, pb.ENTRY_VIEW_FULL, pb.ENTRY_VIEW_LEAF):
        raise InvalidArgument(f"view {value} is not an EntryView", field="view")
    return value


def _us(ts: Timestamp) -> int:
    return ts.seconds * 1_000_000 + ts.nanos // 1000


class AuditServicer(audit_service_pb2_grpc.AuditServiceServicer):
    def __init__(self, store: LogStore, key: LogKey) -> None:
        self.store = store
        self.key = key
        # The latest head's message, built once per head rather than once per proof.
        self._head_msg: tuple[SignedTreeHead, str, pb.SignedTreeHead] | None = None

    def _head_message(self, head: SignedTreeHead, key_id: str) -> pb.SignedTreeHead:
        cached = self._head_msg
        if cached is not None and cached[0] == head and cached[1] == key_id:
            return cached[2]
        msg = head_message(head, key_id)
        self._head_msg = (head, key_id, msg)
        return msg

    async def GetPublicKey(self, request: pb.GetPublicKeyRequest, context: object) -> pb.PublicKey:
        current_principal()  # any authenticated caller: the key is public
        return pb.PublicKey(public_key_pem=self.key.public_key_pem, key_id=self.key.key_id)

    async def _latest(self) -> tuple[SignedTreeHead, str]:
        found = await self.store.latest_tree_head()
        if found is None:
            raise FailedPrecondition("the log has not signed a tree head yet; retry in a second")
        return found

    async def GetSignedTreeHead(
        self, request: pb.GetSignedTreeHeadRequest, context: object
    ) -> pb.SignedTreeHead:
        _require_reader()
        if request.tree_size < 0:
            raise InvalidArgument("tree_size must not be negative", field="tree_size")
        if request.tree_size == 0:
            return head_message(*await self._latest())
        found = await self.store.tree_head(request.tree_size)
        if found is None:
            latest, _ = await self._latest()
            if request.tree_size > latest.tree_size:
                raise OutOfRange(
                    f"tree_size {request.tree_size} is beyond the latest signed tree head ({latest.tree_size})",
                    field="tree_size",
                )
            raise NotFound(f"no tree head was signed for size {request.tree_size}", field="tree_size")
        return head_message(*found)

    async def ListTreeHeads(
        self, request: pb.ListTreeHeadsRequest, context: object
    ) -> pb.ListTreeHeadsResponse:
        _require_reader()
        size = _page_size(request.page_size, MAX_HEADS_PAGE)
        if request.max_tree_size < 0:
            raise InvalidArgument("max_tree_size must not be negative", field="max_tree_size")
        max_size = request.max_tree_size or None
        after = _token(request.page_token, "heads", str(request.max_tree_size))
        heads = await self.store.tree_heads(after_size=after, limit=size + 1, max_size=max_size)
        response = pb.ListTreeHeadsResponse(tree_heads=[head_message(h, k) for h, k in heads[:size]])
        if len(heads) > size:
            response.next_page_token = _next_token(
                "heads", heads[size - 1][0].tree_size, str(request.max_tree_size)
            )
        return response

    async def _tree(self, tree_size: int, field: str) -> tuple[int, pb.SignedTreeHead | None]:
        """The tree a proof is against: (size, its signed head if one was signed for exactly that size)."""
        if tree_size < 0:
            raise InvalidArgument(f"{field} must not be negative", field=field)
        latest, latest_key = await self._latest()
        if tree_size == 0:
            return latest.tree_size, head_message(latest, latest_key)
        if tree_size > latest.tree_size:
            raise OutOfRange(
                f"{field} {tree_size} is beyond the latest signed tree head ({latest.tree_size})", field=field
            )
        if tree_size == latest.tree_size:
            return tree_size, head_message(latest, latest_key)
        found = await self.store.tree_head(tree_size)
        return tree_size, head_message(*found) if found else None

    async def _root(self, size: int) -> bytes:
        ids = merkle.frontier_ids(size)
        return merkle.Frontier.from_nodes(size, await self.store.nodes(ids)).root()

    async def GetInclusionProof(
        self, request: pb.GetInclusionProofRequest, context: object
    ) -> pb.InclusionProof:
        _require_reader()
        which = request.WhichOneof("leaf")
        if which == "record_id":
            if not request.record_id:
                raise InvalidArgument("record_id is empty", field="record_id")
        elif which == "leaf_index":
            if request.leaf_index < 0:
                raise InvalidArgument("leaf_index must not be negative", field="leaf_index")
        else:
            raise InvalidArgument("give record_id or leaf_index", field="record_id")
        if request.tree_size == 0:
            # Against the latest head (what `vigil audit prove` asks): entry, head and path in one read.
            found = await self.store.latest_inclusion(
                record_id=request.record_id if which == "record_id" else None,
                leaf_index=request.leaf_index if which == "leaf_index" else None,
            )
            entry = self._found(found.entry, request, which)
            if found.head is None:
                await self._latest()  # raises: nothing signed yet
            latest, latest_key = found.head  # type: ignore[misc]
            return self._inclusion(
                entry, latest.tree_size, self._head_message(latest, latest_key), found.hashes, 0, found.plan
            )
        if which == "record_id":
            entry = self._found(await self.store.entry_by_record_id(request.record_id), request, which)
        else:
            entry = self._found(await self.store.entry_by_index(request.leaf_index), request, which)
        size, head = await self._tree(request.tree_size, "tree_size")
        hashes: dict = {}
        if entry.leaf_index < size:
            ids = list(merkle.inclusion_plan(entry.leaf_index, size).node_ids)
            root_ids = [] if head is not None else list(merkle.frontier_ids(size))
            hashes = await self.store.nodes(ids + root_ids)
        return self._inclusion(entry, size, head, hashes, request.tree_size)

    @staticmethod
    def _found(
        entry: StoredEntry | None, request: pb.GetInclusionProofRequest, which: str | None
    ) -> StoredEntry:
        if entry is None:
            if which == "record_id":
                raise NotFound(f"no record {request.record_id} in the log", field="record_id")
            raise NotFound(f"no leaf {request.leaf_index} in the log", field="leaf_index")
        return entry

    @staticmethod
    def _inclusion(
        entry: StoredEntry,
        size: int,
        head: pb.SignedTreeHead | None,
        hashes: dict,
        asked_size: int,
        plan: merkle.ProofPlan | None = None,
    ) -> pb.InclusionProof:
        if entry.leaf_index >= size:
            if asked_size == 0:
                raise FailedPrecondition(
                    f"leaf {entry.leaf_index} is not covered by a signed tree head yet (latest size {size}); "
                    "retry in a second",
                    field="tree_size",
                )
            raise InvalidArgument(
                f"tree_size {size} does not contain leaf {entry.leaf_index}", field="tree_size"
            )
        if plan is None:
            plan = merkle.inclusion_plan(entry.leaf_index, size)
        proof = plan.assemble(hashes)
        root = (
            bytes.fromhex(head.root_hash)
            if head is not None
            else merkle.Frontier.from_nodes(size, hashes).root()
        )
        return pb.InclusionProof(
            leaf_index=entry.leaf_index,
            leaf_hash=entry.leaf_hash.hex(),
            tree_size=size,
            root_hash=root.hex(),
            hashes=[h.hex() for h in proof],
            tree_head=head,
            entry=entry_message(entry, pb.ENTRY_VIEW_FULL),
        )

    async def GetConsistencyProof(
        self, request: pb.GetConsistencyProofRequest, context: object
    ) -> pb.ConsistencyProof:
        _require_reader()
        if request.old_size < 0:
            raise InvalidArgument("old_size must not be negative", field="old_size")
        new_size, new_head = await self._tree(request.new_size, "new_size")
        if request.old_size > new_size:
            raise InvalidArgument(
                f"old_size {request.old_size} is larger than new_size {new_size}", field="old_size"
            )
        old_head = None
        if request.old_size:
            found = await self.store.tree_head(request.old_size)
            old_head = head_message(*found) if found else None
        plan = merkle.consistency_plan(request.old_size, new_size)
        hashes = await self.store.nodes(
            list(plan.node_ids)
            + list(merkle.frontier_ids(request.old_size))
            + list(merkle.frontier_ids(new_size))
        )
        old_root = merkle.Frontier.from_nodes(request.old_size, hashes).root()
        new_root = merkle.Frontier.from_nodes(new_size, hashes).root()
        return pb.ConsistencyProof(
            old_size=request.old_size,
            new_size=new_size,
            old_root_hash=old_root.hex(),
            new_root_hash=new_root.hex(),
            hashes=[h.hex() for h in plan.assemble(hashes)],
            old_tree_head=old_head,
            new_tree_head=new_head,
        )

    async def ListRecords(self, request: pb.ListRecordsRequest, context: object) -> pb.ListRecordsResponse:
        _require_reader()
        size = _page_size(request.page_size, MAX_RECORDS_PAGE)
        view = _view(request.view)
        if request.start_index < 0:
            raise InvalidArgument("start_index must not be negative", field="start_index")
        if request.end_index < 0:
            raise InvalidArgument("end_index must not be negative", field="end_index")
        fingerprint = str(request.end_index)
        after = _token(request.page_token, "records", fingerprint)
        start = after + 1 if request.page_token else request.start_index
        log_size = await self.store.size()
        end = request.end_index or None
        entries = await self.store.entries(start=start, end=end, limit=size + 1)
        response = pb.ListRecordsResponse(
            entries=[entry_message(e, view) for e in entries[:size]], log_size=log_size
        )
        if len(entries) > size:
            response.next_page_token = _next_token("records", entries[size - 1].leaf_index, fingerprint)
        return response

    async def QueryRecords(self, request: pb.QueryRecordsRequest, context: object) -> pb.QueryRecordsResponse:
        _require_reader()
        size = _page_size(request.page_size, MAX_QUERY_PAGE)
        view = _view(request.view)
        footage = request.footage if request.HasField("footage") else None
        window = request.time if request.HasField("time") else None
        query = RecordQuery(
            device_id=request.device_id,
            has_footage_filter=footage is not None,
            footage_start_us=_us(footage.start_time) if footage and footage.HasField("start_time") else None,
            footage_end_us=_us(footage.end_time) if footage and footage.HasField("end_time") else None,
            principal_id=request.principal_id,
            grant_id=request.grant_id,
            action=request.action,
            export_id=request.export_id,
            time_start_us=_us(window.start_time) if window and window.HasField("start_time") else None,
            time_end_us=_us(window.end_time) if window and window.HasField("end_time") else None,
        )
        if query.empty:
            raise InvalidArgument(
                "give at least one filter: device_id, footage, principal_id, grant_id, action, export_id or time",
                field="device_id",
            )
        for name, (lo, hi) in (
            ("footage", (query.footage_start_us, query.footage_end_us)),
            ("time", (query.time_start_us, query.time_end_us)),
        ):
            if lo is not None and hi is not None and hi < lo:
                raise InvalidArgument(f"{name} ends before it starts", field=f"{name}.end_time")
        fingerprint = query.fingerprint()
        after = _token(request.page_token, "query", fingerprint)
        entries = await self.store.query(query, after=after, limit=size + 1)
        response = pb.QueryRecordsResponse(entries=[entry_message(e, view) for e in entries[:size]])
        if len(entries) > size:
            response.next_page_token = _next_token("query", entries[size - 1].leaf_index, fingerprint)
        return response
