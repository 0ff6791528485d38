"""The streaming MPEG-TS and fragmented-MP4 checks, fed real PyAV segments and broken ones, chunk by chunk."""

from __future__ import annotations

import random
import struct
from datetime import UTC, datetime

import pytest

from vigil_ingest import video
from vigil_ingest.domain.container import Container, ContainerError, Mp4Checker, TsChecker, checker_for, sniff

START = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
DEVICE = "32020501501320000001"


@pytest.fixture(scope="module")
def ts_bytes() -> bytes:
    return video.encode_segment(DEVICE, START, seconds=0.4, container="mpegts")


@pytest.fixture(scope="module")
def mp4_bytes() -> bytes:
    return video.encode_segment(DEVICE, START, seconds=0.4, container="mp4")


def feed(checker, data: bytes, sizes: list[int]) -> None:
    """Feed `data` in chunks cycling through `sizes`, then finish."""
    pos, i = 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        checker.feed(data[pos : pos + n])
        pos, i = pos + n, i + 1
    checker.finish()


def box(kind: bytes, payload: bytes = b"", *, large: bool = False) -> bytes:
    if large:
        return struct.pack(">I4sQ", 1, kind, 16 + len(payload)) + payload
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


FTYP = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso6")
MOOV = box(b"moov", box(b"mvhd", bytes(100)))
FRAGMENT = box(b"moof", box(b"mfhd", bytes(8))) + box(b"mdat", bytes(50))


@pytest.mark.parametrize("sizes", [[1], [7, 187, 189], [1000], [188], [65536]], ids=str)
def test_ts_checker_accepts_a_real_segment_at_any_chunking(ts_bytes, sizes) -> None:
    feed(TsChecker(), ts_bytes, sizes)


def test_ts_checker_refuses_a_flipped_sync_byte_naming_its_offset(ts_bytes) -> None:
    broken = bytearray(ts_bytes)
    broken[5 * 188] = 0x48
    with pytest.raises(ContainerError) as caught:
        feed(TsChecker(), bytes(broken), [1000, 333])
    error = caught.value
    assert (error.offset, error.expected, error.found) == (940, "0x47", "0x48")
    assert "at byte 940" in error.message and "packet 5" in error.message


def test_ts_checker_finds_a_bad_sync_byte_that_straddles_a_chunk_boundary(ts_bytes) -> None:
    broken = bytearray(ts_bytes)
    broken[188 * 3] = 0x00
    checker = TsChecker()
    checker.feed(broken[: 188 * 3])
    with pytest.raises(ContainerError, match="at byte 564"):
        checker.feed(broken[188 * 3 : 188 * 3 + 1])


def test_ts_checker_refuses_a_truncated_last_packet(ts_bytes) -> None:
    with pytest.raises(ContainerError, match="truncated") as caught:
        feed(TsChecker(), ts_bytes[:-100], [4096])
    assert caught.value.offset == len(ts_bytes) - 188
    assert caught.value.found.startswith("88 bytes")


def test_ts_checker_refuses_random_bytes_at_offset_zero() -> None:
    data = bytes([0x00]) + random.Random(7).randbytes(4095)
    with pytest.raises(ContainerError) as caught:
        feed(TsChecker(), data, [4096])
    assert caught.value.offset == 0


def test_ts_checker_refuses_an_empty_upload() -> None:
    with pytest.raises(ContainerError, match="empty"):
        TsChecker().finish()


@pytest.mark.parametrize("sizes", [[1], [3, 5, 8], [1000], [65536]], ids=str)
def test_mp4_checker_accepts_a_real_fragmented_segment_at_any_chunking(mp4_bytes, sizes) -> None:
    feed(Mp4Checker(), mp4_bytes, sizes)


def test_mp4_checker_accepts_a_64_bit_largesize_box() -> None:
    data = FTYP + MOOV + box(b"moof", bytes(8), large=True) + box(b"mdat", bytes(40), large=True)
    feed(Mp4Checker(), data, [5])


def test_mp4_checker_refuses_a_truncated_box(mp4_bytes) -> None:
    with pytest.raises(ContainerError, match="truncated") as caught:
        feed(Mp4Checker(), mp4_bytes[:-10], [4096])
    assert caught.value.expected == "10 more bytes"


def test_mp4_checker_refuses_data_ending_inside_a_box_header() -> None:
    with pytest.raises(ContainerError, match="truncated") as caught:
        feed(Mp4Checker(), FTYP + MOOV + FRAGMENT + b"\x00\x00\x00", [7])
    assert caught.value.offset == len(FTYP + MOOV + FRAGMENT)


def test_mp4_checker_refuses_random_bytes() -> None:
    data = random.Random(11).randbytes(4096)
    with pytest.raises(ContainerError):
        feed(Mp4Checker(), data, [4096])


def test_mp4_checker_refuses_a_fragment_before_any_moov() -> None:
    with pytest.raises(ContainerError, match="before the init segment") as caught:
        feed(Mp4Checker(), FTYP + FRAGMENT, [64])
    assert caught.value.offset == len(FTYP)


def test_mp4_checker_refuses_a_real_segment_with_its_moov_removed(mp4_bytes) -> None:
    ftyp_size = struct.unpack(">I", mp4_bytes[:4])[0]
    moov_size = struct.unpack(">I", mp4_bytes[ftyp_size : ftyp_size + 4])[0]
    assert mp4_bytes[ftyp_size + 4 : ftyp_size + 8] == b"moov"
    without = mp4_bytes[:ftyp_size] + mp4_bytes[ftyp_size + moov_size :]
    with pytest.raises(ContainerError, match="moov"):
        feed(Mp4Checker(), without, [4096])


def test_mp4_checker_refuses_an_init_segment_without_fragments() -> None:
    with pytest.raises(ContainerError, match="no media fragments"):
        feed(Mp4Checker(), FTYP + MOOV, [64])


def test_mp4_checker_refuses_a_file_not_starting_with_ftyp() -> None:
    with pytest.raises(ContainerError, match="'ftyp'") as caught:
        feed(Mp4Checker(), MOOV + FTYP + FRAGMENT, [64])
    assert caught.value.found == "'moov'"


def test_mp4_checker_refuses_a_box_smaller_than_its_header() -> None:
    with pytest.raises(ContainerError, match="smaller than its own header"):
        feed(Mp4Checker(), FTYP + struct.pack(">I4s", 4, b"moov"), [64])


def test_mp4_checker_refuses_a_fragment_without_media_data() -> None:
    with pytest.raises(ContainerError, match="without media data"):
        feed(Mp4Checker(), FTYP + MOOV + box(b"moof") + FRAGMENT, [64])


def test_mp4_checker_refuses_a_second_moov() -> None:
    with pytest.raises(ContainerError, match="second 'moov'"):
        feed(Mp4Checker(), FTYP + MOOV + MOOV + FRAGMENT, [64])


def test_sniff_tells_the_containers_apart(ts_bytes, mp4_bytes) -> None:
    assert sniff(ts_bytes) is Container.MPEG_TS
    assert sniff(mp4_bytes[:8]) is Container.FMP4
    assert sniff(b"\x47") is Container.MPEG_TS
    assert sniff(b"\x47" + bytes(188)) is None
    # A GIF also starts with 0x47 ('G'): with a whole packet's worth of bytes, the second sync byte decides.
    assert sniff(b"GIF89a" + bytes(200)) is None
    assert sniff(b"") is None


def test_checker_for_picks_the_declared_containers_checker() -> None:
    assert isinstance(checker_for("mpegts"), TsChecker)
    assert isinstance(checker_for(Container.FMP4), Mp4Checker)
