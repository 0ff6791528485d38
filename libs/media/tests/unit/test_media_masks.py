"""Privacy masks on pixels (REG-5): flat inside every polygon after re-encoding, the source everywhere else."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from vigil_media import synthetic, video
from vigil_media.masks import MASK_LUMA, PrivacyMasker, chroma_mask, normalise, rasterise

W, H = 160, 96
MASKS = [
    [(0.05, 0.1), (0.45, 0.1), (0.45, 0.55), (0.05, 0.55)],
    [(0.6, 0.5), (0.95, 0.7), (0.7, 0.95)],
]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def segments() -> list[bytes]:
    return [synthetic.clip(W, H, 1.0, seed=i, start_pts=i * 90_000) for i in range(2)]


def test_a_polygon_covers_the_pixels_its_normalised_corners_name() -> None:
    covered = rasterise(normalise([[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)]]), 100, 40)
    assert covered[20, 50] and covered[10, 25] and not covered[5, 10] and not covered[20, 80]
    assert 0.2 < covered.mean() < 0.3


def test_a_chroma_sample_is_masked_when_any_luma_pixel_it_colours_is() -> None:
    luma = np.zeros((4, 4), dtype=bool)
    luma[1, 2] = True
    assert chroma_mask(luma).tolist() == [[False, True], [False, False]]


def test_a_mask_of_fewer_than_three_points_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 3 points"):
        normalise([[(0.1, 0.1), (0.2, 0.2)]])


def test_inside_each_mask_the_luma_is_uniform_and_outside_the_frame_matches_the_source(segments) -> None:
    masker = PrivacyMasker.of(MASKS)
    out = io.BytesIO()
    result = video.transform(segments, out, ops=[masker], container="mp4")
    source = [f for seg in segments for f in video.decode_yuv(seg)]
    masked = video.decode_yuv(out.getvalue())
    assert result.frames == len(source) == len(masked) == 50
    polygons = [rasterise(normalise([m]), W, H) for m in MASKS]
    outside = ~np.logical_or.reduce(polygons)
    for src, dst in zip(source, masked, strict=True):
        y_src, y_dst = src[:H], dst[:H]
        for inside in polygons:
            assert np.abs(y_dst[inside].astype(np.int16) - MASK_LUMA).mean() < 2
        # Honest: the unmasked picture differs strongly from flat grey inside the masks.
        assert np.abs(y_src[polygons[0]].astype(np.int16) - MASK_LUMA).mean() > 10
        assert _psnr(y_src[outside], y_dst[outside]) > 30


def test_a_rendition_keeps_its_segments_timestamps_and_frame_count(segments) -> None:
    out = io.BytesIO()
    result = video.transform(
        segments[1:], out, ops=[PrivacyMasker.of(MASKS)], container="mpegts", keep_timestamps=True
    )
    with av.open(io.BytesIO(out.getvalue())) as c:
        first = next(iter(c.decode(video=0)))
    assert result.frames == 25 and abs(result.duration_s - 1.0) < 0.05
    assert abs(float(first.pts * first.time_base) - 1.0) < 0.1  # the second segment starts at 1 s


def test_joining_copies_every_frame_of_every_segment_into_one_mp4_in_order(segments) -> None:
    out = io.BytesIO()
    result = video.join(segments, out)
    joined = video.decode_yuv(out.getvalue())
    source = [f for seg in segments for f in video.decode_yuv(seg)]
    assert result.frames == len(joined) == len(source) == 50
    assert abs(result.duration_s - 2.0) < 0.05
    assert all(np.array_equal(a, b) for a, b in zip(source, joined, strict=True))
