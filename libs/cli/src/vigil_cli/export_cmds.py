"""`vigil export DEVICE --from --to --purpose … [--public] -o clip.mp4` and `vigil export verify clip.mp4 manifest.json`.

An export streams the archive's progress as a bar, then downloads the stored clip (by its version,
through the presigned URL the archive answers with) and writes the signed evidence manifest beside
it (`clip.manifest.json` unless --manifest says otherwise). `verify` is an offline check
(vigil_media.evidence.verify_export): exit 0 when the clip and manifest verify against the archive's
key, exit 1 naming each thing that failed. The key is --key's PEM file, else the one `vigil up`
pinned in the context file, else (said so on stderr) the one the running archive serves.
"""

from __future__ import annotations

import asyncio
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.archive.v1 import archive_service_pb2_grpc as pb_grpc
from vigil.common.v1 import time_range_pb2
from vigil_cli.context import ContextError, load_context
from vigil_cli.output import EXIT_ERROR, err_console, fail, parse_time, progress, to_timestamp, usage_error
from vigil_cli.session import call_service, session
from vigil_media.evidence import verify_export

CONTEXT_PUBLIC_KEY = "archive_export_public_key_pem"


class _ExportGroup(TyperGroup):
    """`vigil export DEVICE …` runs `export clip DEVICE …`; `vigil export verify …` the check."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["clip", *args]
        return super().parse_args(ctx, args)


export_app = typer.Typer(
    cls=_ExportGroup,
    name="export",
    help="Export footage as evidence (signed manifest, masked as the grant requires), and verify exports.",
    no_args_is_help=True,
)

STAGES = {
    pb.EXPORT_STAGE_AUTHORIZED: "authorized",
    pb.EXPORT_STAGE_READING: "reading segments",
    pb.EXPORT_STAGE_ENCODING: "encoding",
    pb.EXPORT_STAGE_STORED: "stored",
}


def _download(url: str, path: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
        while chunk := response.read(1 << 20):
            out.write(chunk)


@export_app.command("clip", help="Export a device's footage in a window to one MP4 with its signed manifest.")
def export_clip(
    ctx: typer.Context,
    device_id: Annotated[str, typer.Argument(help="The device's 20-digit GB/T 28181 id.")],
    start: Annotated[
        datetime, typer.Option("--from", parser=parse_time, help="Start of the footage (RFC 3339).")
    ],
    end: Annotated[datetime, typer.Option("--to", parser=parse_time, help="End of the footage (RFC 3339).")],
    purpose: Annotated[str, typer.Option("--purpose", help="Why the footage is exported (recorded).")],
    output: Annotated[Path, typer.Option("-o", "--output", dir_okay=False, help="Where to write the clip.")],
    public: Annotated[
        bool, typer.Option("--public", help="For publication: faces and licence plates are blurred (ACC-5).")
    ] = False,
    manifest_path: Annotated[
        Path | None,
        typer.Option(
            "--manifest", dir_okay=False, help="Where to write the manifest (default: beside the clip)."
        ),
    ] = None,
) -> None:
    if not start < end:
        usage_error("--from must be before --to")
    if not purpose.strip():
        usage_error("--purpose is required: why the footage leaves the archive")
    request = pb.ExportClipRequest(
        device_id=device_id,
        range=time_range_pb2.TimeRange(start_time=to_timestamp(start), end_time=to_timestamp(end)),
        purpose=purpose,
        public=public,
    )

    async def body(stub: pb_grpc.ArchiveServiceStub) -> pb.ExportedClip:
        done: pb.ExportedClip | None = None
        with progress() as bar:
            task = bar.add_task("authorizing", total=None)
            async for step in stub.ExportClip(request, timeout=3600):
                bar.update(
                    task,
                    description=STAGES.get(step.stage, "working"),
                    total=step.segments_total or None,
                    completed=step.segments_done,
                )
                if step.HasField("done"):
                    done = step.done
        if done is None:
            fail("the archive ended the export without naming the clip")
        return done

    done = call_service(ctx, "archive", pb_grpc.ArchiveServiceStub, body)
    asyncio.run(asyncio.to_thread(_download, done.url, output))
    manifest_out = manifest_path or output.with_suffix(".manifest.json")
    manifest_out.write_bytes(done.manifest)
    err_console.print(
        f"exported {done.segment_count} segment(s) to {output} (sha256 {done.sha256}); manifest {manifest_out}; "
        f"stored as {done.bucket}/{done.key}@{done.version_id}"
        + (" — masked" if done.masked else "")
        + (" — public: faces and plates blurred" if done.public else ""),
        markup=False,
        soft_wrap=True,
    )


def _public_key(ctx: typer.Context, key_file: Path | None) -> Any:
    if key_file is not None:
        try:
            return key_file.read_bytes()
        except OSError as exc:
            usage_error(f"cannot read {key_file}: {exc.strerror or exc}")
    s = session(ctx)
    try:
        pinned = load_context(s.context_file).extra.get(CONTEXT_PUBLIC_KEY)
    except ContextError:
        pinned = None
    if pinned:
        return pinned
    err_console.print("no pinned export key: using the key the running archive serves", markup=False)

    async def fetch(stub: pb_grpc.ArchiveServiceStub) -> str:
        return (await stub.GetExportKey(pb.GetExportKeyRequest())).public_key_pem

    return call_service(ctx, "archive", pb_grpc.ArchiveServiceStub, fetch)


@export_app.command(
    "verify", help="Check a clip against its signed manifest offline: exit 0 verified, 1 not."
)
def export_verify(
    ctx: typer.Context,
    clip: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The exported MP4.")],
    manifest: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Its manifest (JSON).")],
    key_file: Annotated[
        Path | None, typer.Option("--key", dir_okay=False, help="The archive's public key (PEM).")
    ] = None,
) -> None:
    key = _public_key(ctx, key_file)
    try:
        result = verify_export(clip.read_bytes(), manifest.read_bytes(), key)
    except ValueError as exc:
        fail(f"cannot verify: {exc}")
    if not result.ok:
        for failure in result.failures:
            err_console.print(f"FAILED {failure}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_ERROR)
    typer.echo(f"verified: {clip} matches {manifest}, signed by the archive's key")
