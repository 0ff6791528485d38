"""ARC-4 integrity: classifying a re-check of storage, and the scrubber's bounded, rotating sampling plan."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from vigil_archive.domain.integrity import (
    Observation,
    ScrubCursor,
    ScrubPolicy,
    ViolationKind,
    advance,
    classify,
    plan_tick,
    within_budget,
)
from vigil_archive.domain.model import SegmentRef

T0 = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
SHA = "0f" * 32
OTHER = "f0" * 32


def seg(n: int = 0, size: int = 100) -> SegmentRef:
    return SegmentRef(
        device_id="32020501501320000001",
        start=T0 + timedelta(seconds=2 * n),
        end=T0 + timedelta(seconds=2 * n + 2),
        bucket="vigil-segments",
        key=f"segments/k{n}.ts",
        version_id="v1",
        size=size,
        sha256=SHA,
        retain_until=T0 + timedelta(days=30),
    )


def kinds(seen: Observation) -> list[ViolationKind]:
    return [v.kind for v in classify(seg(), seen)]


def test_an_intact_segment_has_no_violations():
    seen = Observation(
        found=True, size=100, sha256=SHA, latest_version_id="v1", retain_until=seg().retain_until
    )
    assert classify(seg(), seen) == ()


def test_a_changed_byte_is_a_hash_mismatch():
    (v,) = classify(seg(), Observation(found=True, size=100, sha256=OTHER))
    assert v.kind is ViolationKind.HASH_MISMATCH and v.rule == "ARC-4"
    assert OTHER in v.message and "segments/k0.ts@v1" in v.message


def test_a_missing_version_is_reported_as_missing():
    assert kinds(Observation.missing()) == [ViolationKind.MISSING_OBJECT]


def test_a_newer_version_over_the_key_is_reported_even_when_the_original_is_intact():
    assert kinds(Observation(found=True, size=100, sha256=SHA, latest_version_id="v2")) == [
        ViolationKind.NEWER_VERSION
    ]


def test_a_missing_original_under_a_newer_version_reports_both():
    assert kinds(Observation.missing(latest_version_id="v2")) == [
        ViolationKind.MISSING_OBJECT,
        ViolationKind.NEWER_VERSION,
    ]


def test_a_size_mismatch_is_reported():
    assert kinds(Observation(found=True, size=99)) == [ViolationKind.SIZE_MISMATCH]


def test_a_stat_only_check_does_not_judge_the_hash():
    assert kinds(Observation(found=True, size=100)) == []


def test_a_storage_lock_shorter_than_the_index_is_an_arc_2_violation():
    (v,) = classify(seg(), Observation(found=True, retain_until=T0 + timedelta(days=1)))
    assert v.kind is ViolationKind.RETENTION_SHORTENED and v.rule == "ARC-2"


def test_an_observation_refuses_a_malformed_hash():
    with pytest.raises(ValueError):
        Observation(found=True, sha256="XYZ")


# --- the scrubber ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw", [{"per_tick": 0}, {"random_share": 1.5}, {"max_bytes": 0}], ids=["no work", "share", "bytes"]
)
def test_a_scrub_policy_refuses_impossible_bounds(kw):
    with pytest.raises(ValueError):
        ScrubPolicy(**kw)


def test_a_tick_is_bounded_and_its_random_ids_are_distinct_and_in_range():
    policy = ScrubPolicy(per_tick=50, random_share=0.2)
    tick = plan_tick(policy, ScrubCursor(after=500), (1, 10_000), random.Random(7))
    assert tick.after == 500 and tick.sequential == 40
    assert len(tick.random_ids) == 10 == len(set(tick.random_ids))
    assert all(1 <= i <= 10_000 for i in tick.random_ids)
    assert tick.sequential + len(tick.random_ids) <= policy.per_tick


def test_a_tick_over_a_small_index_samples_no_more_ids_than_exist():
    tick = plan_tick(ScrubPolicy(per_tick=50, random_share=1.0), ScrubCursor(), (3, 5), random.Random(1))
    assert tick.random_ids == (3, 4, 5)


def test_an_empty_index_plans_nothing():
    tick = plan_tick(ScrubPolicy(), ScrubCursor(after=9), None, random.Random(1))
    assert tick.sequential == 0 and tick.random_ids == ()


def test_the_cursor_walks_on_then_wraps_when_a_query_comes_back_short():
    policy = ScrubPolicy(per_tick=4, random_share=0.0)
    cursor = ScrubCursor()
    tick = plan_tick(policy, cursor, (1, 6), random.Random(1))
    cursor = advance(cursor, tick, [1, 2, 3, 4])
    assert cursor == ScrubCursor(after=4, passes=0)
    cursor = advance(cursor, plan_tick(policy, cursor, (1, 6), random.Random(1)), [5, 6])
    assert cursor == ScrubCursor(after=None, passes=1)


def test_the_rotating_walk_visits_every_row_each_pass():
    ids = [i for i in range(1, 200) if i % 7]  # with holes, as expiry leaves them
    policy = ScrubPolicy(per_tick=10, random_share=0.3)
    cursor, seen = ScrubCursor(), set()
    while cursor.passes == 0:
        tick = plan_tick(policy, cursor, (ids[0], ids[-1]), random.Random(cursor.after))
        after = -1 if tick.after is None else tick.after
        rows = [i for i in ids if i > after][: tick.sequential]
        seen.update(rows)
        cursor = advance(cursor, tick, rows)
    assert seen == set(ids)


def test_advance_refuses_ids_that_go_backwards():
    policy = ScrubPolicy(per_tick=2, random_share=0.0)
    cursor = ScrubCursor(after=10)
    with pytest.raises(ValueError):
        advance(cursor, plan_tick(policy, cursor, (1, 20), random.Random(1)), [3, 4])


def test_the_byte_budget_stops_a_tick_but_always_takes_one_segment():
    segs = [seg(i, size=40) for i in range(5)]
    assert len(list(within_budget(segs, 100))) == 2
    assert len(list(within_budget([seg(0, size=10**9)], 100))) == 1
