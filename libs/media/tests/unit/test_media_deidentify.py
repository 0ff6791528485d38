"""De-identification for publication (ACC-5): a face composited into footage is not detectable afterwards."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest

from vigil_media import synthetic, video
from vigil_media.deidentify import FACE_CASCADE, PLATE_CASCADE, Deidentifier, cascade

W, H = 320, 180


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    """Grace Hopper's portrait, the face picture matplotlib ships, in video-range grey."""
    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert grey is not None
    small = cv2.resize(grey, (96, 112), interpolation=cv2.INTER_AREA)
    return (16 + small.astype(np.float32) * 219 / 255).astype(np.uint8)


def _faces(frames: list[np.ndarray]) -> list[int]:
    detector = Deidentifier()
    return [len(detector.detect(f[:H])[0]) for f in frames]


def test_both_cascades_ship_with_opencv() -> None:
    assert not cascade(FACE_CASCADE).empty() and not cascade(PLATE_CASCADE).empty()


def test_a_face_composited_into_video_is_not_detectable_after_public_blurring(face) -> None:
    segment = synthetic.clip(W, H, 1.0, picture=face, at=(180, 40))
    # Honest: the face is found on every frame before.
    assert all(n >= 1 for n in _faces(video.decode_yuv(segment)))
    blur = Deidentifier()
    out = io.BytesIO()
    video.transform([segment], out, ops=[blur], container="mp4")
    after = video.decode_yuv(out.getvalue())
    assert len(after) == 25 and sum(_faces(after)) == 0
    assert blur.frames == 25 and blur.faces >= 25


def test_blurring_leaves_the_frame_away_from_faces_as_it_was(face) -> None:
    segment = synthetic.clip(W, H, 0.2, picture=face, at=(180, 40))
    out = io.BytesIO()
    video.transform([segment], out, ops=[Deidentifier()], container="mp4")
    before, after = video.decode_yuv(segment)[0][:H], video.decode_yuv(out.getvalue())[0][:H]
    far = (slice(0, H), slice(0, 120))
    assert np.abs(before[far].astype(int) - after[far].astype(int)).mean() < 3
