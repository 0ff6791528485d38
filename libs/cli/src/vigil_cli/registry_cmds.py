"""The registry's subcommands: `vigil units|sites|devices|filings …` and `vigil registry summary`.

Each command makes one or a few RegistryService calls as the chosen dev principal (`--as`) and
follows output.py's conventions: tables for people, `--json` for the resource itself, `-f FILE`
for canonical JSON requests, `STATUS_NAME [RULE-ID]: message` on stderr with exit 1.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import grpc
import typer
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
from google.protobuf.message import Message

from vigil.common.v1 import identity_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil.registry.v1 import registry_service_pb2_grpc as pb_grpc
from vigil_cli.output import (
    EXIT_ERROR,
    JsonFlag,
    RequestFile,
    console,
    describe_rpc_error,
    err_console,
    load_message,
    print_json,
    print_message,
    print_table,
    progress,
    run,
    usage_error,
)
from vigil_cli.session import session
from vigil_kit.errors import VigilError, from_rpc_error

M = TypeVar("M", bound=Message)
T = TypeVar("T")

# The largest page the registry serves; listing everything in few round trips.
LIST_PAGE_SIZE = 1000
# `vigil devices import`: devices per ImportDevices call (the service takes at most 1,000, in one
# transaction), and calls in flight at once (two keep the service busy while a reply travels back).
DEFAULT_IMPORT_BATCH = 500
MAX_IMPORT_BATCH = 1000
DEFAULT_IMPORT_CONCURRENCY = 2

units_app = typer.Typer(
    help="Units: who builds and runs cameras (platform administrators create them).", no_args_is_help=True
)
sites_app = typer.Typer(help="Sites: the places where devices are built.", no_args_is_help=True)
devices_app = typer.Typer(
    help="Devices: register, change, activate, list and import cameras.", no_args_is_help=True
)
filings_app = typer.Typer(
    help="Filings (REG-7): a unit's system at a site, filed within 30 days of use.", no_args_is_help=True
)
registry_app = typer.Typer(help="The registry as a whole.", no_args_is_help=True)

GROUPS: tuple[tuple[str, typer.Typer], ...] = (
    ("units", units_app),
    ("sites", sites_app),
    ("devices", devices_app),
    ("filings", filings_app),
    ("registry", registry_app),
)


def add_registry_commands(app: typer.Typer) -> None:
    """Register the registry's command groups on the `vigil` app."""
    for name, group in GROUPS:
        app.add_typer(group, name=name)


# ---- calling the registry -------------------------------------------------------------------------


def call(ctx: typer.Context, body: Callable[[pb_grpc.RegistryServiceStub], Awaitable[T]]) -> T:
    """Run `body` with a RegistryService stub as the chosen principal; RPC errors exit 1."""
    s = session(ctx)
    context = s.context()

    async def go() -> T:
        async with s.channel("registry", context=context) as channel:
            return await body(pb_grpc.RegistryServiceStub(channel))

    return run(go())


async def list_all(
    method: Callable[..., Awaitable[Any]], request: Message, items: str, *, page_size: int = LIST_PAGE_SIZE
) -> list[Any]:
    """Every item of a paginated List* call (follows next_page_token to the end)."""
    out: list[Any] = []
    request.page_size = page_size  # type: ignore[attr-defined]
    while True:
        reply = await method(request)
        out.extend(getattr(reply, items))
        if not reply.next_page_token:
            return out
        request.page_token = reply.next_page_token  # type: ignore[attr-defined]


# ---- request files, patches and enum flags --------------------------------------------------------


def read_text(path: Path | str) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        usage_error(f"cannot read {path}: {exc.strerror or exc}")


def parse_patch(text: str, message_type: type[M], *, source: str = "patch") -> tuple[M, list[str]]:
    """A partial resource in canonical JSON → (message, update_mask paths).

    The mask is exactly the top-level fields present in the document, in either field-name style,
    so a field set to its zero value (false, 0, "" or []) is still updated; paths are proto field
    names."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        usage_error(f"{source}: not JSON: {exc}")
    if not isinstance(data, dict):
        usage_error(f"{source}: a patch is a JSON object of the fields to change")
    if not data:
        usage_error(f"{source}: the patch changes no field")
    descriptor = message_type.DESCRIPTOR
    names = {f.name: f.name for f in descriptor.fields} | {f.json_name: f.name for f in descriptor.fields}
    paths: list[str] = []
    for key in data:
        if key not in names:
            usage_error(f"{source}: {descriptor.full_name} has no field {key!r}")
        paths.append(names[key])  # a field named in both styles is refused by the parser below
    try:
        message = json_format.ParseDict(data, message_type())
    except json_format.ParseError as exc:
        usage_error(f"{source}: not a valid {descriptor.full_name} patch: {exc}")
    return message, paths


def load_patch(
    path: Path | str, message_type: type[M], *, id_field: str, id_value: str
) -> tuple[M, list[str]]:
    """`-f PATCH` for an update of the resource named `id_value`: the id goes in the message, never
    in the mask (ids are immutable; a patch naming another id is a usage error)."""
    message, paths = parse_patch(read_text(path), message_type, source=str(path))
    given = getattr(message, id_field)
    if given and given != id_value:
        usage_error(f"{path}: {id_field} {given!r} does not match {id_value!r}; ids cannot change")
    paths = [p for p in paths if p != id_field]
    if not paths:
        usage_error(f"{path}: the patch changes no field besides {id_field}")
    setattr(message, id_field, id_value)
    return message, paths


def enum_value(enum: EnumTypeWrapper, prefix: str, text: str, *, option: str) -> int:
    """`TRANSPORT`, `transport` or `PLACE_CATEGORY_TRANSPORT` → the enum number; else exit 2."""
    name = text.strip().upper().replace("-", "_")
    if not name.startswith(prefix):
        name = prefix + name
    choices = [n.removeprefix(prefix) for n in enum.keys() if not n.endswith("_UNSPECIFIED")]
    if name.endswith("_UNSPECIFIED") or name not in enum.keys():
        raise typer.BadParameter(f"{text!r} is not one of {', '.join(choices)}", param_hint=option)
    return enum.Value(name)


# ---- rendering for people -------------------------------------------------------------------------

_ENUM_PREFIXES = (
    "PLACE_CATEGORY_",
    "AREA_TYPE_",
    "DEVICE_STATE_",
    "FILING_STATE_",
    "FUNDING_",
    "UNIT_KIND_",
)


def short(name: str) -> str:
    """An enum name without its type prefix, for tables (`--json` keeps the full names)."""
    for prefix in _ENUM_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def enum_name(enum: EnumTypeWrapper, number: int) -> str:
    try:
        return short(enum.Name(number))
    except ValueError:
        return str(number)


def _masks(masks: list[dict[str, Any]]) -> str:
    """Privacy masks as their polygons, `(x, y) (x, y) (x, y); …` (canonical JSON omits zero coordinates)."""
    return "; ".join(
        " ".join(f"({p.get('x', 0):g}, {p.get('y', 0):g})" for p in mask.get("points", [])) for mask in masks
    )


def human_duration(d: timedelta) -> str:
    """`3 d`, `2 h 5 min`, `42 s`: a duration for people."""
    seconds = int(d.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "min"), (seconds, "s")) if n]
    return " ".join(parts) or "0 s"


def _flatten(prefix: str, value: Any) -> Iterator[tuple[str, str]]:
    if prefix.endswith("privacy_masks") and isinstance(value, list):
        yield prefix, _masks(value)
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield from _flatten(f"{prefix}.{key}" if prefix else key, inner)
    elif isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            yield prefix, ", ".join(short(str(v)) for v in value)
        else:
            yield prefix, json.dumps(value, separators=(",", ":"))
    elif isinstance(value, bool):
        yield prefix, "yes" if value else "no"
    else:
        yield prefix, short(str(value))


def print_resource(title: str, message: Message) -> None:
    """A resource as a two-column table: every set field (nested fields dotted)."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    print_table(title, ("field", "value"), list(_flatten("", data)))


def ts(value: Any) -> str:
    """A Timestamp field for tables: RFC 3339 to the second, empty when unset."""
    if not value.seconds and not value.nanos:
        return ""
    return value.ToDatetime().replace(microsecond=0).isoformat() + "Z"


def output(message: Message, json_output: bool, title: str) -> None:
    if json_output:
        print_message(message)
    else:
        print_resource(title, message)


def print_messages(messages: Iterable[Message]) -> None:
    """`--json` of a list: a JSON array of the resources themselves, in canonical JSON."""
    print_json([json_format.MessageToDict(m, preserving_proto_field_name=True) for m in messages])


# ---- units ----------------------------------------------------------------------------------------


@units_app.command("create", help="Create a unit from canonical JSON of vigil.registry.v1.Unit.")
def units_create(ctx: typer.Context, file: RequestFile, json_output: JsonFlag = False) -> None:
    unit = load_message(file, pb.Unit)
    reply = call(ctx, lambda stub: stub.CreateUnit(pb.CreateUnitRequest(unit=unit)))
    output(reply, json_output, f"unit {reply.unit_id} created")


@units_app.command("get", help="Show one unit.")
def units_get(
    ctx: typer.Context,
    unit_id: Annotated[str, typer.Argument(metavar="UNIT_ID", help="Unified social credit code.")],
    json_output: JsonFlag = False,
) -> None:
    reply = call(ctx, lambda stub: stub.GetUnit(pb.GetUnitRequest(unit_id=unit_id)))
    output(reply, json_output, f"unit {reply.unit_id}")


@units_app.command("list", help="List every unit.")
def units_list(
    ctx: typer.Context,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only units of this kind, e.g. ENTERPRISE.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    request = pb.ListUnitsRequest()
    if kind:
        request.kind = enum_value(identity_pb2.UnitKind, "UNIT_KIND_", kind, option="--kind")
    units = call(ctx, lambda stub: list_all(stub.ListUnits, request, "units"))
    if json_output:
        print_messages(units)
        return
    rows = [(u.unit_id, u.name, enum_name(identity_pb2.UnitKind, u.kind)) for u in units]
    print_table(f"{len(units)} units", ("unit", "name", "kind"), rows)


@units_app.command("update", help="Change a unit: -f takes a JSON object of the fields to change.")
def units_update(
    ctx: typer.Context,
    unit_id: Annotated[str, typer.Argument(metavar="UNIT_ID")],
    file: RequestFile,
    json_output: JsonFlag = False,
) -> None:
    unit, paths = load_patch(file, pb.Unit, id_field="unit_id", id_value=unit_id)
    request = pb.UpdateUnitRequest(unit=unit, update_mask=field_mask_pb2.FieldMask(paths=paths))
    reply = call(ctx, lambda stub: stub.UpdateUnit(request))
    output(reply, json_output, f"unit {reply.unit_id} updated ({', '.join(paths)})")


# ---- sites ----------------------------------------------------------------------------------------


@sites_app.command("create", help="Create a site from canonical JSON of vigil.registry.v1.Site.")
def sites_create(ctx: typer.Context, file: RequestFile, json_output: JsonFlag = False) -> None:
    site = load_message(file, pb.Site)
    reply = call(ctx, lambda stub: stub.CreateSite(pb.CreateSiteRequest(site=site)))
    output(reply, json_output, f"site {reply.site_id} created")


@sites_app.command("get", help="Show one site.")
def sites_get(
    ctx: typer.Context,
    site_id: Annotated[str, typer.Argument(metavar="SITE_ID")],
    json_output: JsonFlag = False,
) -> None:
    reply = call(ctx, lambda stub: stub.GetSite(pb.GetSiteRequest(site_id=site_id)))
    output(reply, json_output, f"site {reply.site_id}")


@sites_app.command("list", help="List sites (every page), optionally filtered.")
def sites_list(
    ctx: typer.Context,
    division: Annotated[
        str | None, typer.Option("--division", metavar="PREFIX", help="Division code prefix, e.g. 320205.")
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Place category, e.g. TRANSPORT or PUBLIC_SERVICES.")
    ] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="Managing unit id.")] = None,
    json_output: JsonFlag = False,
) -> None:
    request = pb.ListSitesRequest(division_prefix=division or "", managing_unit_id=unit or "")
    if category:
        request.place_category = enum_value(
            pb.PlaceCategory, "PLACE_CATEGORY_", category, option="--category"
        )
    sites = call(ctx, lambda stub: list_all(stub.ListSites, request, "sites"))
    if json_output:
        print_messages(sites)
        return
    rows = [
        (
            s.site_id,
            s.name,
            s.division_code,
            enum_name(pb.PlaceCategory, s.place_category),
            "yes" if s.key_public_area else "",
            s.managing_unit_id,
            enum_name(pb.Funding, s.funding),
        )
        for s in sites
    ]
    print_table(
        f"{len(sites)} sites",
        ("site", "name", "division", "category", "key area", "managing unit", "funding"),
        rows,
    )


@sites_app.command("update", help="Change a site: -f takes a JSON object of the fields to change.")
def sites_update(
    ctx: typer.Context,
    site_id: Annotated[str, typer.Argument(metavar="SITE_ID")],
    file: RequestFile,
    json_output: JsonFlag = False,
) -> None:
    site, paths = load_patch(file, pb.Site, id_field="site_id", id_value=site_id)
    request = pb.UpdateSiteRequest(site=site, update_mask=field_mask_pb2.FieldMask(paths=paths))
    reply = call(ctx, lambda stub: stub.UpdateSite(request))
    output(reply, json_output, f"site {reply.site_id} updated ({', '.join(paths)})")


# ---- devices --------------------------------------------------------------------------------------

DeviceId = Annotated[str, typer.Argument(metavar="DEVICE_ID", help="GB/T 28181 id (20 digits).")]


def show_device_state(device: pb.Device, json_output: bool) -> None:
    """After a lifecycle call: the device's JSON, or one line with its state."""
    if json_output:
        print_message(device)
    else:
        typer.echo(f"device {device.device_id}: {pb.DeviceState.Name(device.state)}")


@devices_app.command("register", help="Register a device from canonical JSON of vigil.registry.v1.Device.")
def devices_register(ctx: typer.Context, file: RequestFile, json_output: JsonFlag = False) -> None:
    device = load_message(file, pb.Device)
    reply = call(ctx, lambda stub: stub.RegisterDevice(pb.RegisterDeviceRequest(device=device)))
    output(reply, json_output, f"device {reply.device_id} registered")


@devices_app.command(
    "update",
    help="Change a device: -f takes a JSON object of the fields to change (they become the update mask). "
    "Moving or re-aiming a deployed device needs --work-order (REG-12).",
)
def devices_update(
    ctx: typer.Context,
    device_id: DeviceId,
    file: RequestFile,
    work_order: Annotated[
        str, typer.Option("--work-order", metavar="REF", help="The approved work order (REG-12).")
    ] = "",
    json_output: JsonFlag = False,
) -> None:
    device, paths = load_patch(file, pb.Device, id_field="device_id", id_value=device_id)
    request = pb.UpdateDeviceRequest(
        device=device, update_mask=field_mask_pb2.FieldMask(paths=paths), work_order_ref=work_order
    )
    reply = call(ctx, lambda stub: stub.UpdateDevice(request))
    output(reply, json_output, f"device {reply.device_id} updated ({', '.join(paths)})")


@devices_app.command("activate", help="REGISTERED or SUSPENDED → ACTIVE (refused while REG-4/5/6 fail).")
def devices_activate(ctx: typer.Context, device_id: DeviceId, json_output: JsonFlag = False) -> None:
    reply = call(ctx, lambda stub: stub.ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id)))
    show_device_state(reply, json_output)


@devices_app.command("suspend", help="Suspend a device (its keepalives are no longer watched).")
def devices_suspend(
    ctx: typer.Context,
    device_id: DeviceId,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit trail.")] = "",
    json_output: JsonFlag = False,
) -> None:
    request = pb.SuspendDeviceRequest(device_id=device_id, reason=reason)
    reply = call(ctx, lambda stub: stub.SuspendDevice(request))
    show_device_state(reply, json_output)


@devices_app.command("decommission", help="Decommission a device for good (REG-12: needs --work-order).")
def devices_decommission(
    ctx: typer.Context,
    device_id: DeviceId,
    work_order: Annotated[
        str, typer.Option("--work-order", metavar="REF", help="The approved work order (REG-12).")
    ] = "",
    reason: Annotated[str, typer.Option("--reason", help="Why, for the audit trail.")] = "",
    json_output: JsonFlag = False,
) -> None:
    request = pb.DecommissionDeviceRequest(device_id=device_id, work_order_ref=work_order, reason=reason)
    reply = call(ctx, lambda stub: stub.DecommissionDevice(request))
    show_device_state(reply, json_output)


@devices_app.command("get", help="Show one device.")
def devices_get(ctx: typer.Context, device_id: DeviceId, json_output: JsonFlag = False) -> None:
    reply = call(ctx, lambda stub: stub.GetDevice(pb.GetDeviceRequest(device_id=device_id)))
    output(reply, json_output, f"device {reply.device_id}")


def device_rows(devices: Iterable[pb.Device]) -> list[tuple[str, ...]]:
    return [
        (
            d.device_id,
            d.name,
            d.site_id,
            d.owner.name or d.owner_unit_id,
            enum_name(pb.AreaType, d.area_type),
            enum_name(pb.DeviceState, d.state),
            ts(d.last_keepalive_time),
        )
        for d in devices
    ]


@devices_app.command("list", help="List devices (every page), optionally filtered.")
def devices_list(
    ctx: typer.Context,
    division: Annotated[
        str | None,
        typer.Option(
            "--division", metavar="PREFIX", help="The site's division code starts with this, e.g. 3202."
        ),
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="The site's place category, e.g. TRANSPORT.")
    ] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="Device state, e.g. ACTIVE or OFFLINE.")
    ] = None,
    unit: Annotated[str | None, typer.Option("--unit", help="Owner unit id.")] = None,
    site: Annotated[str | None, typer.Option("--site", help="Site id.")] = None,
    json_output: JsonFlag = False,
) -> None:
    request = pb.ListDevicesRequest(
        division_prefix=division or "", owner_unit_id=unit or "", site_id=site or ""
    )
    if category:
        request.place_category = enum_value(
            pb.PlaceCategory, "PLACE_CATEGORY_", category, option="--category"
        )
    if state:
        request.state = enum_value(pb.DeviceState, "DEVICE_STATE_", state, option="--state")
    devices = call(ctx, lambda stub: list_all(stub.ListDevices, request, "devices"))
    if json_output:
        print_messages(devices)
        return
    print_table(
        f"{len(devices)} devices",
        ("device", "name", "site", "owner", "area", "state", "last keepalive"),
        device_rows(devices),
    )


@devices_app.command("keepalive", help="Send one keepalive for a device (as its unit or an administrator).")
def devices_keepalive(
    ctx: typer.Context,
    device_id: DeviceId,
    latitude: Annotated[float | None, typer.Option("--latitude", help="Reported position (REG-12).")] = None,
    longitude: Annotated[
        float | None, typer.Option("--longitude", help="Reported position (REG-12).")
    ] = None,
    direction: Annotated[
        float | None, typer.Option("--direction", help="Reported aim in degrees (REG-12).")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    request = pb.KeepaliveRequest(device_id=device_id)
    for name, value in (
        ("reported_latitude", latitude),
        ("reported_longitude", longitude),
        ("reported_direction_deg", direction),
    ):
        if value is not None:
            setattr(request, name, value)
    reply = call(ctx, lambda stub: stub.Keepalive(request))
    if json_output:
        print_message(reply)
        return
    rows = [
        ("state", pb.DeviceState.Name(reply.state)),
        ("last keepalive", ts(reply.last_keepalive_time)),
        ("offline deadline", ts(reply.offline_deadline)),
        ("went online", "yes" if reply.went_online else "no"),
        ("unauthorized change detected", "yes" if reply.unauthorized_change_detected else "no"),
    ]
    print_table(f"keepalive {device_id}", ("field", "value"), rows)


# ---- bulk import ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LineError:
    """One refused line of an import: its 1-based number and `STATUS_NAME [RULE-ID]: message`."""

    line: int
    error: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.error}"


@dataclass
class ImportReport:
    total: int = 0
    imported: int = 0
    errors: list[LineError] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.errors)

    def summary(self) -> str:
        return f"imported {self.imported} of {self.total} devices; {self.failed} failed"


def numbered_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number, text) for every non-blank line; numbers count blank lines too, as editors do."""
    for number, text in enumerate(lines, start=1):
        if text.strip():
            yield number, text


def parse_import_line(number: int, text: str) -> pb.Device | LineError:
    """One JSONL line → a Device, or the line's error (a malformed line is refused locally)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return LineError(number, f"INVALID_ARGUMENT: not JSON: {exc}")
    if not isinstance(data, dict):
        return LineError(number, "INVALID_ARGUMENT: a line is one JSON object (a vigil.registry.v1.Device)")
    try:
        return json_format.ParseDict(data, pb.Device())
    except json_format.ParseError as exc:
        return LineError(number, f"INVALID_ARGUMENT: not a valid vigil.registry.v1.Device: {exc}")


# A refused ImportDevices names each refused device by its index in the call: `devices[3].area_type`.
_INDEXED_FIELD = re.compile(r"^devices\[(\d+)\](?:\.(.*))?$")


def refused_devices(err: VigilError) -> dict[int, list[str]]:
    """From a refused ImportDevices: each refused device's index → its violations' `STATUS [RULE]:
    message` descriptions, in order (empty when the refusal is not about particular devices)."""
    out: dict[int, list[str]] = {}
    for field_path, description in err.violations:
        match = _INDEXED_FIELD.match(field_path)
        if match is not None:
            out.setdefault(int(match.group(1)), []).append(description)
    return out


async def import_devices(
    lines: Iterable[tuple[int, str]],
    import_batch: Callable[[list[pb.Device]], Awaitable[object]],
    *,
    batch_size: int = DEFAULT_IMPORT_BATCH,
    concurrency: int = DEFAULT_IMPORT_CONCURRENCY,
    on_done: Callable[[], None] = lambda: None,
) -> ImportReport:
    """Register every line's device through ImportDevices, `batch_size` devices a call and at most
    `concurrency` calls in flight. The service refuses a call whole when any of its devices is refused,
    listing each refused device: those lines are recorded (as `STATUS_NAME [RULE-ID]: message`) and the
    call's other devices are sent again, so the valid lines stay; a line that is not a Device is
    refused locally. A refusal of the whole call (e.g. PERMISSION_DENIED) is recorded for each line."""
    report = ImportReport()

    async def send(batch: list[tuple[int, pb.Device]]) -> None:
        while batch:
            try:
                await import_batch([device for _, device in batch])
            except grpc.RpcError as exc:
                try:
                    refused = refused_devices(from_rpc_error(exc))
                except Exception:  # not a Vigil status: refused whole, below
                    refused = {}
                if not refused or max(refused) >= len(batch):
                    text = describe_rpc_error(exc)
                    report.errors += [LineError(number, text) for number, _ in batch]
                    for _ in batch:
                        on_done()
                    return
                for index, descriptions in refused.items():
                    report.errors.append(LineError(batch[index][0], "; ".join(descriptions)))
                    on_done()
                batch = [item for i, item in enumerate(batch) if i not in refused]
            else:
                report.imported += len(batch)
                for _ in batch:
                    on_done()
                return

    # Lines are read lazily into batches, never the whole file: a file of any size streams through.
    def batches() -> Iterator[list[tuple[int, pb.Device]]]:
        batch: list[tuple[int, pb.Device]] = []
        for number, text in lines:
            report.total += 1
            parsed = parse_import_line(number, text)
            if isinstance(parsed, LineError):
                report.errors.append(parsed)
                on_done()
                continue
            batch.append((number, parsed))
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch

    pending = batches()

    async def worker() -> None:
        for batch in pending:
            await send(batch)

    await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    report.errors.sort(key=lambda e: e.line)
    return report


@devices_app.command(
    "import",
    help="Register many devices from a JSONL file (one vigil.registry.v1.Device per line; - for stdin), "
    "in batches through ImportDevices under the same rules as `register`. Refused lines are reported as "
    "`line N: STATUS [RULE]: message`; the valid lines are kept. Exit 1 if any line failed.",
)
def devices_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE.jsonl", dir_okay=False, allow_dash=True)],
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="ImportDevices calls in flight at once.")
    ] = DEFAULT_IMPORT_CONCURRENCY,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size",
            min=1,
            max=MAX_IMPORT_BATCH,
            help="Devices per ImportDevices call (one transaction).",
        ),
    ] = DEFAULT_IMPORT_BATCH,
) -> None:
    if str(file) == "-":
        stdin_lines = sys.stdin.read().splitlines()
        total = sum(1 for line in stdin_lines if line.strip())

        def source() -> Iterator[str]:
            yield from stdin_lines

    else:
        try:
            with open(file, encoding="utf-8") as f:
                total = sum(1 for line in f if line.strip())
        except (OSError, UnicodeDecodeError) as exc:
            usage_error(f"cannot read {file}: {exc}")

        def source() -> Iterator[str]:
            # Read again, lazily: the workers pull lines as they free up.
            with open(file, encoding="utf-8") as f:
                yield from f

    with progress() as bar:
        task = bar.add_task(f"importing {file}", total=total)

        async def body(stub: pb_grpc.RegistryServiceStub) -> ImportReport:
            return await import_devices(
                numbered_lines(source()),
                lambda devices: stub.ImportDevices(pb.ImportDevicesRequest(devices=devices), timeout=120),
                batch_size=batch_size,
                concurrency=concurrency,
                on_done=lambda: bar.advance(task),
            )

        report = call(ctx, body)

    for error in report.errors:
        err_console.print(str(error), markup=False, soft_wrap=True)
    if report.errors:
        err_console.print(report.summary(), markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_ERROR)
    console.print(report.summary(), markup=False, soft_wrap=True)


# ---- filings --------------------------------------------------------------------------------------

UnitId = Annotated[str, typer.Argument(metavar="UNIT_ID", help="The unit's unified social credit code.")]
SiteId = Annotated[str, typer.Argument(metavar="SITE_ID")]


def filing_rows(filings: Iterable[pb.Filing]) -> list[tuple[str, ...]]:
    return [
        (
            f.unit_id,
            f.site_id,
            enum_name(pb.FilingState, f.state),
            f.in_use_on,
            f.due_on,
            f.filing_number,
            f.filed_on,
            ", ".join(f.changes),
        )
        for f in filings
    ]


FILING_COLUMNS = ("unit", "site", "state", "in use", "due", "filing number", "filed", "changes")


@filings_app.command("list", help="List filings (every page), optionally filtered.")
def filings_list(
    ctx: typer.Context,
    unit: Annotated[str | None, typer.Option("--unit", help="Unit id.")] = None,
    site: Annotated[str | None, typer.Option("--site", help="Site id.")] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="DUE, FILED, OVERDUE or CHANGE_PENDING.")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    request = pb.ListFilingsRequest(unit_id=unit or "", site_id=site or "")
    if state:
        request.state = enum_value(pb.FilingState, "FILING_STATE_", state, option="--state")
    filings = call(ctx, lambda stub: list_all(stub.ListFilings, request, "filings"))
    if json_output:
        print_messages(filings)
        return
    print_table(f"{len(filings)} filings", FILING_COLUMNS, filing_rows(filings))


@filings_app.command("get", help="Show the filing of a unit's system at a site.")
def filings_get(ctx: typer.Context, unit_id: UnitId, site_id: SiteId, json_output: JsonFlag = False) -> None:
    reply = call(ctx, lambda stub: stub.GetFiling(pb.GetFilingRequest(unit_id=unit_id, site_id=site_id)))
    output(reply, json_output, f"filing {unit_id} at {site_id}")


@filings_app.command("record", help="Record the public security organ's filing number and date.")
def filings_record(
    ctx: typer.Context,
    unit_id: UnitId,
    site_id: SiteId,
    number: Annotated[str, typer.Option("--number", help="The filing number the organ issued.")],
    filed_on: Annotated[
        str, typer.Option("--filed-on", metavar="YYYY-MM-DD", help="The filing date (default: today).")
    ] = "",
    json_output: JsonFlag = False,
) -> None:
    request = pb.RecordFilingRequest(
        unit_id=unit_id, site_id=site_id, filing_number=number, filed_on=filed_on
    )
    reply = call(ctx, lambda stub: stub.RecordFiling(request))
    output(reply, json_output, f"filing {unit_id} at {site_id} recorded")


@filings_app.command("export", help="Print the filing dossier (REG-7) as JSON, or write it to --output.")
def filings_export(
    ctx: typer.Context,
    unit_id: UnitId,
    site_id: SiteId,
    out: Annotated[Path | None, typer.Option("--output", "-o", dir_okay=False, help="Write it here.")] = None,
) -> None:
    request = pb.ExportFilingDossierRequest(unit_id=unit_id, site_id=site_id)
    reply = call(ctx, lambda stub: stub.ExportFilingDossier(request))
    try:
        text = json.dumps(json.loads(reply.dossier_json), indent=2, ensure_ascii=False)
    except ValueError:  # print what the registry sent, whatever its shape
        text = reply.dossier_json
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        err_console.print(f"dossier written to {out}", markup=False)


# ---- the registry as a whole ----------------------------------------------------------------------


@registry_app.command(
    "summary", help="The compliance summary: gaps in coverage, filings, notices and uptime."
)
def registry_summary(
    ctx: typer.Context,
    division: Annotated[
        str | None, typer.Option("--division", metavar="PREFIX", help="Only sites in this division.")
    ] = None,
    max_items: Annotated[int, typer.Option("--max-items", min=0, help="Items listed per section.")] = 0,
    json_output: JsonFlag = False,
) -> None:
    request = pb.GetComplianceSummaryRequest(division_prefix=division or "", max_items=max_items)
    s = call(ctx, lambda stub: stub.GetComplianceSummary(request))
    if json_output:
        print_message(s)
        return
    limit = human_duration(s.outage_limit.ToTimedelta()) if s.HasField("outage_limit") else None
    rows = [
        ("sites", s.site_count),
        ("devices", s.device_count),
        ("active devices", s.active_device_count),
        ("REG-2 mandatory sites without an active device", s.sites_without_active_device_count),
        ("REG-7 overdue filings", s.overdue_filings_count),
        ("REG-7 filings with changes pending", s.change_pending_filings_count),
        ("REG-5 devices missing privacy measures", s.devices_missing_privacy_measures_count),
        ("REG-6 devices missing a notice sign", s.devices_missing_notice_sign_count),
        ("REG-11 offline devices", s.offline_devices_count),
        (f"REG-11 outages over the limit{f' ({limit})' if limit else ''}", s.outages_over_limit_count),
    ]
    print_table(f"compliance summary at {ts(s.compute_time)}", ("check", "count"), rows)
    if s.sites_without_active_device:
        print_table(
            "mandatory sites without an active device (REG-2)",
            ("site", "name", "category", "managing unit"),
            [
                (g.site_id, g.name, enum_name(pb.PlaceCategory, g.place_category), g.managing_unit_id)
                for g in s.sites_without_active_device
            ],
        )
    if s.overdue_filings:
        print_table("overdue filings (REG-7)", FILING_COLUMNS, filing_rows(s.overdue_filings))
    gaps = [*s.devices_missing_privacy_measures, *s.devices_missing_notice_sign]
    if gaps:
        print_table(
            "devices missing privacy measures (REG-5) or a notice sign (REG-6)",
            ("device", "site", "owner", "state", "rule"),
            [
                (g.device_id, g.site_id, g.owner_unit_id, enum_name(pb.DeviceState, g.state), g.rule)
                for g in gaps
            ],
        )
    if s.offline_devices:
        print_table(
            "offline devices (REG-11)",
            ("device", "site", "owner", "offline since", "outage", "over limit"),
            [
                (
                    o.device_id,
                    o.site_id,
                    o.owner_unit_id,
                    ts(o.offline_time),
                    human_duration(o.outage.ToTimedelta()),
                    "yes" if o.over_limit else "",
                )
                for o in s.offline_devices
            ],
        )
