"""The masked-export figures for `make bench`: masking 720p footage against re-encoding it unmasked.

The same ten seconds of synthetic 1280×720, 25 fps H.264 (five 2 s MPEG-TS segments, made once up front) go
through vigil_media.video.transform twice per round, in alternating order over three rounds: once with
a device's privacy masks applied to every frame (what an export or a masked rendition does), once with
no frame operation at all (decode and re-encode only) — the baseline, same encoder settings, same run.
The figures are the best round of each: masked speed against the baseline (≥ 0.8×), and masked speed
in multiples of real time (≥ 2×).
"""

from __future__ import annotations

import asyncio
import io
import time

from vigil_kit.bench import BenchContext, Figure
from vigil_media.masks import PrivacyMasker
from vigil_media.synthetic import clip
from vigil_media.video import EncodeOptions, transform

SEGMENTS = 5
SEGMENT_S = 2.0
FPS = 25
SIZE = (1280, 720)
ROUNDS = 3
# Two masks as a hospital entrance camera might have them: a ward window and a neighbour's door.
MASKS = (
    ((0.05, 0.05), (0.30, 0.05), (0.30, 0.35), (0.05, 0.35)),
    ((0.70, 0.50), (0.95, 0.45), (0.95, 0.90), (0.72, 0.95)),
)


def _footage() -> list[bytes]:
    # vigil_media's synthetic footage: a textured, gently graded picture with a moving object, as
    # MPEG-TS segments whose timestamps follow each other.
    step = int(SEGMENT_S * 90_000)
    return [clip(*SIZE, SEGMENT_S, fps=FPS, seed=i, start_pts=i * step) for i in range(SEGMENTS)]


def _run(sources: list[bytes], masked: bool) -> tuple[float, int]:
    ops = [PrivacyMasker.of(MASKS)] if masked else []
    began = time.perf_counter()
    result = transform(sources, io.BytesIO(), ops=ops, container="mp4", options=EncodeOptions())
    return time.perf_counter() - began, result.frames


def measure() -> tuple[float, float, int]:
    """(best masked seconds, best unmasked seconds, frames)."""
    sources = _footage()
    masked: list[float] = []
    plain: list[float] = []
    frames = 0
    for r in range(ROUNDS):
        for kind in (True, False) if r % 2 == 0 else (False, True):
            seconds, frames = _run(sources, kind)
            (masked if kind else plain).append(seconds)
    return min(masked), min(plain), frames


async def figures(ctx: BenchContext) -> list[Figure]:
    masked_s, plain_s, frames = await asyncio.to_thread(measure)
    footage_s = SEGMENTS * SEGMENT_S
    options = EncodeOptions()
    notes = (
        f"{SEGMENTS} segments of {SEGMENT_S:g} s 1280×720 {FPS} fps H.264 ({frames} frames) decoded and "
        f"re-encoded by vigil_media.video.transform into one MP4, libx264 preset {options.preset}, CRF "
        f"{options.crf}, threads auto on this machine; best of {ROUNDS} alternating rounds each. Masked: "
        f"two privacy-mask polygons filled on every frame ({masked_s:.2f} s); baseline: the same decode and "
        f"re-encode with no frame operation ({plain_s:.2f} s)."
    )
    return [
        Figure.measured(
            "archive masked export of 720p footage vs unmasked re-encode",
            value=frames / masked_s,
            baseline=frames / plain_s,
            min_ratio=0.8,
            unit="frames/s",
            notes=notes,
        ),
        Figure.bounded(
            "archive masked export of 720p footage, speed in real time",
            value=footage_s / masked_s,
            at_least=2.0,
            unit="× real time",
            notes=notes,
        ),
    ]
