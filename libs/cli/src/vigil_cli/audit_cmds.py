"""`vigil audit`: export, verify and prove the audit log (AUD-1), and query who did what (AUD-2).

The export (`vigil audit export -o log.jsonl`) is JSON Lines, verifiable with only the log's public key:

- first, every signed tree head up to the exported size, smallest first, one per line:
  ``{"tree_head":{"tree_size":N,"root_hash":"<hex>","timestamp":"<RFC 3339>","signature":"<hex>"}}``;
- then one line per leaf, in leaf order:
  ``{"leaf_index":i,"leaf_hash":"<hex>","record":{...the record's canonical leaf...}}``, where ``record``
  is byte for byte the canonical leaf the log hashed (``vigil_audit.domain.leaf``).

The heads come first because only a signed head read before the entries end can show that entries were
cut off the end. `vigil audit verify` recomputes every leaf hash and every signed root, checks every
head's Ed25519 signature, and names the first leaf that is not proven. The verifier is the audit
log's own pure domain code (``vigil_audit.domain.verify``), so the CLI and the service cannot disagree.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC
from pathlib import Path
from typing import IO, Annotated, Any

import grpc
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from google.protobuf import json_format

from vigil.audit.v1 import audit_record_pb2, audit_service_pb2, audit_service_pb2_grpc
from vigil.common.v1 import time_range_pb2
from vigil_audit.domain import sth as sth_mod
from vigil_audit.domain.sth import SignedTreeHead, TreeHead
from vigil_audit.domain.verify import (
    FailureKind,
    LogVerifier,
    VerifyReport,
    entry_line_bytes,
    tree_head_line_bytes,
    verify_lines,
)
from vigil_cli.context import Context, ContextError, load_context
from vigil_cli.output import (
    JsonFlag,
    console,
    err_console,
    fail,
    parse_time,
    print_json,
    print_message,
    progress,
    run,
    table,
    to_timestamp,
    usage_error,
)
from vigil_cli.session import Session, session
from vigil_kit.merkle import LEAF_PREFIX, verify_inclusion

# Where `vigil up` puts the audit log's public key (SubjectPublicKeyInfo PEM) in the context's `extra`.
CONTEXT_PUBLIC_KEY = "audit_log_public_key_pem"

# Page sizes: ListTreeHeads allows 1000; ListRecords allows 5000, but 2000 leaves of up to ~2 KB keep a
# page well under gRPC's 4 MB message limit.
HEADS_PAGE = 1000
RECORDS_PAGE = 2000
QUERY_PAGE = 500
# Deadline per page: a page of a large log on a busy machine can take more than the default 5 s.
PAGE_TIMEOUT_S = 60.0


audit_app = typer.Typer(
    name="audit",
    help="Export, verify and prove the tamper-evident audit log, and query who did what.",
    no_args_is_help=True,
)

PublicKeyOption = Annotated[
    Path | None,
    typer.Option(
        "--public-key",
        dir_okay=False,
        help="The log's Ed25519 public key (PEM). Default: the context file's, else the audit service's.",
    ),
]


# ------------------------------------------------------------------------------------------ plumbing


def _stub(channel: grpc.aio.Channel) -> audit_service_pb2_grpc.AuditServiceStub:
    return audit_service_pb2_grpc.AuditServiceStub(channel)


def _optional_context(s: Session) -> Context | None:
    try:
        return load_context(s.context_file)
    except ContextError:
        return None


def head_from_proto(msg: audit_service_pb2.SignedTreeHead) -> SignedTreeHead:
    """The domain's signed tree head from the service's message (ValueError if it is not one)."""
    try:
        root = bytes.fromhex(msg.root_hash)
    except ValueError:
        raise ValueError(f"tree head {msg.tree_size}: root_hash is not hex") from None
    head = TreeHead(msg.tree_size, root, msg.timestamp.ToDatetime(tzinfo=UTC))
    return SignedTreeHead(head, bytes(msg.signature))


def read_public_key_file(path: Path) -> Ed25519PublicKey:
    """An Ed25519 public key from a PEM file; a file that is not one is a usage error."""
    try:
        return sth_mod.load_public_key(path.read_bytes())
    except OSError as exc:
        usage_error(f"cannot read {path}: {exc.strerror or exc}")
    except ValueError:
        usage_error(f"{path} is not an Ed25519 public key in PEM")


async def fetch_public_key(stub: audit_service_pb2_grpc.AuditServiceStub) -> Ed25519PublicKey:
    reply = await stub.GetPublicKey(audit_service_pb2.GetPublicKeyRequest())
    try:
        return sth_mod.load_public_key(reply.public_key_pem)
    except ValueError as exc:
        fail(f"the audit service's public key is not an Ed25519 key in PEM: {exc}")


def context_public_key(context: Context | None) -> Ed25519PublicKey | None:
    pem = context.extra.get(CONTEXT_PUBLIC_KEY) if context is not None else None
    if not pem:
        return None
    try:
        return sth_mod.load_public_key(pem)
    except ValueError as exc:
        fail(f"the context file's {CONTEXT_PUBLIC_KEY} is not an Ed25519 key in PEM: {exc}")


async def resolve_public_key(
    path: Path | None,
    context: Context | None,
    stub: audit_service_pb2_grpc.AuditServiceStub | None,
) -> Ed25519PublicKey:
    """--public-key FILE, else the context file's key, else (saying so) the key the service reports."""
    if path is not None:
        return read_public_key_file(path)
    key = context_public_key(context)
    if key is not None:
        return key
    if stub is None:
        fail("no public key for the audit log: pass --public-key FILE (or run it beside a `vigil up` stack)")
    key = await fetch_public_key(stub)
    echo_err(
        f"note: checking signatures with the key the audit service reports ({sth_mod.key_id(key)}); "
        "pin the key with --public-key FILE to verify independently of the service"
    )
    return key


def echo_err(message: str) -> None:
    err_console.print(message, markup=False, soft_wrap=True)


async def latest_head(stub: audit_service_pb2_grpc.AuditServiceStub) -> audit_service_pb2.SignedTreeHead:
    """The latest signed tree head (FAILED_PRECONDITION from the service while the log has none)."""
    return await stub.GetSignedTreeHead(audit_service_pb2.GetSignedTreeHeadRequest(), timeout=PAGE_TIMEOUT_S)


async def list_tree_heads(
    stub: audit_service_pb2_grpc.AuditServiceStub, max_tree_size: int
) -> AsyncIterator[audit_service_pb2.SignedTreeHead]:
    token = ""
    while True:
        page = await stub.ListTreeHeads(
            audit_service_pb2.ListTreeHeadsRequest(
                page_size=HEADS_PAGE, page_token=token, max_tree_size=max_tree_size
            ),
            timeout=PAGE_TIMEOUT_S,
        )
        for head in page.tree_heads:
            yield head
        token = page.next_page_token
        if not token:
            return


async def list_leaves(
    stub: audit_service_pb2_grpc.AuditServiceStub, end_index: int
) -> AsyncIterator[Sequence[audit_service_pb2.LogEntry]]:
    """Pages of entries (leaf view: index, hash, leaf bytes) for leaves [0, end_index)."""
    if end_index <= 0:
        return
    token = ""
    while True:
        page = await stub.ListRecords(
            audit_service_pb2.ListRecordsRequest(
                page_size=RECORDS_PAGE,
                page_token=token,
                start_index=0,
                end_index=end_index,
                view=audit_service_pb2.ENTRY_VIEW_LEAF,
            ),
            timeout=PAGE_TIMEOUT_S,
        )
        yield page.entries
        token = page.next_page_token
        if not token or not page.entries:
            return


# -------------------------------------------------------------------------------------------- export


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """Write beside ``path`` and rename into place only when complete: an interrupted export never
    leaves a file that looks like a (truncated) export."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with tmp.open("wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


async def export_log(stub: audit_service_pb2_grpc.AuditServiceStub, out: IO[bytes]) -> tuple[int, int, str]:
    """Write the export (heads first, then entries up to the latest head); (entries, heads, root hex)."""
    latest = await latest_head(stub)
    size = latest.tree_size
    heads = 0
    async for head in list_tree_heads(stub, size):
        try:
            out.write(tree_head_line_bytes(head_from_proto(head)) + b"\n")
        except ValueError as exc:
            fail(f"the audit service returned an unreadable tree head: {exc}")
        heads += 1
    written = 0
    with progress() as bar:
        task = bar.add_task("exporting audit log", total=size)
        async for entries in list_leaves(stub, size):
            lines = []
            for entry in entries:
                if entry.leaf_index != written:
                    fail(f"the audit service returned leaf {entry.leaf_index} where leaf {written} was due")
                lines.append(entry_line_bytes(entry.leaf_index, bytes.fromhex(entry.leaf_hash), entry.leaf))
                written += 1
            out.write(b"\n".join(lines) + b"\n")
            bar.advance(task, len(lines))
    if written != size:
        fail(f"the audit service returned {written} leaves where its latest tree head covers {size}")
    return written, heads, latest.root_hash


@audit_app.command(
    help="Export the log as JSON Lines: the signed tree heads, then every record with its leaf."
)
def export(
    ctx: typer.Context,
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", dir_okay=False, allow_dash=True, help="The export file; - for stdout."
        ),
    ],
) -> None:
    s = session(ctx)
    context = s.context()

    async def body() -> tuple[int, int, str]:
        async with s.channel("audit", context=context) as channel:
            stub = _stub(channel)
            if str(output) == "-":
                result = await export_log(stub, sys.stdout.buffer)
                sys.stdout.buffer.flush()
                return result
            with atomic_output(output) as f:
                return await export_log(stub, f)

    entries, heads, root = run(body())
    where = "stdout" if str(output) == "-" else str(output)
    echo_err(
        f"exported {entries} records and {heads} signed tree heads (tree size {entries}, root {root}) to {where}"
    )


# -------------------------------------------------------------------------------------------- verify


def report_json(report: VerifyReport, key: Ed25519PublicKey) -> dict[str, Any]:
    failure = report.failure
    return {
        "ok": report.ok,
        "entries": report.entries,
        "tree_heads": report.tree_heads,
        "verified_size": report.verified_size,
        "verified_root": report.verified_root.hex(),
        "key_id": sth_mod.key_id(key),
        "failure": None
        if failure is None
        else {
            "kind": str(failure.kind),
            "leaf_index": failure.leaf_index,
            "tree_size": failure.tree_size,
            "reason": failure.reason,
        },
    }


def finish_report(report: VerifyReport, key: Ed25519PublicKey, source: str, *, json_output: bool) -> None:
    """Print the outcome and exit: 0 when every entry is proven by a signed head, else 1 naming the leaf."""
    if json_output:
        print_json(report_json(report, key))
    if report.ok:
        if not json_output:
            typer.echo(
                f"OK: {report.entries} records verified ({source}); tree size {report.verified_size}, "
                f"root {report.verified_root.hex()}; {report.tree_heads} signed tree heads checked "
                f"with key {sth_mod.key_id(key)}"
            )
        raise typer.Exit(0)
    failure = report.failure
    assert failure is not None
    fail(f"FAILED ({source}): {failure} [{failure.kind}]")


class _CountedLines:
    """A file's lines, advancing a progress bar by the bytes read (every 8192 lines, to stay cheap)."""

    def __init__(self, file: IO[bytes], advance: Callable[[int], None]) -> None:
        self.file = file
        self.advance = advance

    def __iter__(self) -> Iterator[bytes]:
        pending = 0
        for n, line in enumerate(self.file, 1):
            pending += len(line)
            if n & 0x1FFF == 0:
                self.advance(pending)
                pending = 0
            yield line
        self.advance(pending)


def read_tree_heads_file(path: Path) -> list[SignedTreeHead]:
    """Signed tree heads kept beside an export: lines of ``{"tree_head": {...}}`` (or bare heads)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        usage_error(f"cannot read {path}: {exc.strerror or exc}")
    heads = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            heads.append(SignedTreeHead.from_dict(obj.get("tree_head", obj)))
        except (ValueError, TypeError, AttributeError) as exc:
            fail(f"FAILED ({path}): line {number}: unreadable tree head: {exc}")
    return heads


def verify_file(path: Path, key: Ed25519PublicKey, tree_heads: Sequence[SignedTreeHead] = ()) -> VerifyReport:
    """Stream an export file through the domain's verifier, with a progress bar on stderr."""
    try:
        size = path.stat().st_size
        f = path.open("rb")
    except OSError as exc:
        usage_error(f"cannot read {path}: {exc.strerror or exc}")
    with f, progress() as bar:
        task = bar.add_task(f"verifying {path.name}", total=size)
        return verify_lines(_CountedLines(f, lambda n: bar.advance(task, n)), key, tree_heads=tree_heads)


def feed_live_entry(verifier: LogVerifier, entry: audit_service_pb2.LogEntry) -> None:
    """One entry of the live log: its leaf bytes are hashed here, never taken from the service's word."""
    digest = hashlib.sha256(LEAF_PREFIX + entry.leaf).digest()
    if digest.hex() == entry.leaf_hash:
        verifier.add_hashed_entry(entry.leaf_index, digest)
        return
    # Not the stated hash: let the verifier normalise the record and name the fault.
    try:
        record = json.loads(entry.leaf)
    except ValueError:
        verifier.fail(FailureKind.MALFORMED, verifier.entries, "the leaf bytes are not JSON")
        return
    verifier.add_entry(entry.leaf_index, entry.leaf_hash, record)


async def verify_live(stub: audit_service_pb2_grpc.AuditServiceStub, key: Ed25519PublicKey) -> VerifyReport:
    """Verify the running log: every signed head up to the latest, then its leaves up to that size."""
    latest = await latest_head(stub)
    size = latest.tree_size
    verifier = LogVerifier(key)
    async for msg in list_tree_heads(stub, size):
        try:
            head = head_from_proto(msg)
        except ValueError as exc:
            verifier.fail(FailureKind.MALFORMED, None, f"unreadable tree head: {exc}", msg.tree_size)
            break
        verifier.add_tree_head(head)
        if verifier.failure is not None:
            break
    if verifier.failure is None:
        with progress() as bar:
            task = bar.add_task("verifying the live audit log", total=size)
            async for entries in list_leaves(stub, size):
                for entry in entries:
                    feed_live_entry(verifier, entry)
                    if verifier.failure is not None:
                        break
                bar.advance(task, len(entries))
                if verifier.failure is not None:
                    break
    return verifier.finish()


async def key_for_file(s: Session, public_key: Path | None) -> Ed25519PublicKey:
    """The key to verify a file with: --public-key, else the context's, else the running service's."""
    if public_key is not None:
        return read_public_key_file(public_key)
    context = _optional_context(s)
    if context is None or context_public_key(context) is not None:
        return await resolve_public_key(None, context, None)
    async with s.channel("audit", context=context) as channel:
        return await resolve_public_key(None, context, _stub(channel))


@audit_app.command(
    help="Verify an export (or, without FILE, the live log): every leaf hash, every signed root and "
    "signature. Exit 0 with a summary, or 1 naming the first leaf that is not proven."
)
def verify(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Argument(dir_okay=False, help="An export from `vigil audit export`.")
    ] = None,
    public_key: PublicKeyOption = None,
    tree_heads: Annotated[
        Path | None,
        typer.Option(
            "--tree-heads",
            dir_okay=False,
            help="Signed tree heads kept beside the export (JSON Lines), read before it.",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    s = session(ctx)
    if file is not None:
        if not file.is_file():
            usage_error(f"{file} is not a file")
        heads = read_tree_heads_file(tree_heads) if tree_heads is not None else []
        key = run(key_for_file(s, public_key))
        finish_report(verify_file(file, key, heads), key, str(file), json_output=json_output)
    if tree_heads is not None:
        usage_error("--tree-heads goes with an export FILE")
    context = s.context()

    async def live() -> tuple[VerifyReport, Ed25519PublicKey]:
        async with s.channel("audit", context=context) as channel:
            stub = _stub(channel)
            key = await resolve_public_key(public_key, context, stub)
            return await verify_live(stub, key), key

    report, key = run(live())
    finish_report(report, key, "live log", json_output=json_output)


# --------------------------------------------------------------------------------------------- prove


def check_inclusion(
    proof: audit_service_pb2.InclusionProof, record_id: str, key: Ed25519PublicKey
) -> str | None:
    """Why the proof does not show the record in the signed tree (None when it does), checked locally."""
    if not proof.HasField("tree_head"):
        return "the proof carries no signed tree head"
    try:
        head = head_from_proto(proof.tree_head)
    except ValueError as exc:
        return f"unreadable tree head: {exc}"
    if not sth_mod.verify(key, head.head, head.signature):
        return f"the tree head for size {head.tree_size} is not signed by this key (wrong key, or an edited head)"
    if proof.tree_size != head.tree_size or proof.root_hash != head.root_hash.hex():
        return "the proof is for another tree than its signed tree head"
    leaf = proof.entry.leaf
    digest = hashlib.sha256(LEAF_PREFIX + leaf).digest()
    if digest.hex() != proof.leaf_hash:
        return "the record's leaf bytes do not hash to the proven leaf hash"
    try:
        leaf_record_id = json.loads(leaf).get("record_id")
    except (ValueError, AttributeError):
        return "the record's leaf bytes are not a JSON object"
    if leaf_record_id != record_id:
        return f"the proven leaf is record {leaf_record_id!r}, not {record_id!r}"
    try:
        path = [bytes.fromhex(h) for h in proof.hashes]
    except ValueError:
        return "the audit path is not hex"
    if not verify_inclusion(digest, proof.leaf_index, head.tree_size, path, head.root_hash):
        return (
            f"the audit path does not lead from leaf {proof.leaf_index} to the root signed for "
            f"size {head.tree_size}"
        )
    return None


@audit_app.command(
    help="Prove that a record is in the log: an inclusion proof against the latest signed tree head, "
    "checked here (leaf hash, audit path, head signature)."
)
def prove(
    ctx: typer.Context,
    record_id: Annotated[str, typer.Argument(help="The record's record_id (UUIDv7).")],
    public_key: PublicKeyOption = None,
    json_output: JsonFlag = False,
) -> None:
    s = session(ctx)
    context = s.context()

    async def body() -> tuple[audit_service_pb2.InclusionProof, Ed25519PublicKey]:
        async with s.channel("audit", context=context) as channel:
            stub = _stub(channel)
            key = await resolve_public_key(public_key, context, stub)
            proof = await stub.GetInclusionProof(
                audit_service_pb2.GetInclusionProofRequest(record_id=record_id), timeout=PAGE_TIMEOUT_S
            )
            return proof, key

    proof, key = run(body())
    problem = check_inclusion(proof, record_id, key)
    if json_output:
        print_message(proof)
    if problem is not None:
        fail(f"FAILED: record {record_id}: {problem}")
    if not json_output:
        head = proof.tree_head
        signed_at = head.timestamp.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z")
        typer.echo(
            f"OK: record {record_id} is leaf {proof.leaf_index} (leaf hash {proof.leaf_hash}) of the tree of "
            f"size {head.tree_size}, root {head.root_hash}, signed at {signed_at} with key "
            f"{sth_mod.key_id(key)}; audit path of {len(proof.hashes)} hashes verified"
        )


# --------------------------------------------------------------------------------------------- query


def _time_range(start: str | None, end: str | None) -> time_range_pb2.TimeRange | None:
    if start is None and end is None:
        return None
    window = time_range_pb2.TimeRange()
    if start is not None:
        window.start_time.CopyFrom(to_timestamp(parse_time(start)))
    if end is not None:
        window.end_time.CopyFrom(to_timestamp(parse_time(end)))
    return window


def build_query(
    *,
    device: str | None = None,
    footage_from: str | None = None,
    footage_to: str | None = None,
    principal: str | None = None,
    grant: str | None = None,
    action: str | None = None,
    export_id: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> audit_service_pb2.QueryRecordsRequest:
    """The QueryRecords request for the flags; no filter at all is a usage error."""
    request = audit_service_pb2.QueryRecordsRequest(
        device_id=device or "",
        principal_id=principal or "",
        grant_id=grant or "",
        action=action or "",
        export_id=export_id or "",
        view=audit_service_pb2.ENTRY_VIEW_FULL,
    )
    footage = _time_range(footage_from, footage_to)
    if footage is not None:
        request.footage.CopyFrom(footage)
    window = _time_range(since, until)
    if window is not None:
        request.time.CopyFrom(window)
    if not (
        request.device_id
        or request.principal_id
        or request.grant_id
        or request.action
        or request.export_id
        or request.HasField("footage")
        or request.HasField("time")
    ):
        usage_error(
            "give at least one filter: --device, --from/--to, --principal, --grant, --action, --export, "
            "--since/--until"
        )
    return request


def record_json(record: audit_record_pb2.AuditRecord) -> str:
    """One record's canonical protobuf JSON on one line (proto field names, enum names)."""
    return json.dumps(
        json_format.MessageToDict(record, preserving_proto_field_name=True),
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _when(ts: Any) -> str:
    if not ts.seconds and not ts.nanos:
        return ""
    return ts.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _row(entry: audit_service_pb2.LogEntry) -> tuple[str, ...]:
    r = entry.record
    actor = r.actor.name or r.actor.id
    if r.actor.name and r.actor.id:
        actor = f"{r.actor.name} ({r.actor.id})"
    footage = ""
    if r.HasField("footage"):
        footage = f"{_when(r.footage.start_time)} → {_when(r.footage.end_time)}"
    decision = audit_record_pb2.Decision.Name(r.decision).removeprefix("DECISION_").lower()
    if r.rule_id:
        decision = f"{decision} [{r.rule_id}]"
    return (
        r.record_id,
        _when(r.time),
        r.action,
        decision,
        actor,
        ", ".join(r.resources.device_ids),
        footage,
        r.grant_id or ", ".join(r.resources.grant_ids),
        r.purpose or r.reason,
    )


QUERY_COLUMNS = (
    "record id",
    "time",
    "action",
    "decision",
    "actor",
    "devices",
    "footage",
    "grant",
    "purpose / reason",
)
# Never wrapped, so they can be copied from the table (e.g. into `vigil audit prove`).
_NO_WRAP = ("record id", "time")


def print_records(entries: Sequence[audit_service_pb2.LogEntry]) -> None:
    t = table(f"audit records ({len(entries)})", QUERY_COLUMNS, [_row(e) for e in entries])
    for column in t.columns:
        column.no_wrap = column.header in _NO_WRAP
    console.print(t)


async def run_query(
    stub: audit_service_pb2_grpc.AuditServiceStub, request: audit_service_pb2.QueryRecordsRequest, limit: int
) -> AsyncIterator[audit_service_pb2.LogEntry]:
    count = 0
    token = ""
    while True:
        request.page_size = min(QUERY_PAGE, limit - count) if limit else QUERY_PAGE
        request.page_token = token
        page = await stub.QueryRecords(request, timeout=PAGE_TIMEOUT_S)
        for entry in page.entries:
            yield entry
            count += 1
            if limit and count >= limit:
                return
        token = page.next_page_token
        if not token:
            return


@audit_app.command(
    help="Who did what: records matching every given filter, oldest first (a table, or --json: one record's "
    "canonical JSON per line)."
)
def query(
    ctx: typer.Context,
    device: Annotated[str | None, typer.Option("--device", help="Records naming this device id.")] = None,
    footage_from: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="RFC3339", help="Footage window start: records whose footage overlaps it."
        ),
    ] = None,
    footage_to: Annotated[
        str | None, typer.Option("--to", metavar="RFC3339", help="Footage window end (exclusive).")
    ] = None,
    principal: Annotated[
        str | None, typer.Option("--principal", help="Records whose actor is this principal id.")
    ] = None,
    grant: Annotated[
        str | None, typer.Option("--grant", help="Records relying on or naming this grant id.")
    ] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="Records of this action, e.g. archive.playback.manifest.")
    ] = None,
    export_id: Annotated[str | None, typer.Option("--export", help="Records naming this export id.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="RFC3339", help="Records of actions at or after this time."),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="RFC3339", help="Records of actions before this time.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="At most this many records (0: all).")] = 0,
    json_output: JsonFlag = False,
) -> None:
    request = build_query(
        device=device,
        footage_from=footage_from,
        footage_to=footage_to,
        principal=principal,
        grant=grant,
        action=action,
        export_id=export_id,
        since=since,
        until=until,
    )
    s = session(ctx)
    context = s.context()

    async def body() -> list[audit_service_pb2.LogEntry]:
        found = []
        async with s.channel("audit", context=context) as channel:
            async for entry in run_query(_stub(channel), request, limit):
                if json_output:
                    typer.echo(record_json(entry.record))
                else:
                    found.append(entry)
        return found

    entries = run(body())
    if not json_output:
        print_records(entries)
