"""The CLI's conventions every subcommand reuses: tables, --json, -f FILE, time flags, errors, progress.

- People get rich tables on stdout; `--json` prints protobuf's canonical JSON with the proto field
  names (snake_case) and enum names — the resource itself, not wrapped.
- `-f FILE` reads canonical JSON of the request resource, in either field-name style
  (snake_case proto names or lowerCamelCase JSON names); `-` reads stdin.
- Time flags take RFC 3339.
- An RPC error goes to stderr as `STATUS_NAME [RULE-ID]: message`, exit 1; usage errors exit 2.
- Long work shows a rich progress bar on stderr, so stdout stays clean for --json.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import grpc
import typer
from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vigil_kit.errors import VigilError, format_error, from_rpc_error

M = TypeVar("M", bound=Message)
T = TypeVar("T")

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

# When piped (logs, tests), rich would assume 80 columns and shorten addresses in tables.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)

# Reusable option declarations, so every subcommand spells them the same way.
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print protobuf canonical JSON (proto field names, enum names).")
]
RequestFile = Annotated[
    Path,
    typer.Option(
        "-f",
        "--file",
        help="Canonical JSON of the request resource (snake_case or camelCase field names); - for stdin.",
        dir_okay=False,
        allow_dash=True,
    ),
]


def message_to_json(message: Message) -> str:
    """Canonical protobuf JSON with the proto (snake_case) field names and enum names."""
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2, ensure_ascii=False)


def print_message(message: Message) -> None:
    typer.echo(message_to_json(message))


def print_json(value: Any) -> None:
    """Plain JSON for outputs that are not a protobuf resource (e.g. `vigil status --json`)."""
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def parse_message(text: str, message_type: type[M], *, source: str = "request") -> M:
    """Canonical JSON (either field-name style) → message; a malformed document is a usage error."""
    try:
        return json_format.Parse(text, message_type())
    except json_format.ParseError as exc:
        usage_error(f"{source}: not a valid {message_type.DESCRIPTOR.full_name}: {exc}")


def load_message(path: Path | str, message_type: type[M]) -> M:
    """Read `-f FILE` (or `-` for stdin) into a request message."""
    if str(path) == "-":
        return parse_message(sys.stdin.read(), message_type, source="stdin")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        usage_error(f"cannot read {path}: {exc.strerror or exc}")
    return parse_message(text, message_type, source=str(path))


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp with an offset (e.g. 2025-03-01T08:00:00+08:00 or …Z)."""
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an RFC 3339 time (e.g. 2025-03-01T08:00:00Z)") from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no UTC offset (RFC 3339 needs Z or ±hh:mm)")
    return parsed


def to_timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        t.add_column(column)
    for row in rows:
        t.add_row(*("" if cell is None else str(cell) for cell in row))
    return t


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    console.print(table(title, columns, rows))


class UsageError(typer.BadParameter):
    """A usage error: typer reports it on stderr and exits 2.

    typer bundles its own click, so the standalone click's UsageError would escape it as a traceback
    (exit 1); subclassing typer's BadParameter keeps every `-f` and flag error on the usage path."""


def usage_error(message: str) -> NoReturn:
    """Exit 2 with the message as a usage error."""
    raise UsageError(message)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """One line on stderr, then exit (1 unless told)."""
    err_console.print(message, markup=False, soft_wrap=True)
    raise typer.Exit(code)


def describe_rpc_error(exc: grpc.RpcError) -> str:
    """`STATUS_NAME [RULE-ID]: message` for an RPC error, from its rich details."""
    try:
        return format_error(from_rpc_error(exc))
    except Exception:  # a status without rich details (or not from Vigil) still gets one clear line
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        return f"{code.name if code else 'UNKNOWN'}: {details}"


@contextlib.contextmanager
def rpc_errors() -> Iterator[None]:
    """Turn an RPC error (or a domain error raised locally) into stderr + exit 1."""
    try:
        yield
    except grpc.RpcError as exc:
        fail(describe_rpc_error(exc))
    except VigilError as exc:
        fail(format_error(exc))


def run(coro: Awaitable[T]) -> T:
    """Run a subcommand's async body with the error conventions applied."""
    with rpc_errors():
        return asyncio.run(_await(coro))


async def _await(coro: Awaitable[T]) -> T:
    return await coro


def progress() -> Progress:
    """A progress bar for long work (on stderr): `with progress() as p: task = p.add_task("…", total=n)`."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )
