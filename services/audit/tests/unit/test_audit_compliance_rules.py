"""AUD-3's pure rules: which records, registry gaps and coverage facts become findings, and which do not."""

from __future__ import annotations

from datetime import UTC, datetime

from vigil_audit.compliance import rules
from vigil_audit.compliance.rules import DeviceCoverage, Grant, LogRules, Rec, Thresholds

H = 3600 * 1_000_000
T0 = int(datetime(2026, 11, 2, 0, 0, tzinfo=UTC).timestamp()) * 1_000_000  # 08:00 in UTC+8


def rec(
    action: str,
    *,
    t: int = T0 + 4 * H,
    decision: str = rules.ALLOWED,
    rule: str = "",
    grant: str = "",
    devices: tuple[str, ...] = ("d1",),
    actor: str = "u1",
    unit: str = "U1",
    footage=None,
    attrs=None,
) -> Rec:
    start, end = footage or (None, None)
    return Rec(
        f"r-{action}-{t}-{devices}",
        t,
        action,
        decision,
        rule,
        actor,
        unit,
        devices,
        (),
        grant,
        "",
        start,
        end,
        attrs or {},
    )


def run(*recs: Rec, grants=None, t: Thresholds | None = None) -> list[rules.Finding]:
    lr = LogRules(t or Thresholds(), grants or {}, T0, T0 + 24 * H)
    for r in recs:
        lr.add(r)
    return lr.findings()


def kinds(found: list[rules.Finding]) -> list[str]:
    return sorted(f.kind for f in found)


def test_leaf_times_parse_to_the_microsecond() -> None:
    assert rules.parse_time_us("2026-11-02T00:00:01.000002999Z") == T0 + 1_000_002


def test_refused_forbidden_place_registrations_are_one_finding_per_device_with_every_record() -> None:
    found = run(
        rec("registry.device.register", decision=rules.DENIED, rule="REG-1"),
        rec("registry.device.register", t=T0 + 5 * H, decision=rules.DENIED, rule="REG-1"),
    )
    assert kinds(found) == ["FORBIDDEN_PLACE"] and found[0].count == 2 and len(found[0].evidence) == 2


def test_allowed_registrations_and_other_refusals_are_no_finding() -> None:
    assert (
        run(
            rec("registry.device.register"),
            rec("registry.device.register", decision=rules.DENIED, rule="REG-10"),
        )
        == []
    )


def test_refused_early_deletion_is_a_finding() -> None:
    assert kinds(run(rec("archive.segment.delete", decision=rules.DENIED, rule="ARC-2"))) == [
        "EARLY_DELETION_ATTEMPT"
    ]


def test_an_access_outside_the_grant_footage_window_is_a_finding_and_one_inside_is_not() -> None:
    grant = Grant("g1", "approve", T0, T0, T0 + H)
    inside = rec("archive.playback.manifest", grant="g1", footage=(T0, T0 + H // 2))
    outside = rec("archive.playback.manifest", grant="g1", footage=(T0, T0 + 2 * H))
    assert run(inside, grants={"g1": grant}) == []
    assert kinds(run(outside, grants={"g1": grant})) == ["ACCESS_OUTSIDE_GRANT"]


def test_an_access_after_the_grant_ended_is_a_finding() -> None:
    grant = Grant("g1", "approve", T0, T0, T0 + H, ended_us=T0 + 2 * H, end_record_id="revoke")
    late = rec("archive.playback.manifest", t=T0 + 3 * H, grant="g1", footage=(T0, T0 + H // 2))
    assert kinds(run(late, grants={"g1": grant})) == ["ACCESS_OUTSIDE_GRANT"]


def test_grants_end_by_their_request_id_once_revoked() -> None:
    approve = rec("sharing.request.approve", t=T0, grant="g1", footage=(T0, T0 + H))
    revoke = rec("sharing.grant.revoke", t=T0 + H)._replace(request_id="g1")
    assert rules.grants_from_records([revoke, approve])["g1"].ended_us == T0 + H


def test_night_hours_wrap_midnight_in_local_time() -> None:
    t = Thresholds(night_start_hour=22, night_end_hour=6, utc_offset_s=8 * 3600)
    assert rules.is_night(T0 - 3 * H, t)  # 05:00 local
    assert not rules.is_night(T0, t)  # 08:00 local
    assert rules.is_night(T0 + 15 * H, t)  # 23:00 local


def test_a_night_bulk_export_is_a_bulk_and_a_night_finding_of_its_principal() -> None:
    t = Thresholds(bulk_export_segments=10)
    export = rec("archive.clip.export", t=T0 + 16 * H, attrs={"segments": "10"})
    small_by_day = rec("archive.clip.export", t=T0 + 2 * H, attrs={"segments": "9"})
    found = run(export, small_by_day, t=t)
    assert kinds(found) == ["BULK_EXPORT", "NIGHT_ACCESS"]
    assert all(f.subject_ids == ("u1",) and f.count == 1 for f in found)


def test_a_principal_viewing_more_devices_than_the_threshold_is_a_finding() -> None:
    t = Thresholds(many_devices=2)
    views = [rec("archive.playback.manifest", devices=(f"d{i}",)) for i in range(3)]
    assert kinds(run(*views[:2], t=t)) == []
    assert kinds(run(*views, t=t)) == ["MANY_DEVICES"]


def test_access_is_counted_per_department_per_bucket() -> None:
    lr = LogRules(Thresholds(access_buckets=24), {}, T0, T0 + 24 * H)
    lr.add(rec("archive.playback.manifest", t=T0 + 3 * H, unit="Transport"))
    lr.add(rec("archive.live.manifest", t=T0 + 3 * H, unit="Transport"))
    assert lr.access_series()["Transport"][3] == 2


def test_outages_over_the_limit_are_critical_and_shorter_ones_are_offline() -> None:
    found = rules.registry_findings(
        missing_measures=[],
        missing_sign=[],
        sites_without_device=[],
        overdue=[],
        offline=[rules.Outage("d1", "s", 4 * 24 * H), rules.Outage("d2", "s", H)],
        t=Thresholds(),
    )
    assert [(f.kind, f.subject_ids) for f in found] == [
        ("OUTAGE_OVER_LIMIT", ("d1",)),
        ("DEVICE_OFFLINE", ("d2",)),
    ]
    assert found[0].severity == "CRITICAL"


def test_only_gaps_between_the_first_and_last_footage_are_recording_gaps() -> None:
    c = DeviceCoverage(
        "d1",
        "PLACE_CATEGORY_TRANSPORT",
        30,
        50.0,
        T0 + H,
        T0 + 5 * H,
        ((T0, T0 + H), (T0 + 2 * H, T0 + 3 * H), (T0 + 5 * H, T0 + 6 * H)),
    )
    assert rules.interior_gaps(c) == [(T0 + 2 * H, T0 + 3 * H)]


def test_footage_older_than_retention_is_a_finding_unless_held() -> None:
    now = T0 + 40 * 24 * H
    old = DeviceCoverage("d1", "C", 30, 100.0, T0, now, ())
    assert kinds(rules.coverage_findings([old], now, Thresholds())) == ["FOOTAGE_PAST_EXPIRY"]
    held = DeviceCoverage("d1", "C", 30, 100.0, T0, now, (), on_hold=True)
    assert rules.coverage_findings([held], now, Thresholds()) == []
    fresh = DeviceCoverage("d1", "C", 60, 100.0, T0, now, ())
    assert rules.coverage_findings([fresh], now, Thresholds()) == []


def test_the_scan_filter_names_every_scanned_action_and_only_those() -> None:
    assert set(rules.SCAN_FILTER) == rules.SCANNED_ACTIONS
