"""`vigil gateway`: the keyframe cutter, pulling RTSP over UDP from an rtsp-rs server, signing, reconnecting."""

from __future__ import annotations

import asyncio
import fractions
import io
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import av
import pytest
import rtsp

from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil_cli import gateway
from vigil_cli.gateway import Camera, CameraConfig, cut_file, pull, read_config
from vigil_cli.ingest_cmds import claims_of
from vigil_ingest.domain import signing
from vigil_ingest.domain.container import Container, checker_for
from vigil_ingest.video import decode_frames, probe, read_overlay, synthetic_frames
from vigil_kit.embedded import free_port

DEVICE = "32020501501320000001"
NS = 1_000_000_000
FPS = 25


def stream_bytes(seconds: int, *, gop: int = FPS, size: tuple[int, int] = (256, 144)) -> bytes:
    """A recorded camera stream: MPEG-TS, H.264 with a keyframe every `gop` frames."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as out:
        s = out.add_stream("libx264", rate=FPS)
        s.width, s.height = size
        s.pix_fmt = "yuv420p"
        s.codec_context.options = {
            "preset": "ultrafast",
            "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0",
        }
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for i, a in enumerate(synthetic_frames(DEVICE, start, frames=seconds * FPS, fps=FPS, size=size)):
            frame = av.VideoFrame.from_ndarray(a, format="yuv420p")
            frame.pts = i
            out.mux(s.encode(frame))
        out.mux(s.encode(None))
    return buf.getvalue()


def valid_ts(data: bytes) -> None:
    checker = checker_for(Container.MPEG_TS)
    checker.feed(data)
    checker.finish()


@dataclass
class FakeIngest:
    uploads: list[tuple[pb.SegmentHeader, bytes]] = field(default_factory=list)

    async def UploadSegment(self, requests, timeout=None) -> pb.UploadSegmentResponse:
        header, chunks = None, []
        async for message in requests:
            if message.WhichOneof("message") == "header":
                header = message.header
            else:
                chunks.append(message.chunk)
        self.uploads.append((header, b"".join(chunks)))
        return pb.UploadSegmentResponse()


@pytest.fixture
def rtsp_camera() -> Iterator[str]:
    """An rtsp-rs server (RTP over UDP only) fed live H.264 by PyAV at 25 fps, one keyframe a second."""
    port = free_port()
    server = rtsp.Server(f"127.0.0.1:{port}")
    server.start()
    stop = threading.Event()

    def feed() -> None:
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height = 256, 144
        enc.pix_fmt = "yuv420p"
        enc.time_base = fractions.Fraction(1, FPS)
        enc.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "x264-params": f"keyint={FPS}:min-keyint={FPS}:scenecut=0",
        }
        t0 = time.monotonic()
        frames = synthetic_frames(DEVICE, datetime.now(UTC), frames=FPS * 120, fps=FPS, size=(256, 144))
        for i, array in enumerate(frames):
            if stop.is_set():
                return
            frame = av.VideoFrame.from_ndarray(array, format="yuv420p")
            frame.pts = i
            for packet in enc.encode(frame):
                server.send_frame(bytes(packet), 90_000 // FPS)
            # Real time, as a camera: the next frame is due at t0 + (i + 1) / FPS.
            stop.wait(max(0.0, t0 + (i + 1) / FPS - time.monotonic()))

    feeder = threading.Thread(target=feed, name="rtsp-feeder", daemon=True)
    feeder.start()
    try:
        yield f"rtsp://127.0.0.1:{port}/stream"
    finally:
        stop.set()
        feeder.join(10)
        server.stop()


def test_the_cutter_splits_a_stream_at_keyframes_into_valid_standalone_ts_segments() -> None:
    segments = cut_file(stream_bytes(5), target_s=2.0)
    assert [s.duration_ns for s in segments] == [2 * NS, 2 * NS, 1 * NS]
    assert sum(s.packets for s in segments) == 5 * FPS
    times = []
    for s in segments:
        valid_ts(s.data)
        found = probe(s.data)
        assert (found.container, found.codec) == (Container.MPEG_TS, "h264")
        assert found.duration_s == pytest.approx(s.duration_ns / NS, abs=0.01)
        frames = decode_frames(s.data)  # decodes on its own: it starts with a keyframe and its SPS/PPS
        assert len(frames) == s.packets
        device_id, when = read_overlay(frames[0])
        assert device_id == DEVICE
        times.append(when)
    assert times == ["2026-01-01T00:00:00.000Z", "2026-01-01T00:00:02.000Z", "2026-01-01T00:00:04.000Z"]


def test_the_cutter_waits_for_a_keyframe_past_the_target_rather_than_cutting_mid_gop() -> None:
    segments = cut_file(stream_bytes(6, gop=2 * FPS), target_s=1.0)  # 2 s GOPs, 1 s target
    assert [s.duration_ns for s in segments] == [2 * NS] * 3


def test_the_cutter_does_not_re_encode() -> None:
    source = stream_bytes(2)
    with av.open(io.BytesIO(source)) as c:
        original = [bytes(p) for p in c.demux(video=0) if p.size]
    with av.open(io.BytesIO(cut_file(source, target_s=1.0)[0].data)) as c:
        remuxed = [bytes(p) for p in c.demux(video=0) if p.size]
    assert remuxed == original[: len(remuxed)]


async def test_the_gateway_pulls_rtsp_over_udp_and_uploads_signed_keyframe_cut_segments(rtsp_camera) -> None:
    key = signing.generate_device_key()
    stub = FakeIngest()
    camera = Camera(
        CameraConfig(DEVICE, rtsp_camera, Path("unused"), "udp"),
        key.private_key,
        stub,
        target_s=1.0,
        segments=2,
    )
    before = time.time_ns()
    state = await asyncio.wait_for(camera.run(), 60)
    assert state.uploaded == 2, state
    sequences = []
    for header, data in stub.uploads:
        signing.verify(key.public_key_b64, claims_of(header), header.signature)
        valid_ts(data)
        assert probe(data).codec == "h264"
        assert (header.container, header.codec, header.size) == (pb.CONTAINER_MPEG_TS, "h264", len(data))
        assert header.duration.seconds * NS + header.duration.nanos == NS  # keyframe to keyframe, 90 kHz
        start = header.start_time.seconds * NS + header.start_time.nanos
        assert before - 5 * NS < start < time.time_ns()
        assert read_overlay(decode_frames(data)[0])[0] == DEVICE
        sequences.append(header.sequence)
    assert sequences == sorted(set(sequences))


def test_pulling_a_camera_that_is_not_there_fails_so_the_gateway_can_reconnect() -> None:
    url = f"rtsp://127.0.0.1:{free_port()}/stream"
    with pytest.raises(Exception):  # noqa: B017 - whatever PyAV raises for a refused connection
        pull(url, target_s=1.0, on_segment=lambda s, t: None, stop=threading.Event())


async def test_a_lost_connection_is_retried_with_backoff_until_segments_flow(monkeypatch) -> None:
    monkeypatch.setattr(gateway, "backoff_s", lambda attempt: 0.01)
    recorded = cut_file(stream_bytes(3), target_s=1.0)
    attempts = []

    def flaky_pull(url, *, target_s, on_segment, stop, transport, on_connected) -> None:
        attempts.append(url)
        if len(attempts) < 3:
            raise ConnectionRefusedError("camera rebooting")
        for segment in recorded:
            on_segment(segment, time.time_ns())

    key = signing.generate_device_key()
    stub = FakeIngest()
    camera = Camera(
        CameraConfig(DEVICE, "rtsp://camera/stream", Path("k")),
        key.private_key,
        stub,
        segments=3,
        pull_fn=flaky_pull,
    )
    state = await asyncio.wait_for(camera.run(), 30)
    assert len(attempts) == 3
    assert state.reconnects >= 2
    assert state.uploaded == 3
    assert "camera rebooting" in state.last_error


def test_a_config_file_lists_many_cameras_with_keys_relative_to_it(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        'segment_seconds = 4\n[[cameras]]\ndevice = "32020501501320000001"\nrtsp = "rtsp://a/1"\nkey = "keys/a.pem"\n'
        '[[cameras]]\ndevice = "32020501501320000002"\nrtsp = "rtsp://b/1"\nkey = "/k/b.pem"\ntransport = "tcp"\n'
    )
    cameras, extra = read_config(config)
    assert cameras == [
        CameraConfig("32020501501320000001", "rtsp://a/1", tmp_path / "keys" / "a.pem", "udp"),
        CameraConfig("32020501501320000002", "rtsp://b/1", Path("/k/b.pem"), "tcp"),
    ]
    assert extra == {"segment_seconds": 4}


def test_the_stream_clock_maps_presentation_time_by_the_earliest_arrival() -> None:
    from vigil_cli.gateway import CutSegment, StreamClock

    now = [101 * NS]
    clock = StreamClock(fractions.Fraction(1, 90_000), now_ns=lambda: now[0])
    clock.observe(0)  # stream time 0 s, buffered while FFmpeg probed: handed over at 101.0 s
    now[0] = 101 * NS + NS // 50
    clock.observe(90_000 // 2)  # 0.5 s, still from the buffer, at 101.02 s
    now[0] = 101 * NS + 3 * NS // 10
    clock.observe(90_000)  # 1.0 s, live, at 101.3 s: the smallest offset, 100.3 s
    segment = CutSegment(b"", first_pts=0, duration_ns=NS, packets=25)
    assert clock.start_ns(segment) == 100 * NS + 3 * NS // 10


def test_the_stream_clock_starts_over_when_the_camera_resets_its_timestamps() -> None:
    from vigil_cli.gateway import CutSegment, StreamClock

    now = [1000 * NS]
    clock = StreamClock(fractions.Fraction(1, 90_000), now_ns=lambda: now[0])
    clock.observe(900_000_000)  # a camera clock far from where the next segment will be
    segment = CutSegment(b"", first_pts=90_000, duration_ns=2 * NS, packets=50)
    assert clock.start_ns(segment) == now[0] - 2 * NS
