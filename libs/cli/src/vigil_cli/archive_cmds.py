"""The archive's subcommands: `vigil segments list`, `vigil holds place|release|list`, `vigil archive
verify|coverage`, `vigil playback` and `vigil live`.

They follow output.py's conventions: tables for people, `--json` for the resources themselves
(canonical JSON; sha256 as lower-case hex), `STATUS_NAME [RULE-ID]: message` on stderr with exit 1,
usage errors exit 2. `vigil archive verify` is a check: exit 0 when everything verifies, exit 1
naming each bad segment.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.archive.v1 import archive_service_pb2_grpc as pb_grpc
from vigil.common.v1 import time_range_pb2
from vigil_cli.output import (
    EXIT_ERROR,
    JsonFlag,
    parse_time,
    print_message,
    print_table,
    to_timestamp,
    usage_error,
)
from vigil_cli.registry_cmds import list_all, print_messages, ts
from vigil_cli.session import call_service

T = TypeVar("T")

VERIFY_TIMEOUT_S = 600.0
SCAN_TIMEOUT_S = 120.0

segments_app = typer.Typer(
    help="Stored segments as the archive indexes them (by object version).", no_args_is_help=True
)
holds_app = typer.Typer(
    help="Legal holds: evidence preservation that outlasts retention (ARC-6).", no_args_is_help=True
)
archive_app = typer.Typer(
    help="Archive checks: integrity (ARC-4) and continuity (ARC-5).", no_args_is_help=True
)

DeviceId = Annotated[str, typer.Argument(help="The device's 20-digit GB/T 28181 id.")]
From = Annotated[
    datetime | None,
    typer.Option("--from", parser=parse_time, help="Start (RFC 3339); default: 24 h before --to."),
]
To = Annotated[datetime | None, typer.Option("--to", parser=parse_time, help="End (RFC 3339); default: now.")]


def add_archive_commands(app: typer.Typer) -> None:
    """Register `segments`, `holds` and `archive` on the `vigil` app."""
    app.add_typer(segments_app, name="segments")
    app.add_typer(holds_app, name="holds")
    app.add_typer(archive_app, name="archive")
    add_viewing_commands(app)


def call(ctx: typer.Context, body: Callable[[pb_grpc.ArchiveServiceStub], Awaitable[T]]) -> T:
    return call_service(ctx, "archive", pb_grpc.ArchiveServiceStub, body)


def window(start: datetime | None, end: datetime | None) -> time_range_pb2.TimeRange | None:
    """--from/--to → a TimeRange (either may be left out: the service fills the default)."""
    if start is None and end is None:
        return None
    if start is not None and end is not None and not start < end:
        usage_error("--from must be before --to")
    out = time_range_pb2.TimeRange()
    if start is not None:
        out.start_time.CopyFrom(to_timestamp(start))
    if end is not None:
        out.end_time.CopyFrom(to_timestamp(end))
    return out


def _with_range(request: T, start: datetime | None, end: datetime | None) -> T:
    rng = window(start, end)
    if rng is not None:
        request.range.CopyFrom(rng)  # type: ignore[attr-defined]
    return request


# ---- vigil segments -------------------------------------------------------------------------------


@segments_app.command(
    "list", help="A device's segments in a window (default: the last 24 hours), in time order."
)
def segments_list(
    ctx: typer.Context, device_id: DeviceId, start: From = None, end: To = None, json_output: JsonFlag = False
) -> None:
    request = _with_range(pb.FindSegmentsRequest(device_id=device_id), start, end)
    segments = call(ctx, lambda stub: list_all(stub.FindSegments, request, "segments"))
    if json_output:
        print_messages(segments)
        return
    print_table(
        f"{len(segments)} segment(s) of {device_id}",
        ("start", "end", "size", "sha256", "retain until", "holds", "key@version"),
        [
            (
                ts(s.start_time),
                ts(s.end_time),
                s.size,
                s.sha256,
                ts(s.retain_until),
                ", ".join(s.hold_ids),
                f"{s.key}@{s.version_id}",
            )
            for s in segments
        ],
    )


# ---- vigil holds ----------------------------------------------------------------------------------


@holds_app.command("place", help="Place a legal hold on devices' footage in a window. Prints the hold's id.")
def holds_place(
    ctx: typer.Context,
    device_ids: Annotated[list[str], typer.Option("--device", help="A device to hold (repeat for more).")],
    start: Annotated[
        datetime, typer.Option("--from", parser=parse_time, help="Start of the footage (RFC 3339).")
    ],
    end: Annotated[datetime, typer.Option("--to", parser=parse_time, help="End of the footage (RFC 3339).")],
    case: Annotated[str, typer.Option("--case", help="The case reference the evidence is kept for.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (it is audited).")],
    important: Annotated[
        bool, typer.Option("--important", help="Mark as important public-safety material (long retention).")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    request = _with_range(
        pb.PlaceHoldRequest(device_ids=device_ids, case_reference=case, reason=reason, important=important),
        start,
        end,
    )
    hold = call(ctx, lambda stub: stub.PlaceHold(request))
    if json_output:
        print_message(hold)
    else:
        typer.echo(f"{hold.hold_id} placed ({hold.covered_segments} segment(s) held)")


@holds_app.command("release", help="Release a legal hold (footage then expires with its retention).")
def holds_release(
    ctx: typer.Context,
    hold_id: Annotated[str, typer.Argument(help="The hold's id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (it is audited).")] = "",
    json_output: JsonFlag = False,
) -> None:
    hold = call(ctx, lambda stub: stub.ReleaseHold(pb.ReleaseHoldRequest(hold_id=hold_id, reason=reason)))
    if json_output:
        print_message(hold)
    else:
        typer.echo(f"{hold.hold_id} released")


@holds_app.command("list", help="Active legal holds (--all: released ones too), optionally one device's.")
def holds_list(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Option("--device", help="Only holds naming this device.")] = "",
    include_released: Annotated[bool, typer.Option("--all", help="Include released holds.")] = False,
    json_output: JsonFlag = False,
) -> None:
    request = pb.ListHoldsRequest(device_id=device_id, include_released=include_released)
    holds = call(ctx, lambda stub: list_all(stub.ListHolds, request, "holds"))
    if json_output:
        print_messages(holds)
        return
    print_table(
        f"{len(holds)} hold(s)",
        ("hold", "case", "devices", "from", "to", "important", "placed by", "released"),
        [
            (
                h.hold_id,
                h.case_reference,
                ", ".join(h.device_ids),
                ts(h.range.start_time),
                ts(h.range.end_time),
                "yes" if h.important else "",
                h.placed_by,
                ts(h.release_time),
            )
            for h in holds
        ],
    )


# ---- vigil archive --------------------------------------------------------------------------------


@archive_app.command(
    "verify", help="Re-hash a device's segments from storage and check the index and day roots (ARC-4)."
)
def archive_verify(
    ctx: typer.Context, device_id: DeviceId, start: From = None, end: To = None, json_output: JsonFlag = False
) -> None:
    request = _with_range(pb.VerifySegmentsRequest(device_id=device_id), start, end)
    # Re-hashing a day of footage from storage takes longer than the CLI's default 5 s deadline.
    result = call(ctx, lambda stub: stub.VerifySegments(request, timeout=VERIFY_TIMEOUT_S))
    if json_output:
        print_message(result)
    else:
        bad = [
            f"{pb.ViolationKind.Name(f.kind).removeprefix('VIOLATION_KIND_')} {f.key}@{f.version_id}: {f.detail}"
            for f in result.findings
        ]
        typer.echo(
            f"{result.checked} segment(s) checked, {len(result.day_roots)} day root(s), "
            + ("all verified" if not bad else f"{len(bad)} finding(s)")
        )
        for line in bad:
            typer.echo(line, err=True)
    if result.findings or not result.ok:
        raise typer.Exit(EXIT_ERROR)


@archive_app.command(
    "coverage", help="A device's footage coverage: earliest footage, gaps, share covered (ARC-5)."
)
def archive_coverage(
    ctx: typer.Context, device_id: DeviceId, start: From = None, end: To = None, json_output: JsonFlag = False
) -> None:
    request = _with_range(pb.GetCoverageRequest(device_id=device_id), start, end)
    cov = call(ctx, lambda stub: stub.GetCoverage(request, timeout=SCAN_TIMEOUT_S))
    if json_output:
        print_message(cov)
        return
    typer.echo(
        f"{device_id}: {cov.percent_covered:.2f}% covered from {ts(cov.range.start_time)} to "
        f"{ts(cov.range.end_time)}; earliest footage {ts(cov.earliest) or 'none'}, "
        f"{cov.segment_count} segment(s), {cov.gap_count} gap(s)"
    )
    if cov.gaps:
        print_table(
            "gaps",
            ("from", "to", "seconds"),
            [(ts(g.start_time), ts(g.end_time), g.end_time.seconds - g.start_time.seconds) for g in cov.gaps],
        )


# ---- vigil playback / vigil live ------------------------------------------------------------------


def add_viewing_commands(app: typer.Typer) -> None:
    """Register `playback` and `live` on the `vigil` app."""
    app.command("playback", help="A device's footage as an HLS playlist (needs a playback grant; audited).")(
        playback
    )
    app.command("live", help="A device's live HLS playlist: its newest segments (needs a live-view grant).")(
        live
    )


def _download(urls: list[str], out: Path) -> int:
    """Fetch each presigned URL in order and write them one after another (MPEG-TS segments join so)."""
    written = 0
    with out.open("wb") as f:
        for url in urls:
            with urllib.request.urlopen(url, timeout=60) as response:
                data = response.read()
            f.write(data)
            written += len(data)
    return written


def playback(
    ctx: typer.Context,
    device_id: DeviceId,
    start: Annotated[
        datetime, typer.Option("--from", parser=parse_time, help="Start of the footage (RFC 3339).")
    ],
    end: Annotated[datetime, typer.Option("--to", parser=parse_time, help="End of the footage (RFC 3339).")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Download the segments and join them into this file."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    request = _with_range(pb.GetPlaybackManifestRequest(device_id=device_id), start, end)
    manifest = call(ctx, lambda stub: stub.GetPlaybackManifest(request))
    if json_output:
        print_message(manifest)
    else:
        typer.echo(manifest.playlist, nl=False)
    if output is not None:
        if any(s.container == "mp4" for s in manifest.segments):
            usage_error(
                "-o joins MPEG-TS segments; this footage has fragmented-MP4 segments (use the playlist)"
            )
        size = _download(list(manifest.urls), output)
        typer.echo(f"{len(manifest.urls)} segment(s), {size:,} bytes → {output}", err=True)


def live(ctx: typer.Context, device_id: DeviceId, json_output: JsonFlag = False) -> None:
    manifest = call(ctx, lambda stub: stub.GetLiveManifest(pb.GetLiveManifestRequest(device_id=device_id)))
    if json_output:
        print_message(manifest)
    else:
        typer.echo(manifest.playlist, nl=False)
