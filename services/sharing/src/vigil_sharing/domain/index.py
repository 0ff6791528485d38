"""The in-memory index of active grants that decide() consults: per holder, keyed by each grant's scope."""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from vigil_sharing.domain.model import ACTION_SUBSCRIBE_EVENTS, Decision, DeviceFacts, Grant, RequestState

RULE_GRANT = "ACC-3"


def _minimal_prefixes(prefixes: Iterable[str]) -> tuple[str, ...]:
    """Drop every prefix that a shorter one already covers ("32" makes "3202" redundant), sorted."""
    kept: list[str] = []
    for p in sorted(set(prefixes)):  # sorted: a covering prefix sorts right before what it covers
        if not kept or not p.startswith(kept[-1]):
            kept.append(p)
    return tuple(kept)


@dataclass(slots=True, eq=False)
class Entry:
    """A grant compiled for matching: its scope as sets (None = dimension not constrained) and its times.

    ACC-3: the scope test is the same as Scope.covers (every given dimension must match), pre-computed once
    per grant so that a decision costs a few set look-ups.
    """

    grant: Grant
    grant_id: str
    holder_unit: str
    actions: frozenset[str]
    device_ids: frozenset[str] | None
    site_ids: frozenset[str] | None
    categories: frozenset[str] | None
    prefixes: tuple[str, ...] | None
    window_start: datetime | None
    window_end: datetime | None
    valid_from: datetime
    valid_until: datetime
    approved: bool
    agreement_ref: str
    approver_units: frozenset[str]
    # The allow decisions this grant gives, built once (decide() hands them out without allocating).
    allow_masked: Decision
    allow_unmasked: Decision

    @classmethod
    def compile(cls, grant: Grant) -> Entry:
        s = grant.scope
        window = grant.footage_window
        reason = f"grant {grant.grant_id} ({grant.purpose})"
        return cls(
            grant=grant,
            grant_id=grant.grant_id,
            holder_unit=grant.holder_unit,
            actions=frozenset(grant.actions),
            device_ids=s.device_ids or None,
            site_ids=s.site_ids or None,
            categories=s.place_categories or None,
            prefixes=_minimal_prefixes(s.division_prefixes) or None,
            window_start=window.start if window is not None else None,
            window_end=window.end if window is not None else None,
            valid_from=grant.valid_from,
            valid_until=grant.valid_until,
            approved=grant.state is RequestState.APPROVED,
            agreement_ref=grant.agreement_ref,
            approver_units=grant.approver_units,
            allow_masked=Decision(True, reason, RULE_GRANT, grant.grant_id, False),
            allow_unmasked=Decision(True, reason, RULE_GRANT, grant.grant_id, True),
        )

    def covers(self, device: DeviceFacts) -> bool:
        if self.device_ids is not None and device.device_id not in self.device_ids:
            return False
        if self.site_ids is not None and device.site_id not in self.site_ids:
            return False
        if self.categories is not None and device.place_category not in self.categories:
            return False
        return self.prefixes is None or device.division_code.startswith(self.prefixes)


@dataclass(slots=True)
class Bucket:
    """One holder's grants, each filed under its most selective scope dimension only.

    A grant scoped by device ids is filed under each id; else by site ids; else by place categories; else
    by its (minimal) division prefixes. Every non-empty scope has one of these, and a device matches at most
    one key of a grant's filing dimension, so a grant is a candidate at most once per look-up.
    """

    by_device: dict[str, list[Entry]] = field(default_factory=dict)
    by_site: dict[str, list[Entry]] = field(default_factory=dict)
    by_category: dict[str, list[Entry]] = field(default_factory=dict)
    by_prefix: dict[str, list[Entry]] = field(default_factory=dict)
    prefix_lengths: tuple[int, ...] = ()
    size: int = 0

    def _slots(self, entry: Entry) -> Iterator[tuple[dict[str, list[Entry]], str]]:
        if entry.device_ids is not None:
            yield from ((self.by_device, k) for k in entry.device_ids)
        elif entry.site_ids is not None:
            yield from ((self.by_site, k) for k in entry.site_ids)
        elif entry.categories is not None:
            yield from ((self.by_category, k) for k in entry.categories)
        elif entry.prefixes is not None:
            yield from ((self.by_prefix, k) for k in entry.prefixes)

    def add(self, entry: Entry) -> None:
        for table, key in self._slots(entry):
            table.setdefault(key, []).append(entry)
        self.size += 1
        self._reindex_prefix_lengths()

    def remove(self, entry: Entry) -> None:
        for table, key in self._slots(entry):
            entries = table.get(key)
            if entries is not None:
                entries[:] = [e for e in entries if e is not entry]
                if not entries:
                    del table[key]
        self.size -= 1
        self._reindex_prefix_lengths()

    def _reindex_prefix_lengths(self) -> None:
        self.prefix_lengths = tuple(sorted({len(p) for p in self.by_prefix}))

    def candidates(self, device: DeviceFacts) -> list[Entry]:
        found: list[Entry] = []
        hit = self.by_device.get(device.device_id)
        if hit:
            found += hit
        if self.by_site:
            hit = self.by_site.get(device.site_id)
            if hit:
                found += hit
        if self.by_category:
            hit = self.by_category.get(device.place_category)
            if hit:
                found += hit
        if self.prefix_lengths:
            code = device.division_code
            by_prefix = self.by_prefix
            for n in self.prefix_lengths:
                if n > len(code):
                    break
                hit = by_prefix.get(code[:n])
                if hit:
                    found += hit
        return found


_NO_CANDIDATES: list[Entry] = []


class GrantIndex:
    """Active (approved, not yet removed) grants, for decide().

    Grants are filed per holder (the requesting principal); grants that include SUBSCRIBE_EVENTS are also
    filed per holder unit, because a partner's event stream belongs to its unit. The service keeps it
    current as events arrive (add on approval, remove on revocation/withdrawal, expire on a timer) and
    rebuilds it from the database at start. Not thread-safe: one event loop owns it.
    """

    def __init__(self, grants: Iterable[Grant] = ()) -> None:
        self._entries: dict[str, Entry] = {}
        # Read directly by decide() (one look-up less on the hot path); changed only through add/remove.
        self.by_holder: dict[str, Bucket] = {}
        self.by_unit: dict[str, Bucket] = {}
        self._expiry: list[tuple[datetime, str]] = []
        self.rebuild(grants)

    # ------------------------------------------------------------------ maintenance

    def rebuild(self, grants: Iterable[Grant]) -> None:
        """Replace the whole index with `grants` (those not APPROVED are left out)."""
        self._entries.clear()
        self.by_holder.clear()
        self.by_unit.clear()
        self._expiry.clear()
        for grant in grants:
            self.add(grant)

    def add(self, grant: Grant) -> None:
        """File an approved grant (replacing one with the same id). A grant in any other state is removed."""
        self.remove(grant.grant_id)
        if grant.state is not RequestState.APPROVED or grant.scope.empty:
            return
        entry = Entry.compile(grant)
        self._entries[grant.grant_id] = entry
        self.by_holder.setdefault(grant.holder_id, Bucket()).add(entry)
        if ACTION_SUBSCRIBE_EVENTS in entry.actions:
            self.by_unit.setdefault(grant.holder_unit, Bucket()).add(entry)
        heapq.heappush(self._expiry, (grant.valid_until, grant.grant_id))

    def remove(self, grant_id: str) -> Grant | None:
        """Take a grant out (revocation, withdrawal, expiry); returns it, or None if it was not filed."""
        entry = self._entries.pop(grant_id, None)
        if entry is None:
            return None
        grant = entry.grant
        self._drop(self.by_holder, grant.holder_id, entry)
        if ACTION_SUBSCRIBE_EVENTS in entry.actions:
            self._drop(self.by_unit, grant.holder_unit, entry)
        return grant

    revoke = remove

    @staticmethod
    def _drop(table: dict[str, Bucket], key: str, entry: Entry) -> None:
        bucket = table.get(key)
        if bucket is not None:
            bucket.remove(entry)
            if bucket.size <= 0:
                del table[key]

    def expire(self, now: datetime) -> list[Grant]:
        """Remove every grant whose validity ended at or before `now`; returns them (oldest first)."""
        gone: list[Grant] = []
        heap = self._expiry
        while heap and heap[0][0] <= now:
            until, grant_id = heapq.heappop(heap)
            entry = self._entries.get(grant_id)
            # A stale heap item (the grant was replaced with another validity, or removed) is skipped.
            if entry is not None and entry.valid_until == until:
                self.remove(grant_id)
                gone.append(entry.grant)
        return gone

    def next_expiry(self) -> datetime | None:
        """When the earliest filed grant ends (for the service's expiry timer), or None."""
        heap = self._expiry
        while heap:
            until, grant_id = heap[0]
            entry = self._entries.get(grant_id)
            if entry is not None and entry.valid_until == until:
                return until
            heapq.heappop(heap)
        return None

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, grant_id: object) -> bool:
        return grant_id in self._entries

    def get(self, grant_id: str) -> Grant | None:
        entry = self._entries.get(grant_id)
        return entry.grant if entry is not None else None

    def grants(self) -> list[Grant]:
        return [e.grant for e in self._entries.values()]

    def held_by(self, principal_id: str) -> list[Grant]:
        return [e.grant for e in self._entries.values() if e.grant.holder_id == principal_id]

    def candidates(self, holder_id: str, device: DeviceFacts) -> list[Entry]:
        """Grants held by `holder_id` whose filing key matches `device` (the caller still checks covers())."""
        bucket = self.by_holder.get(holder_id)
        return bucket.candidates(device) if bucket is not None else _NO_CANDIDATES

    def unit_candidates(self, unit: str, device: DeviceFacts) -> list[Entry]:
        """SUBSCRIBE_EVENTS grants held by anyone of `unit` whose filing key matches `device`."""
        bucket = self.by_unit.get(unit)
        return bucket.candidates(device) if bucket is not None else _NO_CANDIDATES

    def covering(self, holder_id: str, device: DeviceFacts) -> list[Grant]:
        """Grants held by `holder_id` whose scope covers `device` (for listings and reasons, not the hot path)."""
        return [e.grant for e in self.candidates(holder_id, device) if e.covers(device)]
