"""The capacity benchmark's verdicts. A step is carried by the issue's rule: every upload stored, the p99 of the
last 20 s at most 1.5× the first's and below the segment duration. The diagnosis beside it tells a queue (the
median grows) or a slow tail from a stall that moves only the tail of a window."""

from __future__ import annotations

from vigil_ingest.bench import SEGMENT_S, step_verdict


def window(median: float, tail: float, n: int = 1_000) -> list[float]:
    """n latencies (s): most at `median`, the slowest 2% at `tail`."""
    slow = n // 50
    return [median] * (n - slow) + [tail] * slow


def test_a_steady_window_pair_is_carried_with_no_sign_of_a_queue() -> None:
    verdict = step_verdict(window(0.012, 0.020), window(0.013, 0.022), [])
    assert verdict.why == []
    assert verdict.queue == []


def test_a_p99_that_grew_over_one_and_a_half_times_is_not_carried() -> None:
    assert step_verdict(window(0.012, 0.020), window(0.012, 0.031), []).why == [
        "p99 grew 1.55× from the first 20 s to the last"
    ]


def test_a_p99_at_the_segment_duration_is_not_carried_even_from_a_slow_start() -> None:
    why = step_verdict(window(0.5, 1.9), window(0.5, SEGMENT_S), []).why
    assert why == ["p99 of the last 20 s not below the segment duration"]


def test_a_stall_that_moves_only_the_tail_fails_the_rule_and_the_diagnosis_says_no_queue() -> None:
    # p99 grew 4× (20 → 84 ms), the median did not: the machine stalled, the process did not fall behind.
    verdict = step_verdict(window(0.012, 0.020), window(0.012, 0.084), [])
    assert verdict.why == ["p99 grew 4.20× from the first 20 s to the last"]
    assert verdict.queue == []


def test_a_growing_median_is_diagnosed_as_a_queue() -> None:
    verdict = step_verdict(window(0.017, 0.040), window(0.087, 0.200), [])
    assert verdict.why == ["p99 grew 5.00× from the first 20 s to the last"]
    why = verdict.queue
    assert len(why) == 1 and why[0].startswith("median grew 5.12×")


def test_a_tail_over_a_quarter_of_the_segment_period_is_diagnosed() -> None:
    why = step_verdict(window(0.020, 0.030), window(0.020, 0.26 * SEGMENT_S), []).queue
    assert why == ["p99 of the last 20 s over 25% of the segment duration"]


def test_failed_uploads_are_not_carried() -> None:
    failed = ["RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED"]
    verdict = step_verdict(window(0.01, 0.02), window(0.01, 0.02), failed)
    assert verdict.why == ["2 uploads failed (RESOURCE_EXHAUSTED)"]
    assert verdict.queue == verdict.why


def test_an_empty_window_is_not_carried() -> None:
    expected = ["no upload stored in the first or the last window"]
    assert step_verdict([], window(0.01, 0.02), []).why == expected
    assert step_verdict(window(0.01, 0.02), [], []).queue == expected
