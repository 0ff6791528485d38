"""`vigil gateway`: RTSP cameras → MPEG-TS segments cut at keyframes (no re-encoding), signed, uploaded, kept alive.

Most real cameras speak RTSP, not Vigil's upload protocol, so a gateway sits beside them: for each
camera it pulls the stream with PyAV (FFmpeg's RTSP client, UDP or TCP transport), and cuts the
video packets at the first keyframe at least `segment_seconds` after the segment's own first
keyframe. Each segment's packets are remuxed, untouched, into a self-contained MPEG-TS (FFmpeg's
muxer puts the SPS/PPS in front of the keyframe if the camera only sent them in the SDP), so every
segment decodes on its own. A segment's start time is the camera's presentation time mapped onto
the gateway's clock (StreamClock; a new mapping on every reconnect); its duration is the distance
between the two keyframes on the stream's 90 kHz clock, in nanoseconds, exactly as signed.

Pulling runs in a thread per camera (PyAV blocks); uploads run on the event loop, one camera's in
order. If uploading falls behind, the oldest waiting segments are dropped (and counted) rather
than stalling the RTSP reader, which would lose packets anyway. A broken or refused connection is
retried with exponential backoff (1 s doubling to 30 s, jittered), reset after a segment arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import random
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Annotated, Any

import av
import grpc
import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.live import Live
from rich.table import Table

from vigil.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from vigil.registry.v1 import registry_service_pb2 as registry_pb
from vigil.registry.v1 import registry_service_pb2_grpc as registry_grpc
from vigil_cli.ingest_cmds import NS, Segment, Sequencer, signed_header, upload_with_retry
from vigil_cli.output import JsonFlag, console, err_console, fail, print_json, run, usage_error
from vigil_cli.session import session
from vigil_ingest.domain import signing
from vigil_ingest.domain.container import Container

logger = logging.getLogger(__name__)

DEFAULT_SEGMENT_S = 2.0
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 30.0
# Segments waiting to upload per camera before the oldest is dropped (~1 min at 2 s segments).
QUEUE_SEGMENTS = 30
KEEPALIVE_S = 30.0
# PyAV open/read timeouts: a camera that stops sending is noticed and reconnected within this.
OPEN_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 10.0


# ---- cutting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CutSegment:
    """One keyframe-to-keyframe run of packets, remuxed into MPEG-TS."""

    data: bytes
    first_pts: int  # in the source stream's time base
    duration_ns: int
    packets: int


def remux_ts(template: av.video.stream.VideoStream, packets: Iterable[av.Packet]) -> bytes:
    """The packets, unchanged, in a new MPEG-TS with one video stream shaped like `template`."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mpegts") as out:
        stream = out.add_stream_from_template(template)
        for packet in packets:
            packet.stream = stream
            out.mux(packet)
    return buf.getvalue()


class KeyframeCutter:
    """Feed the video packets of one stream, in decode order; get a segment back each time a keyframe
    closes one at least `target_s` long. Packets before the first keyframe (and without timestamps)
    cannot start a decodable segment and are dropped."""

    def __init__(self, stream: av.video.stream.VideoStream, target_s: float = DEFAULT_SEGMENT_S) -> None:
        self.stream = stream
        self.time_base: Fraction = stream.time_base or Fraction(1, 90_000)
        self.target = round(target_s / self.time_base)  # in time-base units
        self.packets: list[av.Packet] = []
        self.first_pts: int | None = None
        self.last_end: int | None = None
        self.dropped = 0

    def feed(self, packet: av.Packet) -> CutSegment | None:
        if packet.size == 0 or packet.pts is None:
            self.dropped += packet.size > 0
            return None
        out = None
        if packet.is_keyframe:
            if self.first_pts is not None and packet.pts - self.first_pts >= self.target:
                out = self._cut(packet.pts)
            if self.first_pts is None:
                self.first_pts = packet.pts
        if self.first_pts is None:
            self.dropped += 1
            return out
        self.packets.append(packet)
        end = packet.pts + (packet.duration or 0)
        self.last_end = end if self.last_end is None else max(self.last_end, end)
        return out

    def flush(self) -> CutSegment | None:
        """What is left at the end of the stream (its duration from the last packet's end)."""
        if (
            not self.packets
            or self.first_pts is None
            or self.last_end is None
            or self.last_end <= self.first_pts
        ):
            self.packets, self.first_pts, self.last_end = [], None, None
            return None
        return self._cut(self.last_end, restart=False)

    def _cut(self, end_pts: int, *, restart: bool = True) -> CutSegment:
        assert self.first_pts is not None
        packets, first = self.packets, self.first_pts
        duration_ns = round((end_pts - first) * self.time_base * NS)
        self.packets, self.last_end = [], None
        self.first_pts = end_pts if restart else None
        return CutSegment(remux_ts(self.stream, packets), first, duration_ns, len(packets))


def cut_file(data: bytes | str | Path, target_s: float = DEFAULT_SEGMENT_S) -> list[CutSegment]:
    """Every segment of a recorded stream (a file or its bytes): for tests and for replaying recordings."""
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    with av.open(source) as container:
        stream = container.streams.video[0]
        cutter = KeyframeCutter(stream, target_s)
        segments = [s for p in container.demux(stream) if (s := cutter.feed(p)) is not None]
        tail = cutter.flush()
    return [*segments, *([tail] if tail else [])]


# ---- pulling ------------------------------------------------------------------------------------


def pull(
    url: str,
    *,
    target_s: float,
    on_segment: Callable[[CutSegment, int], None],
    stop: threading.Event,
    transport: str = "udp",
    on_connected: Callable[[str], None] | None = None,
) -> None:
    """Read `url` until it ends, fails or `stop` is set, calling on_segment(segment, start_ns) for each
    cut. Blocking: run it in a thread. Raises what PyAV raises on a failed connection or read."""
    options = {"rtsp_transport": transport} if transport and url.startswith("rtsp") else {}
    with av.open(url, options=options, timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S)) as container:
        if not container.streams.video:
            raise ValueError(f"{url}: no video stream")
        stream = container.streams.video[0]
        cutter = KeyframeCutter(stream, target_s)
        clock = StreamClock(cutter.time_base)
        if on_connected is not None:
            on_connected(
                f"{stream.codec_context.name} {stream.codec_context.width}x{stream.codec_context.height}"
            )
        for packet in container.demux(stream):
            if stop.is_set():
                return
            segment = cutter.feed(packet)
            if cutter.first_pts is not None and packet.pts is not None:
                clock.observe(packet.pts)
            if segment is not None:
                on_segment(segment, clock.start_ns(segment))
        tail = cutter.flush()
        if tail is not None and not stop.is_set():
            on_segment(tail, clock.start_ns(tail))


class StreamClock:
    """Maps a stream's presentation times onto the gateway's wall clock.

    The offset between the two is the smallest (arrival time - presentation time) seen over the
    packets kept so far: a packet can arrive late (FFmpeg buffers the first second or so while it
    probes the stream; the network may stall), never early, so the smallest offset is the closest
    to the truth and a start time is never in the future. Packets before the first keyframe are not
    used (cameras send stray timestamps there). A segment is complete when the next keyframe
    arrives, so its end should be about now: if it is off by more than RESYNC_S (the camera reset
    its clock), the clock starts over so that the segment ends now.
    """

    RESYNC_S = 5.0

    def __init__(self, time_base: Fraction, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.time_base = time_base
        self.now_ns = now_ns
        self.offset: int | None = None  # wall-clock ns minus presentation ns

    def _ns(self, pts: int) -> int:
        return round(pts * self.time_base * NS)

    def observe(self, pts: int) -> None:
        offset = self.now_ns() - self._ns(pts)
        if self.offset is None or offset < self.offset:
            self.offset = offset

    def start_ns(self, segment: CutSegment) -> int:
        now = self.now_ns()
        first = self._ns(segment.first_pts)
        if self.offset is None:
            self.offset = now - segment.duration_ns - first
        start = first + self.offset
        if abs(start + segment.duration_ns - now) > self.RESYNC_S * NS:
            self.offset = now - segment.duration_ns - first
            start = first + self.offset
        return start


# ---- cameras ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraConfig:
    device_id: str
    url: str
    key_path: Path
    transport: str = "udp"


@dataclass
class CameraState:
    device_id: str
    state: str = "starting"
    uploaded: int = 0
    bytes: int = 0
    failures: int = 0
    dropped: int = 0
    reconnects: int = 0
    last_error: str = ""
    stream: str = ""


def backoff_s(attempt: int) -> float:
    """Delay before reconnect `attempt` (1-based): 1, 2, 4 … 30 s, ±25% jitter."""
    return min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)


PullFn = Callable[..., None]


@dataclass
class Camera:
    """One camera: a pulling thread feeding a bounded queue, and an uploader draining it in order."""

    config: CameraConfig
    key: Ed25519PrivateKey
    ingest: ingest_grpc.IngestServiceStub
    target_s: float = DEFAULT_SEGMENT_S
    segments: int = 0  # stop after this many uploaded; 0 = never
    pull_fn: PullFn = pull
    state: CameraState = field(init=False)
    _queue: deque[tuple[CutSegment, int]] = field(default_factory=lambda: deque(maxlen=QUEUE_SEGMENTS))

    def __post_init__(self) -> None:
        self.state = CameraState(self.config.device_id)
        self._wake = asyncio.Event()
        self._stop = threading.Event()
        self._sequencer = Sequencer()
        self._done = asyncio.Event()

    async def run(self) -> CameraState:
        uploader = asyncio.create_task(self._upload_loop())
        try:
            attempt = 0
            while not self._done.is_set():
                got_any = await self._pull_once()
                if self._done.is_set():
                    break
                attempt = 1 if got_any else attempt + 1
                self.state.reconnects += 1
                delay = backoff_s(attempt)
                self.state.state = f"reconnecting in {delay:.0f} s"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._done.wait(), delay)
            await uploader
        finally:
            self._stop.set()
            uploader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await uploader
        return self.state

    def stop(self) -> None:
        self._stop.set()
        self._done.set()
        self._wake.set()

    async def _pull_once(self) -> bool:
        loop = asyncio.get_running_loop()
        received = 0

        def on_segment(segment: CutSegment, start_ns: int) -> None:
            nonlocal received
            received += 1
            loop.call_soon_threadsafe(self._enqueue, segment, start_ns)

        def connected(what: str) -> None:
            self.state.stream = what
            self.state.state = "streaming"

        self.state.state = "connecting"
        self._stop.clear()
        try:
            await asyncio.to_thread(
                self.pull_fn,
                self.config.url,
                target_s=self.target_s,
                on_segment=on_segment,
                stop=self._stop,
                transport=self.config.transport,
                on_connected=connected,
            )
            if not self._done.is_set():
                self.state.last_error = "stream ended"
        except Exception as exc:  # any failure to connect or read is a reason to reconnect
            self.state.last_error = f"{type(exc).__name__}: {exc}"
            logger.info("camera %s: %s", self.config.device_id, self.state.last_error)
        return received > 0

    def _enqueue(self, segment: CutSegment, start_ns: int) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.state.dropped += 1  # deque(maxlen) drops the oldest on append
        self._queue.append((segment, start_ns))
        self._wake.set()

    async def _upload_loop(self) -> None:
        while not self._done.is_set():
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            cut, start_ns = self._queue.popleft()
            segment = Segment.of(
                cut.data, duration_ns=cut.duration_ns, container=Container.MPEG_TS, codec="h264"
            )
            header = signed_header(
                self.key,
                device_id=self.config.device_id,
                sequence=self._sequencer.next(start_ns),
                start_ns=start_ns,
                segment=segment,
            )
            try:
                await upload_with_retry(self.ingest, header, segment.data)
            except grpc.RpcError as exc:
                self.state.failures += 1
                self.state.last_error = f"{exc.code().name}: {exc.details()}"
                continue
            self.state.uploaded += 1
            self.state.bytes += segment.size
            if self.segments and self.state.uploaded >= self.segments:
                self.stop()


async def keepalives(
    registry: registry_grpc.RegistryServiceStub,
    device_ids: list[str],
    interval_s: float,
    on_error: Callable[[str], None],
) -> None:
    """One StreamKeepalives call for all the gateway's cameras every `interval_s`."""
    while True:
        try:
            reply = await registry.StreamKeepalives(
                iter([registry_pb.KeepaliveRequest(device_id=d) for d in device_ids])
            )
            if reply.rejected:
                first = reply.rejections[0]
                on_error(f"keepalive refused for {first.device_id}: {first.code} {first.message}")
        except grpc.RpcError as exc:
            on_error(f"keepalives: {exc.code().name}: {exc.details()}")
        await asyncio.sleep(interval_s)


# ---- configuration ------------------------------------------------------------------------------


def read_config(path: Path) -> tuple[list[CameraConfig], dict[str, Any]]:
    """`--config FILE` (TOML, or JSON for any other suffix): `segment_seconds` (optional) and a list
    `cameras` of {device, rtsp, key, transport (udp|tcp, default udp)}; relative key paths are
    relative to the file."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, ValueError) as exc:
        usage_error(f"{path}: {exc}")
    cameras = data.get("cameras") if isinstance(data, dict) else None
    if not isinstance(cameras, list) or not cameras:
        usage_error(f"{path}: needs a non-empty list `cameras` of {{device, rtsp, key}}")
    out = []
    for i, cam in enumerate(cameras):
        if not isinstance(cam, dict) or not {"device", "rtsp", "key"} <= cam.keys():
            usage_error(f"{path}: cameras[{i}] needs device, rtsp and key")
        key = Path(cam["key"]).expanduser()
        transport = cam.get("transport", "udp")
        if transport not in ("udp", "tcp"):
            usage_error(f"{path}: cameras[{i}].transport must be udp or tcp")
        out.append(
            CameraConfig(
                str(cam["device"]),
                str(cam["rtsp"]),
                key if key.is_absolute() else path.parent / key,
                transport,
            )
        )
    return out, {k: v for k, v in data.items() if k != "cameras"}


def state_table(states: list[CameraState]) -> Table:
    t = Table(title=f"vigil gateway: {len(states)} cameras", title_justify="left")
    for column in (
        "device",
        "state",
        "stream",
        "uploaded",
        "MB",
        "failed",
        "dropped",
        "reconnects",
        "last error",
    ):
        t.add_column(column)
    for s in states:
        t.add_row(
            s.device_id,
            s.state,
            s.stream,
            str(s.uploaded),
            f"{s.bytes / 1e6:.1f}",
            str(s.failures),
            str(s.dropped),
            str(s.reconnects),
            s.last_error[:60],
        )
    return t


def gateway(
    ctx: typer.Context,
    rtsp: Annotated[str | None, typer.Option("--rtsp", metavar="URL", help="The camera's RTSP URL.")] = None,
    device: Annotated[
        str | None, typer.Option("--device", metavar="ID", help="The camera's device id.")
    ] = None,
    key: Annotated[
        Path | None,
        typer.Option(
            "--key", dir_okay=False, exists=True, help="The device's PKCS#8 PEM Ed25519 private key."
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", dir_okay=False, exists=True, help="Many cameras: a TOML or JSON file (see docs)."
        ),
    ] = None,
    transport: Annotated[str, typer.Option("--transport", help="RTSP transport: udp or tcp.")] = "udp",
    segment_seconds: Annotated[
        float,
        typer.Option("--segment-seconds", min=0.5, max=600, help="Cut at the first keyframe after this."),
    ] = DEFAULT_SEGMENT_S,
    segments: Annotated[
        int,
        typer.Option(
            "--segments", min=0, help="Stop after this many segments per camera (0: run until Ctrl-C)."
        ),
    ] = 0,
    keepalive_interval: Annotated[
        float, typer.Option("--keepalive-interval", min=0, metavar="SECONDS", help="0: send no keepalives.")
    ] = KEEPALIVE_S,
    json_output: JsonFlag = False,
) -> None:
    """Pull RTSP cameras and upload their video as signed segments."""
    if config is not None:
        if rtsp or device or key:
            usage_error("give either --config FILE or --rtsp/--device/--key, not both")
        cameras, extra = read_config(config)
        segment_seconds = float(extra.get("segment_seconds", segment_seconds))
    else:
        if not (rtsp and device and key):
            usage_error("--rtsp URL, --device ID and --key KEYFILE are required (or --config FILE)")
        if transport not in ("udp", "tcp"):
            usage_error("--transport must be udp or tcp")
        cameras = [CameraConfig(device, rtsp, key, transport)]
    keys = {}
    for cam in cameras:
        try:
            keys[cam.device_id] = signing.load_private_key_file(cam.key_path)
        except signing.KeyFileError as exc:
            fail(f"device {cam.device_id}: {exc}")
    s = session(ctx)
    context = s.context()
    running: list[Camera] = []

    async def go() -> list[CameraState]:
        async with s.channel("ingest", context=context) as ing, s.channel("registry", context=context) as reg:
            stub = ingest_grpc.IngestServiceStub(ing)
            running.extend(
                Camera(c, keys[c.device_id], stub, target_s=segment_seconds, segments=segments)
                for c in cameras
            )
            alive = None
            if keepalive_interval > 0:

                def noted(message: str) -> None:
                    for cam in running:
                        cam.state.last_error = cam.state.last_error or message

                alive = asyncio.create_task(
                    keepalives(
                        registry_grpc.RegistryServiceStub(reg),
                        [c.device_id for c in cameras],
                        keepalive_interval,
                        noted,
                    )
                )
            tasks = [asyncio.create_task(cam.run()) for cam in running]
            try:
                with Live(
                    state_table([c.state for c in running]), console=err_console, refresh_per_second=2
                ) as live:
                    while not all(t.done() for t in tasks):
                        await asyncio.wait(tasks, timeout=0.5)
                        live.update(state_table([c.state for c in running]))
                return [t.result() for t in tasks]
            finally:
                for cam in running:
                    cam.stop()
                if alive is not None:
                    alive.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await alive

    try:
        states = run(go())
    except KeyboardInterrupt:
        states = [c.state for c in running]
    if json_output:
        print_json([vars(st) for st in states])
    else:
        console.print(state_table(states))
    if states and not any(st.uploaded for st in states):
        raise typer.Exit(1)
