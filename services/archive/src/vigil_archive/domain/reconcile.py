"""Reconciliation: a streaming merge of the index's listing with storage's, by (key, version id).

Both listings come sorted by key then version id, one bucket at a time; the merge holds one item of
each, so a bucket of millions of objects reconciles in constant memory. Out of the merge come
orphans (stored, not indexed: the service re-indexes them from their signed header metadata after
verifying it) and missing (indexed, not stored: reported). S3 lists a key's versions newest first,
not by version id; the service sorts each key's few versions before feeding them, and the merge
refuses out-of-order input rather than report false orphans and missing objects.

An object stored moments ago may not be indexed *yet* (ingest stores, then the archive consumes
its event): storage items modified at or after `settled_before` are not called orphans but
counted as pending, to be looked at again next run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Protocol

from .model import require_aware


class Listed(Protocol):
    """An item of either listing: a SegmentRef, an ObjectVersion, or any row with these two fields."""

    @property
    def key(self) -> str: ...

    @property
    def version_id(self) -> str: ...


class DiscrepancyKind(Enum):
    ORPHAN = "orphan"  # in storage, not in the index
    MISSING = "missing"  # in the index, not in storage


@dataclass(frozen=True)
class Discrepancy:
    kind: DiscrepancyKind
    key: str
    version_id: str
    item: Any  # the storage item (orphan) or the index item (missing)


@dataclass
class MergeStats:
    """Counts a merge keeps while it runs (read them after the iterator is exhausted)."""

    matched: int = 0
    orphans: int = 0
    missing: int = 0
    pending: int = 0


def _ordered(items: Iterable[Listed], name: str) -> Iterator[tuple[tuple[str, str], Listed]]:
    previous: tuple[str, str] | None = None
    for item in items:
        position = (item.key, item.version_id)
        if previous is not None and position <= previous:
            raise ValueError(
                f"the {name} listing must be sorted by (key, version id) without repeats: "
                f"{position} came after {previous}"
            )
        previous = position
        yield position, item


def diff_listings(
    index: Iterable[Listed],
    storage: Iterable[Listed],
    *,
    settled_before: datetime | None = None,
    stats: MergeStats | None = None,
) -> Iterator[Discrepancy]:
    """The symmetric difference of the two listings, in key order, as orphans and missing."""
    if settled_before is not None:
        require_aware(settled_before, "settled_before")
    stats = stats if stats is not None else MergeStats()
    idx = _ordered(index, "index")
    sto = _ordered(storage, "storage")
    a = next(idx, None)
    b = next(sto, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            stats.missing += 1
            yield Discrepancy(DiscrepancyKind.MISSING, a[0][0], a[0][1], a[1])
            a = next(idx, None)
        elif a is None or b[0] < a[0]:
            modified = getattr(b[1], "last_modified", None)
            if settled_before is not None and modified is not None and modified >= settled_before:
                stats.pending += 1
            else:
                stats.orphans += 1
                yield Discrepancy(DiscrepancyKind.ORPHAN, b[0][0], b[0][1], b[1])
            b = next(sto, None)
        else:
            stats.matched += 1
            a = next(idx, None)
            b = next(sto, None)


@dataclass(frozen=True)
class Reconciliation:
    orphans: tuple[Discrepancy, ...]
    missing: tuple[Discrepancy, ...]
    matched: int
    pending: int


def reconcile(
    index: Iterable[Listed],
    storage: Iterable[Listed],
    *,
    settled_before: datetime | None = None,
) -> Reconciliation:
    """`diff_listings` collected (for a bounded listing, and for tests); the service streams instead."""
    stats = MergeStats()
    orphans: list[Discrepancy] = []
    missing: list[Discrepancy] = []
    for d in diff_listings(index, storage, settled_before=settled_before, stats=stats):
        (orphans if d.kind is DiscrepancyKind.ORPHAN else missing).append(d)
    return Reconciliation(tuple(orphans), tuple(missing), stats.matched, stats.pending)
