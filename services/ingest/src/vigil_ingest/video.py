"""PyAV helpers for real H.264 segments: encode one with the device id and time burned in, probe, decode, read back.

Used by the camera simulator, the RTSP gateway's tests and ingest's own tests. Frames are drawn
with numpy straight into the Y plane: a moving gradient and a moving block (so the encoder sees
motion), and a black box at the top left with the device id and the frame's UTC time in a built-in
5x7 bitmap font, large enough to survive compression and be read back by `read_overlay`.

Encoding runs libx264 with the `ultrafast` preset by default and constant bit rate (x264's
`nal-hrd=cbr`, which pads with filler data), so a "1 Mbit/s camera" produces 1 Mbit/s of bytes
whatever the picture; one GOP per segment, starting with a keyframe.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Literal, NamedTuple

import av
import numpy as np

from vigil_ingest.domain.container import Container, sniff

FMP4_MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"

# 5x7 glyphs, one string of five bits per row. Only what an id and an RFC 3339 time need.
_FONT_ROWS: dict[str, tuple[str, ...]] = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11111", "00010", "00100", "00010", "00001", "10001", "01110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
    "-": ("00000", "00000", "00000", "11111", "00000", "00000", "00000"),
    ":": ("00000", "01100", "01100", "00000", "01100", "01100", "00000"),
    ".": ("00000", "00000", "00000", "00000", "00000", "01100", "01100"),
    "T": ("11111", "00100", "00100", "00100", "00100", "00100", "00100"),
    "Z": ("11111", "00001", "00010", "00100", "01000", "10000", "11111"),
    " ": ("00000",) * 7,
}
FONT: dict[str, np.ndarray] = {
    ch: np.array([[bit == "1" for bit in row] for row in rows], dtype=bool) for ch, rows in _FONT_ROWS.items()
}
_GLYPH_W, _GLYPH_H = 5, 7
_ADVANCE_X, _ADVANCE_Y = 6, 9  # one blank column between glyphs, two blank rows between lines
_INK, _PAPER = 235, 16  # video-range white and black
ID_CHARS = 20
TIME_CHARS = len("2026-11-28T10:30:00.040Z")


class VideoError(ValueError):
    """The bytes are not a video PyAV can read, or not in a container Vigil stores."""


class ProbeResult(NamedTuple):
    container: Container
    codec: str
    duration_s: float
    width: int
    height: int


def overlay_scale(height: int) -> int:
    """Pixels per font pixel: 3 at 360 lines, 6 at 720, so the text is legible after compression."""
    return max(1, height // 120)


def format_overlay_time(t: datetime) -> str:
    t = t.astimezone(UTC)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"


@functools.lru_cache(maxsize=256)
def _tile(ch: str, scale: int) -> np.ndarray:
    """One character cell (glyph plus its spacing) as video-range pixels, read-only and cached."""
    cell = np.full((_ADVANCE_Y * scale, _ADVANCE_X * scale), _PAPER, dtype=np.uint8)
    glyph = np.kron(FONT[ch], np.ones((scale, scale), dtype=bool))
    cell[: glyph.shape[0], : glyph.shape[1]][glyph] = _INK
    cell.flags.writeable = False
    return cell


def render_text(lines: list[str], *, scale: int) -> np.ndarray:
    """`lines` in the 5x7 font, white on a black box with a one-font-pixel margin, as a Y-plane patch."""
    columns = max(len(line) for line in lines)
    rows = [np.hstack([_tile(ch, scale) for ch in line.ljust(columns)]) for line in lines]
    return np.pad(np.vstack(rows), ((scale, 0), (scale, scale)), constant_values=_PAPER)


def draw_text(
    y_plane: np.ndarray, lines: list[str], *, scale: int, origin: tuple[int, int] | None = None
) -> None:
    """Draw `lines` in the 5x7 font into a Y plane, on a black box; in place, clipped to the frame."""
    x0, y0 = origin if origin is not None else (scale * 2, scale * 2)
    patch = render_text(lines, scale=scale)
    top, left = y0 - scale, x0 - scale
    region = y_plane[top : top + patch.shape[0], left : left + patch.shape[1]]
    region[:] = patch[: region.shape[0], : region.shape[1]]


def read_text(
    y_plane: np.ndarray, *, chars: int, line: int, scale: int, origin: tuple[int, int] | None = None
) -> str:
    """Read `chars` glyphs of line `line` drawn by `draw_text`: each font pixel's block is ink if brighter
    than mid-grey; a glyph is the font character nearest in Hamming distance (compression blurs edges)."""
    x0, y0 = origin if origin is not None else (scale * 2, scale * 2)
    keys = list(FONT)
    stack = np.stack([FONT[k] for k in keys])
    out = []
    for col in range(chars):
        gy, gx = y0 + line * _ADVANCE_Y * scale, x0 + col * _ADVANCE_X * scale
        block = y_plane[gy : gy + _GLYPH_H * scale, gx : gx + _GLYPH_W * scale].astype(np.float32)
        means = block.reshape(_GLYPH_H, scale, _GLYPH_W, scale).mean(axis=(1, 3))
        bits = means > (_INK + _PAPER) / 2
        distances = (stack != bits).sum(axis=(1, 2))
        out.append(keys[int(distances.argmin())])
    return "".join(out)


def read_overlay(y_plane: np.ndarray) -> tuple[str, str]:
    """The (device id, time text) burned into a frame by `encode_segment`."""
    scale = overlay_scale(y_plane.shape[0])
    return (
        read_text(y_plane, chars=ID_CHARS, line=0, scale=scale),
        read_text(y_plane, chars=TIME_CHARS, line=1, scale=scale),
    )


def synthetic_frames(
    device_id: str, start: datetime, *, frames: int, fps: int, size: tuple[int, int]
) -> Iterator[np.ndarray]:
    """yuv420p frames as (h*3/2, w) arrays: moving scene, device id and the frame's time burned in."""
    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even dimensions, got {width}x{height}")
    yy, xx = np.mgrid[0:height, 0:width]
    # The device id seeds the scene's phase, so two cameras do not show identical pictures.
    phase = int(device_id[-6:]) if device_id[-6:].isdigit() else 0
    scene = ((xx + yy * 2 + phase) % 220 + 16).astype(np.uint8)
    chroma = np.full((height // 2, width), 128, dtype=np.uint8)
    chroma[: height // 4] = ((xx[: height // 4, :] // 4 + phase) % 64 + 96).astype(np.uint8)
    block = max(8, height // 8)
    scale = overlay_scale(height)
    for i in range(frames):
        frame = np.empty((height * 3 // 2, width), dtype=np.uint8)
        y = frame[:height]
        shift = (i * 4) % width  # the scene pans right: two slice copies, no temporary
        y[:, shift:] = scene[:, : width - shift]
        y[:, :shift] = scene[:, width - shift :]
        bx = (i * 8 + phase) % max(1, width - block)
        by = height - block - (i * 3) % max(1, height // 2)
        y[by : by + block, bx : bx + block] = 200
        t = start + timedelta(seconds=i / fps)
        draw_text(y, [device_id[:ID_CHARS], format_overlay_time(t)], scale=scale)
        frame[height:] = chroma
        yield frame


def encode_segment(
    device_id: str,
    start: datetime,
    seconds: float = 2.0,
    fps: int = 25,
    size: tuple[int, int] = (640, 360),
    bitrate: int = 1_000_000,
    container: Literal["mpegts", "mp4"] | Container = "mpegts",
    *,
    preset: str = "ultrafast",
    cbr: bool = True,
    threads: int = 1,
) -> bytes:
    """One segment of real H.264: MPEG-TS, or self-contained fragmented MP4 (ftyp + moov + moof/mdat).

    `seconds * fps` frames (at least one), a single GOP starting with a keyframe, the device id and
    each frame's UTC time (from `start`) burned in. One encoder thread by default: measured on two
    cores, x264's frame threads (`threads=0`, auto) cost the same CPU but add wall time under load
    and loosen CBR (a ~13% larger first segment); a simulator runs many encoders anyway.
    Cost on this machine (ultrafast, one thread, 2 s at 25 fps): ~0.12 CPU-s at 640x360 and
    ~0.36 CPU-s at 1280x720 — so live encoding serves a handful of cameras per core, not a hundred.
    """
    fmt = Container(container)
    frames = max(1, round(seconds * fps))
    buf = io.BytesIO()
    options = {"movflags": FMP4_MOVFLAGS} if fmt is Container.FMP4 else {}
    with av.open(buf, mode="w", format=fmt.value, options=options) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bitrate
        kbps = max(1, bitrate // 1000)
        # keyint = the whole segment: one keyframe, at the start (scenecut off so x264 adds none).
        params = [f"keyint={frames}", f"min-keyint={frames}", "scenecut=0"]
        if cbr:
            params += ["nal-hrd=cbr", f"vbv-maxrate={kbps}", f"vbv-bufsize={max(1, kbps // 2)}"]
        stream.codec_context.options = {"preset": preset, "x264-params": ":".join(params)}
        if threads:
            stream.codec_context.thread_count = threads
        for i, array in enumerate(synthetic_frames(device_id, start, frames=frames, fps=fps, size=size)):
            frame = av.VideoFrame.from_ndarray(array, format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buf.getvalue()


def _open(data: bytes) -> av.container.InputContainer:
    try:
        return av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError) as e:
        raise VideoError(f"not a readable video: {e}") from None


def probe(data: bytes) -> ProbeResult:
    """Container, codec, duration (from the video packets' timestamps), width and height of a segment."""
    container = sniff(data)
    if container is None:
        raise VideoError("neither MPEG-TS nor MP4: the first bytes match no container Vigil stores")
    with _open(data) as source:
        if not source.streams.video:
            raise VideoError("no video stream")
        stream = source.streams.video[0]
        codec = stream.codec_context.name
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate
        default = round(1 / (rate * stream.time_base)) if rate and stream.time_base else 0
        first: int | None = None
        last = 0
        try:
            for packet in source.demux(stream):
                if packet.pts is None:
                    continue
                first = packet.pts if first is None else min(first, packet.pts)
                last = max(last, packet.pts + (packet.duration or default))
        except av.error.FFmpegError as e:
            raise VideoError(f"unreadable video data: {e}") from None
        if first is None or stream.time_base is None:
            raise VideoError("the video stream has no timed packets")
        duration = float((last - first) * stream.time_base)
    return ProbeResult(container, codec, duration, width, height)


def decode_frames(data: bytes) -> list[np.ndarray]:
    """Every decoded frame's Y (luma) plane, as (height, width) uint8 arrays in video range."""
    with _open(data) as source:
        planes = []
        for frame in source.decode(video=0):
            # yuv420p to_ndarray stacks Y over U and V: (h*3/2, w); keep Y, untouched by any conversion.
            planes.append(frame.reformat(format="yuv420p").to_ndarray()[: frame.height].copy())
        return planes
