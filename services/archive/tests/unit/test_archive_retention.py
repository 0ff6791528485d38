"""Retention rules: ARC-2 refusals, ARC-3 expiry selection and delete batches, holds, ARC-6 extension."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil_archive.domain.model import Hold, SegmentRef
from vigil_archive.domain.retention import (
    IMPORTANT_RETENTION,
    important_retain_until,
    may_delete,
    new_hold,
    plan_delete_batches,
    plan_extensions,
    release_hold,
    select_expired,
)
from vigil_kit.errors import FailedPrecondition, InvalidArgument

T0 = datetime(2026, 11, 28, 10, 30, tzinfo=UTC)
NOW = T0 + timedelta(days=31)
DEV_A = "32020501501320000001"
DEV_B = "32020501501320000002"
SHA = "cd" * 32


def seg(n: int = 0, *, device=DEV_A, retain_days: float = 30, bucket="vigil-segments", hold_ids=(), v="v1"):
    start = T0 + timedelta(seconds=2 * n)
    return SegmentRef(
        device_id=device,
        start=start,
        end=start + timedelta(seconds=2),
        bucket=bucket,
        key=f"segments/{device}/{n:08d}.ts",
        version_id=v,
        size=100,
        sha256=SHA,
        retain_until=start + timedelta(days=retain_days),
        hold_ids=frozenset(hold_ids),
    )


def hold(hold_id="h1", *, devices=(DEV_A,), start=T0, end=T0 + timedelta(minutes=1), **kw) -> Hold:
    return Hold(
        hold_id=hold_id,
        device_ids=frozenset(devices),
        start=start,
        end=end,
        case_reference="CASE-7",
        reason="assault",
        placed_by="officer-1",
        placed_at=T0 + timedelta(days=1),
        **kw,
    )


# --- ARC-2 -------------------------------------------------------------------------------------------


def test_an_expired_unheld_segment_may_be_deleted():
    decision = may_delete(seg(), [], NOW)
    assert decision and decision.allowed and decision.refusal is None
    decision.raise_if_refused()


def test_a_segment_may_be_deleted_at_the_instant_its_retention_ends():
    s = seg()
    assert may_delete(s, [], s.retain_until)


def test_deletion_before_expiry_is_refused_under_arc_2():
    s = seg()
    decision = may_delete(s, [], s.retain_until - timedelta(microseconds=1))
    assert not decision and decision.retained
    with pytest.raises(FailedPrecondition) as e:
        decision.raise_if_refused()
    assert e.value.rule == "ARC-2"
    assert "retained until 2026-12-28T10:30:00Z" in e.value.message


def test_deletion_of_held_footage_is_refused_under_arc_2_naming_the_hold():
    decision = may_delete(seg(), [hold("h9")], NOW)
    assert not decision.allowed and decision.held_by == ("h9",)
    assert decision.refusal is not None and decision.refusal.rule == "ARC-2"
    assert "under legal hold h9" in decision.refusal.message
    assert decision.refusal.metadata["hold_ids"] == "h9"


def test_a_released_hold_no_longer_blocks_deletion():
    released = hold(released_at=NOW - timedelta(hours=1))
    assert may_delete(seg(hold_ids={"h1"}), [released], NOW)


def test_a_hold_the_index_records_but_the_caller_did_not_pass_still_blocks_deletion():
    decision = may_delete(seg(hold_ids={"h-unknown"}), [], NOW)
    assert not decision and decision.held_by == ("h-unknown",)


def test_a_hold_on_another_device_or_time_does_not_block_deletion():
    other_device = hold(devices=(DEV_B,))
    later = hold("h2", start=T0 + timedelta(hours=1), end=T0 + timedelta(hours=2))
    assert may_delete(seg(), [other_device, later], NOW)


def test_a_refusal_for_both_reasons_names_both():
    decision = may_delete(seg(), [hold()], T0)
    assert decision.refusal is not None
    assert "retained until" in decision.refusal.message and "under legal hold h1" in decision.refusal.message
    assert len(decision.refusal.violations) == 2


# --- ARC-3 -------------------------------------------------------------------------------------------


def test_expiry_selects_expired_segments_and_keeps_held_and_unexpired_ones():
    expired, held_one, young = seg(0), seg(1), seg(2, retain_days=90)
    picked = select_expired([expired, held_one, young], [hold(start=held_one.start, end=held_one.end)], NOW)
    assert picked.expired == (expired,)
    assert picked.held == (held_one,)
    assert picked.not_due == (young,)


def test_expiry_keeps_a_segment_whose_index_row_records_an_unreleased_hold():
    picked = select_expired([seg(hold_ids={"h5"})], [], NOW)
    assert picked.expired == () and len(picked.held) == 1


def test_expiry_deletes_footage_after_its_hold_is_released():
    released = hold(released_at=NOW - timedelta(seconds=1))
    assert len(select_expired([seg(hold_ids={"h1"})], [released], NOW).expired) == 1


segment_specs = st.lists(
    st.tuples(
        st.integers(0, 200),  # n (start = T0 + 2n s)
        st.sampled_from([DEV_A, DEV_B]),
        st.integers(-5, 60),  # retention days
    ),
    max_size=30,
)
hold_specs = st.lists(
    st.tuples(
        st.sampled_from([(DEV_A,), (DEV_B,), (DEV_A, DEV_B)]),
        st.integers(0, 400),
        st.integers(1, 100),
        st.booleans(),  # released
    ),
    max_size=4,
)
nows = st.integers(-2, 70).map(lambda d: T0 + timedelta(days=d))


def _build(specs, hspecs):
    segs = [seg(n, device=d, retain_days=r, v=f"v{i}") for i, (n, d, r) in enumerate(specs)]
    holds = [
        hold(
            f"h{i}",
            devices=devs,
            start=T0 + timedelta(seconds=s),
            end=T0 + timedelta(seconds=s + length),
            released_at=T0 + timedelta(days=3) if rel else None,
        )
        for i, (devs, s, length, rel) in enumerate(hspecs)
    ]
    return segs, holds


@settings(max_examples=300, deadline=None)
@given(segment_specs, hold_specs, nows)
def test_expiry_never_selects_a_held_or_unexpired_segment(specs, hspecs, now):
    segs, holds = _build(specs, hspecs)
    picked = select_expired(segs, holds, now)
    for s in picked.expired:
        assert s.retain_until <= now
        assert not any(h.active_at(now) and h.covers(s) for h in holds)
        assert may_delete(s, holds, now)
    assert len(picked.expired) + len(picked.held) + len(picked.not_due) == len(segs)
    # Nothing deletable is left behind either.
    assert all(not may_delete(s, holds, now) for s in picked.held + picked.not_due)


# --- delete batches ----------------------------------------------------------------------------------


def test_deletions_go_in_batches_of_at_most_a_thousand_per_bucket():
    segs = [seg(i) for i in range(2500)] + [seg(i, bucket="vigil-evidence") for i in range(3)]
    batches = list(plan_delete_batches(iter(segs)))
    sizes = sorted((b.bucket, len(b.segments)) for b in batches)
    assert sizes == [
        ("vigil-evidence", 3),
        ("vigil-segments", 500),
        ("vigil-segments", 1000),
        ("vigil-segments", 1000),
    ]
    assert batches[0].objects[0] == (segs[0].key, "v1")


def test_a_repeated_object_version_is_deleted_once():
    s = seg()
    (batch,) = plan_delete_batches([s, s, seg(1)])
    assert len(batch.segments) == 2


@pytest.mark.parametrize("max_keys", [0, 1001])
def test_a_batch_size_outside_s3s_limit_is_refused(max_keys):
    with pytest.raises(ValueError):
        list(plan_delete_batches([seg()], max_keys=max_keys))


# --- holds -------------------------------------------------------------------------------------------


def _place(**kw):
    values = dict(
        hold_id="h1",
        device_ids=[DEV_A],
        start=T0,
        end=T0 + timedelta(hours=1),
        case_reference=" CASE-1 ",
        reason="burglary",
        placed_by="officer-1",
        now=NOW,
    )
    values.update(kw)
    return new_hold(**values)


def test_a_hold_is_placed_with_its_case_and_reason():
    h = _place(important=True)
    assert h.case_reference == "CASE-1" and h.placed_at == NOW and h.important and h.released_at is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"device_ids": []}, "device_ids"),
        ({"end": T0}, "range"),
        ({"start": datetime(2026, 11, 28)}, "range"),
        ({"case_reference": "  "}, "case_reference"),
        ({"reason": ""}, "reason"),
    ],
)
def test_a_hold_request_missing_a_fact_is_refused_naming_the_field(change, field):
    with pytest.raises(InvalidArgument) as e:
        _place(**change)
    assert e.value.field == field


def test_a_hold_request_lists_every_fault():
    with pytest.raises(InvalidArgument) as e:
        _place(device_ids=[], case_reference="", reason="")
    assert {f for f, _ in e.value.violations} == {"case_reference", "reason"}


def test_releasing_a_hold_records_who_and_when():
    h = release_hold(_place(), released_by="officer-2", now=NOW + timedelta(days=1))
    assert h.released_at == NOW + timedelta(days=1) and h.released_by == "officer-2"


def test_releasing_a_released_hold_is_refused():
    h = release_hold(_place(), released_by="officer-2", now=NOW)
    with pytest.raises(FailedPrecondition):
        release_hold(h, released_by="officer-3", now=NOW)


# --- ARC-6 -------------------------------------------------------------------------------------------


def test_important_material_is_kept_two_years_from_capture():
    s = seg()
    assert important_retain_until(s) == s.start + IMPORTANT_RETENTION


def test_the_extended_date_is_rounded_up_to_the_whole_second():
    s = seg()
    s = SegmentRef(**{**s.__dict__, "start": s.start + timedelta(microseconds=1)})
    assert important_retain_until(s) == T0 + IMPORTANT_RETENTION + timedelta(seconds=1)


def test_a_date_already_beyond_the_important_profile_is_kept():
    s = seg(retain_days=1000)
    assert important_retain_until(s) == s.retain_until


@settings(max_examples=200, deadline=None)
@given(st.integers(-1000, 5000), st.integers(1, 3000))
def test_extension_never_shortens_retention(retain_days, profile_days):
    s = seg(retain_days=retain_days)
    until = important_retain_until(s, timedelta(days=profile_days))
    assert until >= s.retain_until
    assert until >= s.start + timedelta(days=profile_days)


def test_extensions_are_planned_only_under_active_important_holds():
    covered, other = seg(0), seg(0, device=DEV_B)
    plain = hold("plain", devices=(DEV_B,))
    important = hold("imp", important=True)
    out = plan_extensions([covered, other], [plain, important], NOW)
    assert [(e.segment, e.retain_until) for e in out] == [(covered, covered.start + IMPORTANT_RETENTION)]
    released = hold("imp", important=True, released_at=NOW - timedelta(seconds=1))
    assert plan_extensions([covered], [released], NOW) == []
