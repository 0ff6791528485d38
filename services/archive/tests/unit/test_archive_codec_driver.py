"""codec's driver-value fast path: SQLite's stored text and PostgreSQL's datetimes read as the same time."""

from __future__ import annotations

from datetime import UTC, datetime

from vigil_archive import codec

T = datetime(2026, 11, 28, 16, 5, 7, 123_456, tzinfo=UTC)


def test_sqlite_text_reads_as_the_timestamp_of_the_time_it_stores() -> None:
    expected = codec.ts(T)
    assert codec.driver_seconds("2026-11-28 16:05:07.123456") == (expected.seconds, expected.nanos)


def test_sqlite_text_without_a_fraction_reads_as_whole_seconds() -> None:
    assert codec.driver_seconds("2026-11-28 16:05:07") == (codec.ts(T.replace(microsecond=0)).seconds, 0)


def test_aware_and_naive_utc_datetimes_read_as_the_same_time() -> None:
    assert codec.driver_seconds(T) == codec.driver_seconds(T.replace(tzinfo=None))


def test_driver_datetime_gives_an_aware_utc_time_from_text_or_datetime() -> None:
    assert codec.driver_datetime("2026-11-28 16:05:07.123456") == T
    assert codec.driver_datetime(T.replace(tzinfo=None)).tzinfo == UTC
