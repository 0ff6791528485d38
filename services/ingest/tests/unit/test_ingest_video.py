"""PyAV segments: encode → probe → decode round trips, the burned-in id and time, and refusals of non-video."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import av
import numpy as np
import pytest

from vigil_ingest import video
from vigil_ingest.domain.container import Container

START = datetime(2026, 11, 28, 10, 30, 0, 40_000, tzinfo=UTC)
DEVICE_A = "32020501501320000001"
DEVICE_B = "32020501501320000042"


@pytest.fixture(scope="module")
def ts_a() -> bytes:
    return video.encode_segment(DEVICE_A, START, seconds=0.4, fps=25, container="mpegts")


@pytest.fixture(scope="module")
def mp4_b() -> bytes:
    return video.encode_segment(DEVICE_B, START, seconds=0.4, fps=25, container="mp4")


def test_an_encoded_ts_segment_probes_as_h264_of_the_requested_shape(ts_a) -> None:
    probed = video.probe(ts_a)
    assert (probed.container, probed.codec, probed.width, probed.height) == (
        Container.MPEG_TS,
        "h264",
        640,
        360,
    )
    assert probed.duration_s == pytest.approx(0.4, abs=0.001)


def test_an_encoded_mp4_segment_is_fragmented_and_self_contained(mp4_b) -> None:
    probed = video.probe(mp4_b)
    assert (probed.container, probed.codec, probed.duration_s) == (
        Container.FMP4,
        "h264",
        pytest.approx(0.4, abs=0.001),
    )
    assert mp4_b[4:8] == b"ftyp"
    assert b"moov" in mp4_b and b"moof" in mp4_b and b"mdat" in mp4_b


def test_a_segment_decodes_to_every_frame_starting_with_a_keyframe(ts_a) -> None:
    assert len(video.decode_frames(ts_a)) == 10
    with av.open(io.BytesIO(ts_a)) as source:
        packets = [p for p in source.demux(video=0) if p.size]
    assert packets[0].is_keyframe
    assert not any(p.is_keyframe for p in packets[1:])


def test_the_burned_in_device_id_and_frame_times_read_back_after_compression(ts_a) -> None:
    frames = video.decode_frames(ts_a)
    readings = [video.read_overlay(frame) for frame in frames]
    assert {device for device, _ in readings} == {DEVICE_A}
    expected = [video.format_overlay_time(START + timedelta(seconds=i / 25)) for i in range(len(frames))]
    assert [t for _, t in readings] == expected


def test_two_devices_burn_different_digits_into_the_same_region(ts_a, mp4_b) -> None:
    a, b = video.decode_frames(ts_a)[0], video.decode_frames(mp4_b)[0]
    scale = video.overlay_scale(360)
    region = (slice(2 * scale, 9 * scale), slice(2 * scale, 2 * scale + 20 * 6 * scale))
    assert np.abs(a[region].astype(int) - b[region].astype(int)).max() > 100
    assert video.read_overlay(b)[0] == DEVICE_B


def test_the_bitrate_setting_is_what_a_camera_of_that_rate_produces() -> None:
    data = video.encode_segment(DEVICE_A, START, seconds=1.0, bitrate=500_000, container="mp4")
    # CBR: about bitrate × seconds, plus the initial VBV buffer and container overhead.
    assert 500_000 / 8 * 0.8 < len(data) < 500_000 / 8 * 1.6


def test_a_larger_frame_size_reads_back_too() -> None:
    data = video.encode_segment(DEVICE_B, START, seconds=0.08, size=(1280, 720))
    assert video.probe(data)[3:] == (1280, 720)
    assert video.read_overlay(video.decode_frames(data)[0]) == (DEVICE_B, "2026-11-28T10:30:00.040Z")


def test_probe_refuses_bytes_that_are_not_video() -> None:
    with pytest.raises(video.VideoError):
        video.probe(b"plain text, not video\n" * 50)


def test_probe_refuses_ts_shaped_bytes_with_no_video_in_them() -> None:
    with pytest.raises(video.VideoError):
        video.probe((b"\x47\x1f\xff\x10" + bytes(184)) * 20)


def test_odd_frame_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        video.encode_segment(DEVICE_A, START, seconds=0.04, size=(641, 360))
