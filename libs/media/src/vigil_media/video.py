"""Decode segments, change every frame, re-encode into one file; or join segments without re-encoding.

`transform` is the one re-encoding path (masked renditions, masked or de-identified exports): each
input is decoded with PyAV, every frame is handed as a packed yuv420p numpy array to the frame
operations in order (privacy masks, then face and plate blurring), and the result is encoded with
libx264 — preset `veryfast`, CRF 20 by default (`EncodeOptions`) — into MPEG-TS (a rendition that
stands in for one segment) or MP4 (a clip). Timestamps are the source's, rebased so the segments
follow each other without a gap: a rendition keeps its segment's own timestamps (`keep_timestamps`).
`join` copies the H.264 packets into one MP4 unchanged, for exports that need no change to a frame.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Protocol

import av
import numpy as np

Source = bytes | str | Path | BinaryIO
Sink = str | Path | BinaryIO


class FrameOp(Protocol):
    def __call__(self, yuv: np.ndarray, width: int, height: int) -> None: ...


@dataclass(frozen=True)
class EncodeOptions:
    """libx264 settings of every re-encode. `veryfast` keeps a 720p masked export well above real time."""

    preset: str = "veryfast"
    crf: int = 20
    threads: int = 0  # 0: libx264 and the decoder pick from the machine's cores
    gop_s: float = 2.0


@dataclass(frozen=True)
class Progress:
    segments_done: int
    segments_total: int
    frames: int


@dataclass(frozen=True)
class Result:
    frames: int
    width: int
    height: int
    duration_s: float


def _open(source: Source) -> av.container.InputContainer:
    if isinstance(source, bytes):
        return av.open(io.BytesIO(source), mode="r")
    if isinstance(source, (str, Path)):
        return av.open(str(source), mode="r")
    return av.open(source, mode="r")


def _open_out(sink: Sink, container: str) -> av.container.OutputContainer:
    target = str(sink) if isinstance(sink, (str, Path)) else sink
    return av.open(target, mode="w", format=container)


def transform(
    sources: Sequence[Source],
    sink: Sink,
    *,
    ops: Sequence[FrameOp],
    container: str = "mp4",
    options: EncodeOptions = EncodeOptions(),
    keep_timestamps: bool = False,
    progress: Callable[[Progress], None] | None = None,
) -> Result:
    """Decode every source in order, apply `ops` to every frame, encode all of it into `sink`."""
    if not sources:
        raise ValueError("nothing to encode: no source segments")
    out = _open_out(sink, container)
    stream = None
    frames = 0
    width = height = 0
    offset: int | None = None  # out pts = source pts - segment's first pts + offset
    origin = 0
    end_pts = 0
    time_base = Fraction(1, 90_000)
    try:
        for n, source in enumerate(sources):
            with _open(source) as inp:
                vin = inp.streams.video[0]
                vin.thread_type = "AUTO"
                rate = vin.average_rate or vin.guessed_rate or Fraction(25)
                tb = vin.time_base or time_base
                frame_ticks = max(1, round(1 / (rate * tb)))
                first: int | None = None
                last = 0
                for frame in inp.decode(vin):
                    if stream is None:
                        width, height = frame.width - frame.width % 2, frame.height - frame.height % 2
                        time_base = tb
                        stream = out.add_stream("libx264", rate=rate)
                        stream.width, stream.height = width, height
                        stream.pix_fmt = "yuv420p"
                        stream.time_base = time_base
                        stream.codec_context.time_base = time_base
                        stream.thread_count = options.threads
                        stream.options = {
                            "preset": options.preset,
                            "crf": str(options.crf),
                            "g": str(max(1, round(float(rate) * options.gop_s))),
                        }
                    pts = (
                        frame.pts
                        if frame.pts is not None
                        else (last + frame_ticks if first is not None else 0)
                    )
                    pts = round(pts * tb / time_base)
                    if first is None:
                        first = pts
                        if offset is None:
                            offset = origin = pts if keep_timestamps else 0
                        elif keep_timestamps:
                            offset = max(pts, end_pts)
                    last = pts
                    yuv = _yuv(frame, width, height)
                    for op in ops:
                        op(yuv, width, height)
                    out_frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
                    out_frame.pts = pts - first + (offset or 0)
                    out_frame.time_base = time_base
                    for packet in stream.encode(out_frame):
                        out.mux(packet)
                    frames += 1
                if first is not None:
                    end_pts = last - first + (offset or 0) + round(frame_ticks * tb / time_base)
                    offset = end_pts
            if progress is not None:
                progress(Progress(n + 1, len(sources), frames))
        if stream is None:
            raise ValueError("the source segments hold no video frame")
        for packet in stream.encode(None):
            out.mux(packet)
    finally:
        out.close()
    return Result(frames, width, height, float((end_pts - origin) * time_base))


def _yuv(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """The frame as a writable packed yuv420p array of even size."""
    if frame.format.name != "yuv420p" or frame.width != width or frame.height != height:
        frame = frame.reformat(width=width, height=height, format="yuv420p")
    return np.ascontiguousarray(frame.to_ndarray(format="yuv420p"))


def join(
    sources: Sequence[Source],
    sink: Sink,
    *,
    container: str = "mp4",
    progress: Callable[[Progress], None] | None = None,
) -> Result:
    """Copy the segments' video packets into one file, unchanged, timestamps rebased to follow on."""
    if not sources:
        raise ValueError("nothing to join: no source segments")
    out = _open_out(sink, container)
    stream = None
    frames = 0
    width = height = 0
    offset = 0
    time_base = Fraction(1, 90_000)
    try:
        for n, source in enumerate(sources):
            with _open(source) as inp:
                vin = inp.streams.video[0]
                rate = vin.average_rate or vin.guessed_rate or Fraction(25)
                tb = vin.time_base or time_base
                frame_ticks = max(1, round(1 / (rate * time_base)))
                if stream is None:
                    stream = out.add_stream_from_template(vin)
                    stream.time_base = time_base
                    width, height = vin.codec_context.width, vin.codec_context.height
                first: int | None = None
                last = 0
                for packet in inp.demux(vin):
                    if packet.dts is None and packet.pts is None:
                        continue  # the demuxer's flush packet
                    pts = round((packet.pts if packet.pts is not None else packet.dts) * tb / time_base)
                    dts = round((packet.dts if packet.dts is not None else packet.pts) * tb / time_base)
                    if first is None:
                        first = dts
                    last = max(last, pts)
                    packet.pts = pts - first + offset
                    packet.dts = dts - first + offset
                    packet.time_base = time_base
                    packet.stream = stream
                    out.mux(packet)
                    frames += 1
                if first is not None:
                    offset = last - first + offset + frame_ticks
            if progress is not None:
                progress(Progress(n + 1, len(sources), frames))
        if stream is None:
            raise ValueError("the source segments hold no video stream")
    finally:
        out.close()
    return Result(frames, width, height, float(offset * time_base))


def decode_yuv(source: Source) -> list[np.ndarray]:
    """Every frame of the first video stream as a packed yuv420p array (for checks and tests)."""
    with _open(source) as inp:
        return [f.to_ndarray(format="yuv420p") for f in inp.decode(video=0)]
