"""De-identification for publication (ACC-5): find faces and licence plates on every frame and blur them.

Detection uses the Haar cascades shipped inside opencv-python-headless 4.x (`cv2.data.haarcascades`:
`haarcascade_frontalface_default.xml` and `haarcascade_russian_plate_number.xml`) — a model that
ships with the package, nothing is downloaded. It runs on the luma plane (the cascades work on grey
pictures), scaled down to at most `detect_width` pixels wide for speed, with a loose threshold
(`min_neighbors`): for publication a false blur costs little and a missed face costs much. Each hit
is widened by `margin` and blurred beyond recognition in all three planes: a coarse mosaic (blocks
of an eighth of the region, at least 4 px) smoothed by a Gaussian, so no detail finer than the
blocks survives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from vigil_media.masks import planes

FACE_CASCADE = "haarcascade_frontalface_default.xml"
PLATE_CASCADE = "haarcascade_russian_plate_number.xml"


def cascade(name: str) -> cv2.CascadeClassifier:
    """A cascade shipped with opencv-python-headless; refuses to run without it (5.x dropped them)."""
    path = cv2.data.haarcascades + name
    classifier = cv2.CascadeClassifier(path)
    if classifier.empty():
        raise RuntimeError(
            f"OpenCV's {name} cascade is missing at {path}: opencv-python-headless 4.x ships it"
        )
    return classifier


Box = tuple[int, int, int, int]  # x, y, w, h in full-frame luma pixels


def _widen(box: Box, margin: float, width: int, height: int) -> Box:
    x, y, w, h = box
    dx, dy = int(w * margin), int(h * margin)
    x0, y0 = max(0, x - dx), max(0, y - dy)
    x1, y1 = min(width, x + w + dx), min(height, y + h + dy)
    return x0, y0, x1 - x0, y1 - y0


def _obliterate(plane: np.ndarray, x: int, y: int, w: int, h: int) -> None:
    if w <= 0 or h <= 0:
        return
    region = plane[y : y + h, x : x + w]
    block = max(4, min(w, h) // 8)
    small = cv2.resize(region, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
    coarse = cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)
    k = block * 2 + 1
    region[:] = cv2.GaussianBlur(coarse, (k, k), 0)


@dataclass
class Deidentifier:
    """Blurs detected faces and licence plates in place on packed yuv420p frames; counts what it blurred."""

    detect_width: int = 640
    scale_factor: float = 1.1
    min_neighbors: int = 3
    margin: float = 0.25
    faces: int = 0
    plates: int = 0
    frames: int = 0
    _face: cv2.CascadeClassifier = field(default_factory=lambda: cascade(FACE_CASCADE), repr=False)
    _plate: cv2.CascadeClassifier = field(default_factory=lambda: cascade(PLATE_CASCADE), repr=False)

    def detect(self, luma: np.ndarray) -> tuple[list[Box], list[Box]]:
        """Faces and plates on a luma plane, as boxes in its own pixels."""
        height, width = luma.shape
        ratio = min(1.0, self.detect_width / width)
        small = luma if ratio == 1.0 else cv2.resize(luma, (int(width * ratio), int(height * ratio)))
        small = cv2.equalizeHist(small)
        found: list[list[Box]] = []
        for classifier in (self._face, self._plate):
            hits = classifier.detectMultiScale(
                small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(12, 12)
            )
            found.append([tuple(round(float(v) / ratio) for v in hit) for hit in hits])  # type: ignore[misc]
        return found[0], found[1]

    def __call__(self, yuv: np.ndarray, width: int, height: int) -> None:
        y, u, v = planes(yuv, width, height)
        faces, plates = self.detect(y)
        self.frames += 1
        self.faces += len(faces)
        self.plates += len(plates)
        for box in (*faces, *plates):
            x, top, w, h = _widen(box, self.margin, width, height)
            _obliterate(y, x, top, w, h)
            cx, cy = x // 2, top // 2
            cw, chh = (x + w + 1) // 2 - cx, (top + h + 1) // 2 - cy
            _obliterate(u, cx, cy, cw, chh)
            _obliterate(v, cx, cy, cw, chh)
