"""The HLS playlists playback and live view return (RFC 8216)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vigil_archive.playback import PlaylistEntry, hls_playlist

T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
TWO = timedelta(seconds=2)


def entries(*starts: int) -> list[PlaylistEntry]:
    return [
        PlaylistEntry(f"http://s3/seg{s}", T0 + timedelta(seconds=s), T0 + timedelta(seconds=s) + TWO)
        for s in starts
    ]


def test_a_vod_playlist_lists_every_segment_with_its_duration_and_ends() -> None:
    text = hls_playlist(entries(0, 2, 4), live=False)
    lines = text.splitlines()
    assert lines[:5] == [
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:2",
        "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD",
    ]
    assert [line for line in lines if line.startswith("http")] == [
        "http://s3/seg0",
        "http://s3/seg2",
        "http://s3/seg4",
    ]
    assert lines.count("#EXTINF:2.000,") == 3
    assert lines[-1] == "#EXT-X-ENDLIST"
    assert "#EXT-X-DISCONTINUITY" not in lines


def test_a_recording_gap_is_a_discontinuity_so_players_do_not_join_across_it() -> None:
    lines = hls_playlist(entries(0, 2, 10), live=False).splitlines()
    gap = lines.index("#EXT-X-DISCONTINUITY")
    assert lines[gap + 1] == "#EXT-X-PROGRAM-DATE-TIME:2026-11-28T08:00:10.000Z"
    assert lines.count("#EXT-X-DISCONTINUITY") == 1


def test_a_live_playlist_has_no_end_and_starts_at_its_first_sequence() -> None:
    text = hls_playlist(entries(4, 6), live=True, media_sequence=17)
    assert "#EXT-X-MEDIA-SEQUENCE:17" in text
    assert "#EXT-X-ENDLIST" not in text and "#EXT-X-PLAYLIST-TYPE" not in text
