"""AUD-3's rules, pure: which audit records, registry gaps and coverage facts are compliance findings.

No gRPC, protobuf, SQL or clock here: the service feeds records (parsed canonical leaves, see
:func:`record_from_leaf_json`) and plain facts in, and reads findings out. Times are microseconds since
the epoch (the audit log's query columns' unit).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# Kinds (the proto's FindingKind names without the prefix) and the rule each cites.
FORBIDDEN_PLACE = "FORBIDDEN_PLACE"  # REG-1 (seed Art. 9; 799 Art. 8)
UNAUTHORIZED_BUILDER = "UNAUTHORIZED_BUILDER"  # REG-3 (seed Art. 8; 799 Art. 7)
MISSING_PRIVACY_MEASURES = "MISSING_PRIVACY_MEASURES"  # REG-5 (seed Art. 9 ¶2)
MISSING_NOTICE_SIGN = "MISSING_NOTICE_SIGN"  # REG-6 (799 Art. 13)
MANDATORY_COVERAGE_GAP = "MANDATORY_COVERAGE_GAP"  # REG-2 (seed Art. 7)
OVERDUE_FILING = "OVERDUE_FILING"  # REG-7 (799 Art. 14)
EARLY_DELETION_ATTEMPT = "EARLY_DELETION_ATTEMPT"  # ARC-2
RECORDING_GAP = "RECORDING_GAP"  # ARC-5
FOOTAGE_PAST_EXPIRY = "FOOTAGE_PAST_EXPIRY"  # ARC-3
INTEGRITY_VIOLATION = "INTEGRITY_VIOLATION"  # ARC-4
DEVICE_OFFLINE = "DEVICE_OFFLINE"  # REG-11
OUTAGE_OVER_LIMIT = "OUTAGE_OVER_LIMIT"  # REG-11 (one city's rule)
ACCESS_OUTSIDE_GRANT = "ACCESS_OUTSIDE_GRANT"  # ACC-3
REFUSED_OUTSIDE_GRANT = "REFUSED_OUTSIDE_GRANT"  # ACC-3
BULK_EXPORT = "BULK_EXPORT"  # ACC-1
NIGHT_ACCESS = "NIGHT_ACCESS"  # ACC-1
MANY_DEVICES = "MANY_DEVICES"  # ACC-2

RULES = {
    FORBIDDEN_PLACE: "REG-1",
    UNAUTHORIZED_BUILDER: "REG-3",
    MISSING_PRIVACY_MEASURES: "REG-5",
    MISSING_NOTICE_SIGN: "REG-6",
    MANDATORY_COVERAGE_GAP: "REG-2",
    OVERDUE_FILING: "REG-7",
    EARLY_DELETION_ATTEMPT: "ARC-2",
    RECORDING_GAP: "ARC-5",
    FOOTAGE_PAST_EXPIRY: "ARC-3",
    INTEGRITY_VIOLATION: "ARC-4",
    DEVICE_OFFLINE: "REG-11",
    OUTAGE_OVER_LIMIT: "REG-11",
    ACCESS_OUTSIDE_GRANT: "ACC-3",
    REFUSED_OUTSIDE_GRANT: "ACC-3",
    BULK_EXPORT: "ACC-1",
    NIGHT_ACCESS: "ACC-1",
    MANY_DEVICES: "ACC-2",
}
INFO, WARNING, CRITICAL = "INFO", "WARNING", "CRITICAL"
SEVERITY = {
    FORBIDDEN_PLACE: CRITICAL,
    UNAUTHORIZED_BUILDER: CRITICAL,
    MISSING_PRIVACY_MEASURES: WARNING,
    MISSING_NOTICE_SIGN: WARNING,
    MANDATORY_COVERAGE_GAP: WARNING,
    OVERDUE_FILING: WARNING,
    EARLY_DELETION_ATTEMPT: CRITICAL,
    RECORDING_GAP: WARNING,
    FOOTAGE_PAST_EXPIRY: CRITICAL,
    INTEGRITY_VIOLATION: CRITICAL,
    DEVICE_OFFLINE: INFO,
    OUTAGE_OVER_LIMIT: CRITICAL,
    ACCESS_OUTSIDE_GRANT: CRITICAL,
    REFUSED_OUTSIDE_GRANT: WARNING,
    BULK_EXPORT: WARNING,
    NIGHT_ACCESS: WARNING,
    MANY_DEVICES: WARNING,
}

# The log's actions the rules read.
REGISTER_ACTIONS = frozenset({"registry.device.register", "registry.device.update", "registry.device.import"})
DELETE_ACTION = "archive.segment.delete"
VIOLATION_ACTION = "archive.integrity.violation"
EXPORT_ACTION = "archive.clip.export"
# Footage actually handed out by the archive (the access itself, ACC-1); sharing's decisions are not
# counted again as accesses.
ACCESS_ACTIONS = frozenset({"archive.playback.manifest", "archive.live.manifest", EXPORT_ACTION})
# Sharing's Authorize decisions (ACC-3 evidence of a grant being relied on or refused).
DECISION_ACTIONS = frozenset({"video.playback", "video.export", "video.live_view"})
GRANT_APPROVE_ACTION = "sharing.request.approve"
GRANT_END_ACTIONS = frozenset({"sharing.grant.revoke", "sharing.grant.expire"})
GRANT_ACTIONS = frozenset({GRANT_APPROVE_ACTION, *GRANT_END_ACTIONS})
SCANNED_ACTIONS = frozenset(
    {*REGISTER_ACTIONS, DELETE_ACTION, VIOLATION_ACTION, *ACCESS_ACTIONS, *DECISION_ACTIONS}
)
DENIED, ALLOWED = "DECISION_DENIED", "DECISION_ALLOWED"
# Which of each scanned action's records LogRules.add can act on; it only counts the others, so the scan
# need not read them (a unit test holds add() to this): every record of an access or an integrity
# violation, only the refusals of registrations and deletions (REG-1/3, ARC-2), only the sharing
# decisions naming a grant (ACC-3).
EVERY, REFUSED, NAMING_GRANT = "every", "refused", "naming_grant"
SCAN_FILTER = {
    **dict.fromkeys(REGISTER_ACTIONS, REFUSED),
    DELETE_ACTION: REFUSED,
    VIOLATION_ACTION: EVERY,
    **dict.fromkeys(ACCESS_ACTIONS, EVERY),
    **dict.fromkeys(DECISION_ACTIONS, NAMING_GRANT),
}

_US_PER_HOUR = 3600 * 1_000_000
_US_PER_DAY = 24 * _US_PER_HOUR


@dataclass(frozen=True)
class Thresholds:
    night_start_hour: int = 22
    night_end_hour: int = 6
    utc_offset_s: int = 8 * 3600
    bulk_export_segments: int = 900
    bulk_export_footage_us: int = 1800 * 1_000_000
    many_devices: int = 50
    outage_limit_us: int = 3 * _US_PER_DAY
    expiry_grace_us: int = _US_PER_DAY
    max_evidence: int = 20
    access_buckets: int = 24


class Rec(NamedTuple):
    """The fields of one audit record the rules read."""

    record_id: str
    time_us: int
    action: str
    decision: str
    rule_id: str
    actor_id: str
    actor_unit: str
    device_ids: tuple[str, ...]
    unit_ids: tuple[str, ...]
    grant_id: str
    request_id: str
    footage_start_us: int | None
    footage_end_us: int | None
    attributes: Mapping[str, str]


def parse_time_us(text: str) -> int:
    """A canonical leaf time ("2025-03-01T08:30:00.123456789Z") in microseconds since the epoch."""
    # Fixed layout, so slicing beats datetime parsing (~1 M records per report).
    days = _days_from_civil(int(text[0:4]), int(text[5:7]), int(text[8:10]))
    seconds = days * 86400 + int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
    return seconds * 1_000_000 + int(text[20:26])


def _days_from_civil(y: int, m: int, d: int) -> int:
    # Howard Hinnant's days_from_civil: days since 1970-01-01 of a proleptic Gregorian date.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def record_from_fields(r: Mapping[str, Any]) -> Rec:
    """A Rec from a record's canonical leaf fields (the parsed JSON of its leaf)."""
    actor = r.get("actor") or {}
    res = r.get("resources") or {}
    footage = r.get("footage")
    start = end = None
    if footage is not None:
        start = parse_time_us(footage["start_time"]) if "start_time" in footage else None
        end = parse_time_us(footage["end_time"]) if "end_time" in footage else None
    t = r.get("time")
    return Rec(
        r.get("record_id", ""),
        parse_time_us(t) if t else 0,
        r.get("action", ""),
        r.get("decision", ""),
        r.get("rule_id", ""),
        actor.get("id", ""),
        actor.get("unit", ""),
        tuple(res.get("device_ids", ())),
        tuple(res.get("unit_ids", ())),
        r.get("grant_id", ""),
        r.get("request_id", ""),
        start,
        end,
        r.get("attributes") or {},
    )


def record_from_leaf_json(leaf: bytes) -> Rec:
    return record_from_fields(json.loads(leaf))


@dataclass
class Finding:
    kind: str
    subject_kind: str
    subject_ids: tuple[str, ...]
    summary: str
    evidence: list[str] = field(default_factory=list)
    count: int = 0
    first_us: int | None = None
    last_us: int | None = None

    @property
    def rule(self) -> str:
        return RULES[self.kind]

    @property
    def severity(self) -> str:
        return SEVERITY[self.kind]


class _Acc:
    """One finding being accumulated from records: the count, the time span and the first evidence."""

    __slots__ = ("count", "evidence", "first", "last")

    def __init__(self) -> None:
        self.count = 0
        self.evidence: list[str] = []
        self.first: int | None = None
        self.last: int | None = None

    def add(self, rec: Rec, max_evidence: int) -> None:
        self.count += 1
        if len(self.evidence) < max_evidence:
            self.evidence.append(rec.record_id)
        t = rec.time_us
        if self.first is None or t < self.first:
            self.first = t
        if self.last is None or t > self.last:
            self.last = t


@dataclass(frozen=True)
class Grant:
    """ACC-3: what the log says of a grant: its footage window and when it stopped being valid."""

    grant_id: str
    approve_record_id: str
    approved_us: int
    window_start_us: int | None
    window_end_us: int | None
    ended_us: int | None = None
    end_record_id: str = ""


def grants_from_records(records: Iterable[Rec]) -> dict[str, Grant]:
    """Grants from sharing's approval, revocation and expiry records (in any order)."""
    approved: dict[str, Rec] = {}
    ended: dict[str, Rec] = {}
    for rec in records:
        if rec.action == GRANT_APPROVE_ACTION and rec.grant_id:
            approved[rec.grant_id] = rec
        elif rec.action in GRANT_END_ACTIONS:
            # Once no longer approved, sharing's record names the grant by its request id only.
            gid = rec.grant_id or rec.request_id
            if gid and (gid not in ended or rec.time_us < ended[gid].time_us):
                ended[gid] = rec
    out = {}
    for gid, rec in approved.items():
        end = ended.get(gid)
        out[gid] = Grant(
            gid,
            rec.record_id,
            rec.time_us,
            rec.footage_start_us,
            rec.footage_end_us,
            end.time_us if end is not None else None,
            end.record_id if end is not None else "",
        )
    return out


def outside_grant(rec: Rec, grant: Grant | None) -> str | None:
    """ACC-3: why an access under `grant` lies outside it (None: inside). An unknown grant is outside."""
    if grant is None:
        return "relies on a grant the log holds no approval of"
    if rec.time_us < grant.approved_us:
        return "before the grant was approved"
    if grant.ended_us is not None and rec.time_us >= grant.ended_us:
        return "after the grant ended"
    if rec.footage_start_us is not None and rec.footage_end_us is not None:
        if grant.window_start_us is None or grant.window_end_us is None:
            return "footage under a grant without a footage window"
        if rec.footage_start_us < grant.window_start_us or rec.footage_end_us > grant.window_end_us:
            return "footage outside the grant's footage window"
    return None


def is_night(time_us: int, t: Thresholds) -> bool:
    """Whether the local hour of `time_us` lies in [night_start_hour, night_end_hour) (wrapping midnight)."""
    hour = ((time_us // 1_000_000 + t.utc_offset_s) // 3600) % 24
    start, end = t.night_start_hour, t.night_end_hour
    return start <= hour < end if start < end else hour >= start or hour < end


def is_bulk_export(rec: Rec, t: Thresholds) -> bool:
    try:
        segments = int(rec.attributes.get("segments", "0"))
    except ValueError:
        segments = 0
    span = (
        rec.footage_end_us - rec.footage_start_us
        if rec.footage_start_us is not None and rec.footage_end_us is not None
        else 0
    )
    return segments >= t.bulk_export_segments or span >= t.bulk_export_footage_us


class LogRules:
    """Findings from the audit records of the report's range, fed one at a time (a million of them)."""

    def __init__(
        self, thresholds: Thresholds, grants: Mapping[str, Grant], start_us: int, end_us: int
    ) -> None:
        self.t = thresholds
        self.grants = grants
        self.start_us, self.end_us = start_us, end_us
        self.scanned = 0
        self._by: dict[tuple[str, str], _Acc] = {}
        self._devices_seen: dict[str, set[str]] = defaultdict(set)
        self._devices_evidence: dict[str, list[str]] = defaultdict(list)
        self._access: dict[str, list[int]] = {}
        width = max(1, (end_us - start_us) // thresholds.access_buckets)
        self.bucket_us = width
        self._why: dict[str, set[str]] = defaultdict(set)

    def _acc(self, kind: str, subject: str) -> _Acc:
        key = (kind, subject)
        acc = self._by.get(key)
        if acc is None:
            acc = self._by[key] = _Acc()
        return acc

    def add(self, rec: Rec) -> None:
        self.scanned += 1
        action, decision, m = rec.action, rec.decision, self.t.max_evidence
        if decision == DENIED:
            if action in REGISTER_ACTIONS:
                if rec.rule_id == "REG-1":
                    for d in rec.device_ids or ("",):
                        self._acc(FORBIDDEN_PLACE, d).add(rec, m)
                elif rec.rule_id == "REG-3":
                    unit = rec.unit_ids[0] if rec.unit_ids else rec.actor_unit
                    self._acc(UNAUTHORIZED_BUILDER, unit).add(rec, m)
            elif action == DELETE_ACTION and rec.rule_id == "ARC-2":
                for d in rec.device_ids or ("",):
                    self._acc(EARLY_DELETION_ATTEMPT, d).add(rec, m)
            elif action in DECISION_ACTIONS and rec.rule_id == "ACC-3" and rec.grant_id:
                self._acc(REFUSED_OUTSIDE_GRANT, rec.grant_id).add(rec, m)
            return
        if action == VIOLATION_ACTION:
            for d in rec.device_ids or ("",):
                self._acc(INTEGRITY_VIOLATION, d).add(rec, m)
            return
        if decision != ALLOWED:
            return
        if rec.grant_id and (action in ACCESS_ACTIONS or action in DECISION_ACTIONS):
            why = outside_grant(rec, self.grants.get(rec.grant_id))
            if why is not None:
                self._acc(ACCESS_OUTSIDE_GRANT, rec.grant_id).add(rec, m)
                self._why[rec.grant_id].add(why)
        if action not in ACCESS_ACTIONS:
            return
        who = rec.actor_id
        if action == EXPORT_ACTION and is_bulk_export(rec, self.t):
            self._acc(BULK_EXPORT, who).add(rec, m)
        if is_night(rec.time_us, self.t):
            self._acc(NIGHT_ACCESS, who).add(rec, m)
        seen = self._devices_seen[who]
        before = len(seen)
        seen.update(rec.device_ids)
        if len(seen) > before and len(self._devices_evidence[who]) < m:
            self._devices_evidence[who].append(rec.record_id)
        series = self._access.get(rec.actor_unit)
        if series is None:
            series = self._access[rec.actor_unit] = [0] * self.t.access_buckets
        b = (rec.time_us - self.start_us) // self.bucket_us
        if 0 <= b < len(series):
            series[b] += 1

    def count_unread(self, n: int) -> None:
        """Records of the range the scan did not read, as SCAN_FILTER allows: scanned, and no finding."""
        self.scanned += n

    def access_series(self) -> dict[str, list[int]]:
        """Footage accesses per department (the actor's unit) per bucket, departments sorted."""
        return {unit: self._access[unit] for unit in sorted(self._access)}

    def findings(self) -> list[Finding]:
        out = []
        for (kind, subject), acc in self._by.items():
            out.append(
                Finding(
                    kind,
                    _SUBJECT_KIND[kind],
                    (subject,) if subject else (),
                    _summary(kind, subject, acc.count, sorted(self._why.get(subject, ()))),
                    acc.evidence,
                    acc.count,
                    acc.first,
                    acc.last,
                )
            )
        for who, devices in self._devices_seen.items():
            if len(devices) > self.t.many_devices:
                out.append(
                    Finding(
                        MANY_DEVICES,
                        "principal",
                        (who,),
                        f"{who} viewed {len(devices)} distinct devices (threshold {self.t.many_devices})",
                        self._devices_evidence[who],
                        len(devices),
                    )
                )
        return out


_SUBJECT_KIND = {
    FORBIDDEN_PLACE: "device",
    UNAUTHORIZED_BUILDER: "unit",
    EARLY_DELETION_ATTEMPT: "device",
    INTEGRITY_VIOLATION: "device",
    ACCESS_OUTSIDE_GRANT: "grant",
    REFUSED_OUTSIDE_GRANT: "grant",
    BULK_EXPORT: "principal",
    NIGHT_ACCESS: "principal",
}


def _summary(kind: str, subject: str, count: int, why: list[str]) -> str:
    n = f"{count} time{'s' if count != 1 else ''}"
    return {
        FORBIDDEN_PLACE: f"registration of device {subject} in a forbidden place refused {n}",
        UNAUTHORIZED_BUILDER: f"unit {subject} refused as builder of a public-place device {n}",
        EARLY_DELETION_ATTEMPT: f"deletion of device {subject}'s footage before expiry attempted {n}",
        INTEGRITY_VIOLATION: f"{count} integrity violation{'s' if count != 1 else ''} of device {subject}'s footage",
        ACCESS_OUTSIDE_GRANT: f"footage accessed outside grant {subject} {n}: {'; '.join(why)}",
        REFUSED_OUTSIDE_GRANT: f"access outside grant {subject} refused {n}",
        BULK_EXPORT: f"{subject} made {count} bulk export{'s' if count != 1 else ''}",
        NIGHT_ACCESS: f"{subject} accessed footage at night {n}",
    }[kind]


# --------------------------------------------------------------------------------------- registry facts


@dataclass(frozen=True)
class DeviceGap:
    device_id: str
    site_id: str
    owner_unit_id: str


@dataclass(frozen=True)
class SiteGap:
    site_id: str
    name: str
    place_category: str


@dataclass(frozen=True)
class OverdueFiling:
    unit_id: str
    site_id: str
    due_on: str


@dataclass(frozen=True)
class Outage:
    device_id: str
    site_id: str
    # None when the registry gave no duration.
    outage_us: int | None


def registry_findings(
    *,
    missing_measures: Iterable[DeviceGap],
    missing_sign: Iterable[DeviceGap],
    sites_without_device: Iterable[SiteGap],
    overdue: Iterable[OverdueFiling],
    offline: Iterable[Outage],
    t: Thresholds,
) -> list[Finding]:
    """REG-2/5/6/7/11 findings from the registry's summary; the outage limit is the report's setting."""
    out = [
        Finding(
            MISSING_PRIVACY_MEASURES,
            "device",
            (d.device_id,),
            f"device {d.device_id} at site {d.site_id} declares no privacy measures",
            count=1,
        )
        for d in missing_measures
    ]
    out += [
        Finding(
            MISSING_NOTICE_SIGN,
            "device",
            (d.device_id,),
            f"device {d.device_id} at site {d.site_id} has no confirmed notice sign",
            count=1,
        )
        for d in missing_sign
    ]
    out += [
        Finding(
            MANDATORY_COVERAGE_GAP,
            "site",
            (s.site_id,),
            f"mandatory site {s.site_id} ({s.name}, {s.place_category}) has no active device",
            count=1,
        )
        for s in sites_without_device
    ]
    out += [
        Finding(
            OVERDUE_FILING,
            "filing",
            (f.unit_id, f.site_id),
            f"filing of unit {f.unit_id} at site {f.site_id} was due on {f.due_on}",
            count=1,
        )
        for f in overdue
    ]
    for o in offline:
        over = o.outage_us is not None and o.outage_us > t.outage_limit_us
        hours = f"{o.outage_us / _US_PER_HOUR:.1f} h" if o.outage_us is not None else "an unknown time"
        out.append(
            Finding(
                OUTAGE_OVER_LIMIT if over else DEVICE_OFFLINE,
                "device",
                (o.device_id,),
                f"device {o.device_id} offline for {hours}"
                + (f", over the {t.outage_limit_us / _US_PER_HOUR:.0f} h limit" if over else ""),
                count=1,
            )
        )
    return out


# --------------------------------------------------------------------------------------- archive coverage


@dataclass(frozen=True)
class DeviceCoverage:
    device_id: str
    place_category: str
    retention_days: float
    percent_covered: float
    earliest_us: int | None
    latest_us: int | None
    gaps: tuple[tuple[int, int], ...]
    on_hold: bool = False


def interior_gaps(c: DeviceCoverage) -> list[tuple[int, int]]:
    """ARC-5: gaps between the device's earliest and latest footage (before the first segment and after
    the last one the device may simply not have been recording yet, or any more)."""
    if c.earliest_us is None or c.latest_us is None:
        return []
    return [g for g in c.gaps if g[0] >= c.earliest_us and g[1] <= c.latest_us]


def past_expiry(c: DeviceCoverage, now_us: int, t: Thresholds) -> bool:
    """ARC-3: footage older than the device's retention plus the grace, and under no hold."""
    if c.on_hold or c.earliest_us is None or c.retention_days <= 0:
        return False
    return c.earliest_us + int(c.retention_days * _US_PER_DAY) + t.expiry_grace_us < now_us


def coverage_findings(coverage: Iterable[DeviceCoverage], now_us: int, t: Thresholds) -> list[Finding]:
    out = []
    for c in coverage:
        gaps = interior_gaps(c)
        if gaps:
            missing = sum(e - s for s, e in gaps) / 1_000_000
            out.append(
                Finding(
                    RECORDING_GAP,
                    "device",
                    (c.device_id,),
                    f"device {c.device_id} has {len(gaps)} recording gap{'s' if len(gaps) != 1 else ''} "
                    f"({missing:.0f} s missing)",
                    count=len(gaps),
                    first_us=gaps[0][0],
                    last_us=gaps[-1][1],
                )
            )
        if past_expiry(c, now_us, t):
            out.append(
                Finding(
                    FOOTAGE_PAST_EXPIRY,
                    "device",
                    (c.device_id,),
                    f"device {c.device_id} keeps footage from beyond its {c.retention_days:g}-day retention "
                    "without a hold",
                    count=1,
                    first_us=c.earliest_us,
                )
            )
    return out


@dataclass(frozen=True)
class CategoryCoverage:
    place_category: str
    device_count: int
    percent_covered: float
    devices_with_gaps: int


def coverage_by_category(coverage: Iterable[DeviceCoverage]) -> list[CategoryCoverage]:
    by: dict[str, list[DeviceCoverage]] = defaultdict(list)
    for c in coverage:
        by[c.place_category].append(c)
    return [
        CategoryCoverage(
            cat,
            len(items),
            sum(i.percent_covered for i in items) / len(items),
            sum(1 for i in items if interior_gaps(i)),
        )
        for cat, items in sorted(by.items())
    ]


def counts(findings: Iterable[Finding]) -> dict[str, int]:
    """Findings per kind, in the kinds' order of declaration."""
    out: dict[str, int] = {}
    for f in findings:
        out[f.kind] = out.get(f.kind, 0) + 1
    order = list(RULES)
    return dict(sorted(out.items(), key=lambda kv: order.index(kv[0])))
