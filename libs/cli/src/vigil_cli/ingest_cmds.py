"""`vigil ingest upload`, and the segment-upload client it shares with the simulator and the gateway.

An upload is one IngestService/UploadSegment client stream: the signed header, then the bytes in
chunks of at most 1 MiB. The header's signature is the device's Ed25519 signature over the
canonical segment header (vigil_ingest.domain.signing); the same (device, sequence, hash) may be
sent again at will, since ingest answers a replay with the first result — so every retry here
resends the identical header.

Sequences: a device's sequence is its own counter. Vigil's clients derive it from time so that two
runs (or the simulator and a manual upload) never reuse one: the segment's start time in
milliseconds since the Unix epoch, or one more than the last sequence used for that device, if
that is larger. `vigil ingest upload` keeps the last sequence it used per device in
$VIGIL_HOME/sequences/<device_id>, so successive uploads from this machine always move forward.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Annotated

import grpc
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf import duration_pb2, timestamp_pb2
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from vigil_cli.output import JsonFlag, err_console, fail, parse_time, print_message, print_table, run
from vigil_cli.session import session
from vigil_ingest.domain import signing
from vigil_ingest.domain.container import Container, sniff
from vigil_kit.errors import from_rpc_error

CHUNK_BYTES = 1024 * 1024  # the service's per-message maximum
# A segment of a few hundred kilobytes goes up in well under a second; a large file needs longer.
UPLOAD_TIMEOUT_S = 60.0
NS = 1_000_000_000
# When a file cannot be probed (not a video), the header still needs a positive duration: the server
# refuses the bytes anyway, and that refusal is what the person should see.
UNPROBED_DURATION_S = 1.0

PB_CONTAINER = {Container.MPEG_TS: pb.CONTAINER_MPEG_TS, Container.FMP4: pb.CONTAINER_FMP4}

ingest_app = typer.Typer(name="ingest", help="Ingest: upload signed video segments.", no_args_is_help=True)


# ---- segments, sequences, headers ---------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """The bytes of one segment and what the header says about them (unsigned)."""

    data: bytes
    duration_ns: int
    container: Container | None
    codec: str
    sha256: str

    @classmethod
    def of(cls, data: bytes, *, duration_ns: int, container: Container | None, codec: str) -> Segment:
        return cls(data, duration_ns, container, codec, hashlib.sha256(data).hexdigest())

    @property
    def size(self) -> int:
        return len(self.data)


def time_sequence(start_ns: int) -> int:
    """The sequence a segment starting at `start_ns` gets when nothing larger was used: its start in ms."""
    return start_ns // 1_000_000


@dataclass
class Sequencer:
    """One device's sequences: strictly increasing, and never below the start time in milliseconds
    (so a restarted client does not reuse the numbers of an earlier run)."""

    last: int = -1

    def next(self, start_ns: int) -> int:
        self.last = max(self.last + 1, time_sequence(start_ns))
        return self.last


def reserve_sequence(home: Path, device_id: str, start_ns: int) -> int:
    """The next sequence for `device_id` from $VIGIL_HOME/sequences/<device_id>, recorded before it is
    used (under an exclusive lock, so two concurrent uploads on this machine never share one). A
    failed upload burns its number; gaps are harmless, reuse is not."""
    directory = home / "sequences"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / device_id
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    with os.fdopen(fd, "r+", encoding="ascii") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        text = f.read().strip()
        sequencer = Sequencer(int(text) if text.isdigit() else -1)
        sequence = sequencer.next(start_ns)
        f.seek(0)
        f.truncate()
        f.write(f"{sequence}\n")
    return sequence


def signed_header(
    key: Ed25519PrivateKey, *, device_id: str, sequence: int, start_ns: int, segment: Segment
) -> pb.SegmentHeader:
    """The upload's first message: the claims signed with the device key (canonical encoding), plus
    container, codec and size. Raises InvalidArgument for a value the canonical encoding refuses."""
    claims = signing.SegmentHeader(
        device_id=device_id,
        sequence=sequence,
        start_ns=start_ns,
        duration_ns=segment.duration_ns,
        sha256=segment.sha256,
    )
    seconds, nanos = divmod(start_ns, NS)
    d_seconds, d_nanos = divmod(segment.duration_ns, NS)
    return pb.SegmentHeader(
        device_id=device_id,
        sequence=sequence,
        start_time=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos),
        duration=duration_pb2.Duration(seconds=d_seconds, nanos=d_nanos),
        container=PB_CONTAINER.get(segment.container, pb.CONTAINER_UNSPECIFIED),  # type: ignore[arg-type]
        codec=segment.codec,
        size=segment.size,
        sha256=segment.sha256,
        signature=signing.sign(key, claims),
    )


def claims_of(header: pb.SegmentHeader) -> signing.SegmentHeader:
    """The signed claims of a wire header, as the service reads them (for checking a signature)."""
    return signing.SegmentHeader(
        device_id=header.device_id,
        sequence=header.sequence,
        start_ns=header.start_time.seconds * NS + header.start_time.nanos,
        duration_ns=header.duration.seconds * NS + header.duration.nanos,
        sha256=header.sha256,
    )


def now_ns() -> int:
    return time.time_ns()


# ---- sending ------------------------------------------------------------------------------------


ProgressCallback = Callable[[int], None]


async def _messages(
    header: pb.SegmentHeader, data: bytes, chunk_bytes: int, on_chunk: ProgressCallback | None
) -> AsyncIterator[pb.UploadSegmentRequest]:
    yield pb.UploadSegmentRequest(header=header)
    view = memoryview(data)
    for offset in range(0, len(data), chunk_bytes):
        piece = view[offset : offset + chunk_bytes]
        yield pb.UploadSegmentRequest(chunk=bytes(piece))
        if on_chunk is not None:
            on_chunk(len(piece))


async def send_segment(
    stub: pb_grpc.IngestServiceStub,
    header: pb.SegmentHeader,
    data: bytes,
    *,
    timeout_s: float = UPLOAD_TIMEOUT_S,
    chunk_bytes: int = CHUNK_BYTES,
    on_chunk: ProgressCallback | None = None,
) -> pb.UploadSegmentResponse:
    """One UploadSegment call: header, then chunks of at most `chunk_bytes`."""
    return await stub.UploadSegment(_messages(header, data, chunk_bytes, on_chunk), timeout=timeout_s)


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are worth sending the identical upload again, and when.

    RESOURCE_EXHAUSTED (ingest's backpressure) waits the RetryInfo delay the service sent;
    UNAVAILABLE (ingest restarting, connection lost), DEADLINE_EXCEEDED and ABORTED (the same
    sequence is still being uploaded by an earlier attempt) back off exponentially with jitter.
    Anything else is an answer about the upload itself and is not retried.
    """

    attempts: int = 6
    base_s: float = 0.5
    max_s: float = 10.0

    def delay(self, exc: grpc.RpcError, attempt: int) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up."""
        if attempt >= self.attempts:
            return None
        code = exc.code() if hasattr(exc, "code") else None
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            retry_after = getattr(from_rpc_error(exc), "retry_after_s", None)
            if retry_after is not None and retry_after >= 0:
                return min(self.max_s, retry_after)
            return self._backoff(attempt)
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED):
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)


async def upload_with_retry(
    stub: pb_grpc.IngestServiceStub,
    header: pb.SegmentHeader,
    data: bytes,
    *,
    policy: RetryPolicy | None = None,
    timeout_s: float = UPLOAD_TIMEOUT_S,
    on_retry: Callable[[grpc.RpcError, float], None] | None = None,
    on_chunk: ProgressCallback | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> pb.UploadSegmentResponse:
    """send_segment, resending the identical (signed) upload while `policy` says the failure is transient."""
    policy = policy or RetryPolicy()
    attempt = 1
    while True:
        try:
            return await send_segment(stub, header, data, timeout_s=timeout_s, on_chunk=on_chunk)
        except grpc.RpcError as exc:
            delay = policy.delay(exc, attempt)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            await sleep(delay)
            attempt += 1


# ---- probing a file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Probed:
    container: Container | None
    codec: str
    duration_s: float
    # Why the file could not be probed as video ("" when it could).
    problem: str = ""


def probe_file(data: bytes, name: str = "") -> Probed:
    """Container, codec and duration from PyAV; for bytes that are not a video Vigil stores, a guess
    (container from the extension, codec "unknown") so the upload still reaches the server, whose
    refusal is then what the person sees."""
    from vigil_ingest.video import VideoError, probe

    try:
        found = probe(data)
    except VideoError as exc:
        guess = sniff(data) or (
            Container.FMP4 if name.lower().endswith((".mp4", ".m4s")) else Container.MPEG_TS
        )
        return Probed(guess, "unknown", UNPROBED_DURATION_S, str(exc))
    duration = found.duration_s if found.duration_s > 0 else UNPROBED_DURATION_S
    return Probed(found.container, found.codec, duration)


def load_key(path: Path) -> Ed25519PrivateKey:
    try:
        return signing.load_private_key_file(path)
    except signing.KeyFileError as exc:
        raise typer.BadParameter(str(exc), param_hint="--key") from None


# ---- the command --------------------------------------------------------------------------------


def _byte_progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=False,
    )


def _ts(value: timestamp_pb2.Timestamp) -> str:
    return value.ToDatetime(tzinfo=UTC).isoformat().replace("+00:00", "Z") if value.seconds else ""


@ingest_app.command(
    "upload",
    help="Upload one video file as a signed segment of DEVICE. Sequence, start, duration, codec and "
    "container come from the file (PyAV) unless given: the sequence is the start time in milliseconds, or "
    "one more than the last this machine used for DEVICE ($VIGIL_HOME/sequences/DEVICE), whichever is "
    "larger; the start is now minus the duration. A file that is not video is sent anyway, so the "
    "server's refusal is what you see.",
)
def upload(
    ctx: typer.Context,
    device: Annotated[str, typer.Argument(help="The device's 20-digit GB/T 28181 id.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The segment.")],
    key: Annotated[
        Path,
        typer.Option(
            "--key",
            exists=True,
            dir_okay=False,
            help="The device's PKCS#8 PEM Ed25519 private key (openssl genpkey -algorithm ed25519).",
        ),
    ],
    sequence: Annotated[
        int | None, typer.Option("--sequence", min=0, max=signing.MAX_SEQUENCE, help="The device's sequence.")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", metavar="TIME", help="RFC 3339 start time (default now - duration)."),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", min=0.001, metavar="SECONDS", help="Override the probed duration."),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    s = session(ctx)
    private_key = load_key(key)
    started = parse_time(start) if start is not None else None
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    probed = probe_file(data, file.name)
    if probed.problem:
        err_console.print(
            f"{file.name}: {probed.problem}; sending it anyway as {probed.container.label if probed.container else '?'}",
            markup=False,
            soft_wrap=True,
        )
    duration_ns = round((duration if duration is not None else probed.duration_s) * NS)
    segment = Segment.of(data, duration_ns=duration_ns, container=probed.container, codec=probed.codec)
    start_ns = signing.datetime_to_ns(started) if started is not None else now_ns() - duration_ns
    if sequence is None:
        sequence = reserve_sequence(s.home, device, start_ns)
    context = s.context()

    async def go() -> pb.UploadSegmentResponse:
        header = signed_header(
            private_key, device_id=device, sequence=sequence, start_ns=start_ns, segment=segment
        )
        async with s.channel("ingest", context=context) as channel:
            stub = pb_grpc.IngestServiceStub(channel)
            with _byte_progress() as bar:
                task = bar.add_task(f"{file.name} → {device} #{sequence}", total=segment.size)
                return await upload_with_retry(
                    stub,
                    header,
                    data,
                    on_chunk=lambda n: bar.advance(task, n),
                    on_retry=lambda exc, delay: bar.console.print(
                        f"{exc.code().name}: retrying in {delay:.1f} s", markup=False
                    ),
                )

    reply = run(go())
    if json_output:
        print_message(reply)
        return
    stored = reply.segment
    rows = [
        ("device", stored.device_id),
        ("sequence", stored.sequence),
        ("bucket", stored.bucket),
        ("key", stored.key),
        ("version", stored.version_id),
        ("size", stored.size),
        ("sha256", stored.sha256),
        ("codec", stored.codec),
        ("container", pb.Container.Name(stored.container)),
        ("start", _ts(stored.start_time)),
        ("end", _ts(stored.end_time)),
        ("retain until", _ts(stored.retain_until)),
        ("replayed", "yes (already stored)" if reply.replayed else "no"),
    ]
    print_table("segment stored", ("field", "value"), rows)
