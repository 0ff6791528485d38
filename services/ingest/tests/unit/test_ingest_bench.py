"""The capacity benchmark's step verdict: a queue (the median grows) or a slow tail fails a step; a stall that
moves only the tail of a window does not."""

from __future__ import annotations

from vigil_ingest.bench import SEGMENT_S, step_verdict


def window(median: float, tail: float, n: int = 1_000) -> list[float]:
    """n latencies (s): most at `median`, the slowest 2% at `tail`."""
    slow = n // 50
    return [median] * (n - slow) + [tail] * slow


def test_a_steady_window_pair_is_carried() -> None:
    assert step_verdict(window(0.012, 0.020), window(0.013, 0.022), []) == []


def test_a_stall_that_moves_only_the_tail_is_carried() -> None:
    # p99 grew 4× (20 → 84 ms), the median did not: the machine stalled, the process did not fall behind.
    assert step_verdict(window(0.012, 0.020), window(0.012, 0.084), []) == []


def test_a_growing_median_is_a_queue() -> None:
    why = step_verdict(window(0.017, 0.040), window(0.087, 0.200), [])
    assert len(why) == 1 and why[0].startswith("median grew 5.12×")


def test_a_tail_over_a_quarter_of_the_segment_period_is_not_carried() -> None:
    why = step_verdict(window(0.020, 0.030), window(0.020, 0.26 * SEGMENT_S), [])
    assert why == ["p99 of the last 20 s over 25% of the segment duration"]


def test_failed_uploads_are_not_carried() -> None:
    why = step_verdict(window(0.01, 0.02), window(0.01, 0.02), ["RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"])
    assert why == ["2 uploads failed (RESOURCE_EXHAUSTED)"]


def test_an_empty_window_is_not_carried() -> None:
    assert step_verdict([], window(0.01, 0.02), []) == ["no upload stored in the first or the last window"]
