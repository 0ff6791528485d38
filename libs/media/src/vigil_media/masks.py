"""Privacy masks (REG-5): polygons in normalised frame coordinates, filled with one flat colour on YUV frames.

Coordinates follow the registry's `vigil.registry.v1.Point`: (0, 0) is the frame's top-left corner
and (1, 1) its bottom-right, so one mask fits every resolution a device streams at. A polygon is
rasterised at the frame's size (pixel x = x * width) and every pixel it covers is set to a uniform
grey in the luma plane and neutral in both chroma planes; a chroma sample is blanked when any of the
luma pixels it colours is masked, so no colour of what lies under the mask bleeds out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

Point = tuple[float, float]
Polygon = Sequence[Point]

# Video-range mid grey and neutral chroma: a mask reads as a flat grey patch.
MASK_LUMA = 128
MASK_CHROMA = 128


def normalise(polygons: Iterable[Iterable[Point]]) -> tuple[tuple[Point, ...], ...]:
    """Polygons as tuples of (x, y) floats clamped to [0, 1]; a polygon of fewer than 3 points is refused."""
    out = []
    for poly in polygons:
        pts = tuple((min(max(float(x), 0.0), 1.0), min(max(float(y), 0.0), 1.0)) for x, y in poly)
        if len(pts) < 3:
            raise ValueError(f"a privacy mask needs at least 3 points, got {len(pts)}")
        out.append(pts)
    return tuple(out)


def rasterise(polygons: Sequence[Polygon], width: int, height: int) -> np.ndarray:
    """A (height, width) bool array: True where any polygon covers the pixel."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    # cv2 fills with sub-pixel precision given fixed-point coordinates (shift bits).
    shift = 8
    scale = 1 << shift
    for poly in polygons:
        pts = np.array([[x * width * scale, y * height * scale] for x, y in poly], dtype=np.int64)
        cv2.fillPoly(canvas, [pts.astype(np.int32)], 1, lineType=cv2.LINE_8, shift=shift)
    return canvas.astype(bool)


def chroma_mask(luma_mask: np.ndarray) -> np.ndarray:
    """The 4:2:0 chroma mask: a chroma sample is masked when any of its 2x2 luma pixels is."""
    h, w = luma_mask.shape
    padded = np.zeros((h + h % 2, w + w % 2), dtype=bool)
    padded[:h, :w] = luma_mask
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).any(axis=(1, 3))


def planes(yuv: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of the Y, U and V planes of a packed yuv420p array (PyAV's `to_ndarray(format="yuv420p")`)."""
    cw, ch = width // 2, height // 2
    y = yuv[:height]
    flat = yuv[height:].reshape(-1)
    u = flat[: cw * ch].reshape(ch, cw)
    v = flat[cw * ch : 2 * cw * ch].reshape(ch, cw)
    return y, u, v


@dataclass
class PrivacyMasker:
    """Fills the device's privacy masks on every frame; the rasterised masks are kept per frame size."""

    polygons: tuple[tuple[Point, ...], ...]
    _cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, polygons: Iterable[Iterable[Point]]) -> PrivacyMasker:
        return cls(normalise(polygons))

    def masks_for(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        cached = self._cache.get((width, height))
        if cached is None:
            luma = rasterise(self.polygons, width, height)
            cached = (luma, chroma_mask(luma)[: height // 2, : width // 2])
            self._cache[(width, height)] = cached
        return cached

    def __call__(self, yuv: np.ndarray, width: int, height: int) -> None:
        """Mask one packed yuv420p frame in place."""
        luma, chroma = self.masks_for(width, height)
        y, u, v = planes(yuv, width, height)
        y[luma] = MASK_LUMA
        u[chroma] = MASK_CHROMA
        v[chroma] = MASK_CHROMA
