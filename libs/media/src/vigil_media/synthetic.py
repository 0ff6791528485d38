"""Synthetic footage for tests and benches: textured, moving H.264 in MPEG-TS or MP4, optionally with a picture composited in.

The texture (a smooth gradient with a moving block and fixed noise) gives the encoder real work
and the checks real detail to compare; a composited grey picture (a face, a plate) stands still so
detectors see it on every frame.
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np


def frames(
    width: int,
    height: int,
    count: int,
    *,
    picture: np.ndarray | None = None,
    at: tuple[int, int] = (0, 0),
    seed: int = 0,
) -> list[np.ndarray]:
    """`count` packed yuv420p frames."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(-12, 13, size=(height, width), dtype=np.int16)
    xs = np.arange(width, dtype=np.int16)[None, :]
    ys = np.arange(height, dtype=np.int16)[:, None]
    out = []
    for i in range(count):
        y = (48 + (xs * 96) // max(1, width) + (ys * 64) // max(1, height) + noise).clip(16, 235)
        y = y.astype(np.uint8)
        bx = (i * 4) % max(1, width - width // 8)
        y[height // 3 : height // 3 + height // 8, bx : bx + width // 8] = 200
        if picture is not None:
            px, py = at
            ph, pw = picture.shape
            y[py : py + ph, px : px + pw] = picture[: height - py, : width - px]
        u = np.full((height // 2, width // 2), 128, dtype=np.uint8)
        v = np.full((height // 2, width // 2), 128, dtype=np.uint8)
        u[:, : width // 4] = 110
        v[: height // 4, :] = 150
        out.append(np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(-1, width))
    return out


def encode(
    yuv_frames: list[np.ndarray],
    width: int,
    height: int,
    *,
    fps: int = 25,
    container: str = "mpegts",
    preset: str = "ultrafast",
    crf: int = 16,
    start_pts: int = 0,
) -> bytes:
    """Encode packed yuv420p frames as H.264 (one GOP) into `container` bytes."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, 90_000)
        stream.codec_context.time_base = Fraction(1, 90_000)
        stream.options = {"preset": preset, "crf": str(crf), "g": str(len(yuv_frames))}
        step = 90_000 // fps
        for i, arr in enumerate(yuv_frames):
            frame = av.VideoFrame.from_ndarray(arr, format="yuv420p")
            frame.pts = start_pts + i * step
            frame.time_base = Fraction(1, 90_000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def clip(
    width: int = 160,
    height: int = 96,
    seconds: float = 1.0,
    *,
    fps: int = 25,
    picture: np.ndarray | None = None,
    at: tuple[int, int] = (0, 0),
    seed: int = 0,
    start_pts: int = 0,
) -> bytes:
    """A segment of synthetic footage as MPEG-TS bytes."""
    count = max(1, round(seconds * fps))
    return encode(
        frames(width, height, count, picture=picture, at=at, seed=seed),
        width,
        height,
        fps=fps,
        start_pts=start_pts,
    )
