"""Reconciliation: the streaming merge of index and storage listings finds orphans and missing objects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vigil_archive.domain.model import ObjectVersion
from vigil_archive.domain.reconcile import DiscrepancyKind, MergeStats, diff_listings, reconcile

T0 = datetime(2026, 11, 28, tzinfo=UTC)


def listing(*pairs: tuple[str, str], modified: datetime | None = None) -> list[ObjectVersion]:
    return [ObjectVersion(key=k, version_id=v, last_modified=modified) for k, v in sorted(pairs)]


def test_identical_listings_reconcile_cleanly():
    items = listing(("a", "1"), ("a", "2"), ("b", "1"))
    r = reconcile(items, items)
    assert r.orphans == () and r.missing == () and r.matched == 3


def test_an_object_stored_but_not_indexed_is_an_orphan():
    r = reconcile(listing(("a", "1")), listing(("a", "1"), ("a", "2")))
    assert [(d.kind, d.key, d.version_id) for d in r.orphans] == [(DiscrepancyKind.ORPHAN, "a", "2")]
    assert r.missing == ()


def test_an_object_indexed_but_not_stored_is_missing():
    r = reconcile(listing(("a", "1"), ("c", "1")), listing(("a", "1")))
    assert [(d.key, d.version_id) for d in r.missing] == [("c", "1")]
    assert r.orphans == ()


def test_a_version_differing_under_the_same_key_is_both_orphan_and_missing():
    r = reconcile(listing(("a", "1")), listing(("a", "2")))
    assert len(r.orphans) == len(r.missing) == 1


def test_a_freshly_stored_object_is_pending_not_orphan():
    storage = listing(("a", "1"), modified=T0)
    r = reconcile([], storage, settled_before=T0 - timedelta(minutes=5))
    assert r.orphans == () and r.pending == 1
    assert len(reconcile([], storage, settled_before=T0 + timedelta(seconds=1)).orphans) == 1


@pytest.mark.parametrize("side", ["index", "storage"])
def test_an_unsorted_listing_is_refused(side):
    bad = [ObjectVersion("b", "1"), ObjectVersion("a", "1")]
    with pytest.raises(ValueError, match=side):
        reconcile(bad if side == "index" else [], bad if side == "storage" else [])


def test_the_merge_streams_from_iterators():
    stats = MergeStats()
    index = (ObjectVersion(f"k{i:06d}", "1") for i in range(0, 10_000, 2))
    storage = (ObjectVersion(f"k{i:06d}", "1") for i in range(0, 10_000, 3))
    found = diff_listings(index, storage, stats=stats)
    first = next(found)
    assert first.kind is DiscrepancyKind.MISSING and first.key == "k000002"
    rest = list(found)
    assert stats.matched == len(range(0, 10_000, 6))
    assert stats.orphans + stats.missing == len(rest) + 1


keys = st.sets(st.tuples(st.sampled_from("abcde"), st.sampled_from(["1", "2", "3"])), max_size=15)


@settings(max_examples=300, deadline=None)
@given(keys, keys)
def test_reconcile_finds_exactly_the_symmetric_difference(indexed, stored):
    r = reconcile(listing(*indexed), listing(*stored))
    assert {(d.key, d.version_id) for d in r.orphans} == stored - indexed
    assert {(d.key, d.version_id) for d in r.missing} == indexed - stored
    assert r.matched == len(indexed & stored)
