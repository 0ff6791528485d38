"""The grant index: maintenance operations, agreement with the reference matcher, and grant properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from vigil_sharing.domain.index import GrantIndex, _minimal_prefixes
from vigil_sharing.domain.model import (
    ACTION_LIVE_VIEW,
    ACTION_PLAYBACK,
    ACTION_SUBSCRIBE_EVENTS,
    ACTIONS,
    FUNDING_GOVERNMENT,
    FUNDING_PRIVATE,
    PLACE_NON_PUBLIC,
    PLACE_ROAD_SQUARE_TUNNEL_BRIDGE,
    PLACE_TRANSPORT,
    ROLE_DEPARTMENT_ANALYST,
    ROLE_PARTNER,
    ROLE_PUBLIC_SECURITY_OFFICER,
    ROLE_UNIT_OPERATOR,
    DeviceFacts,
    Grant,
    PrincipalFacts,
    Purpose,
    RequestState,
    Scope,
    TimeRange,
)
from vigil_sharing.domain.policy import decide

T0 = datetime(2026, 11, 28, tzinfo=UTC)
H = timedelta(hours=1)


def grant(grant_id: str, holder: str = "user:a", unit: str = "U1", **overrides: object) -> Grant:
    args: dict[str, object] = {
        "grant_id": grant_id,
        "holder_id": holder,
        "holder_unit": unit,
        "purpose": Purpose.PUBLIC_ORDER,
        "actions": frozenset({ACTION_PLAYBACK}),
        "scope": Scope.of(device_ids=["d1"]),
        "footage_window": TimeRange(T0 - 24 * H, T0),
        "valid_from": T0,
        "valid_until": T0 + 24 * H,
    }
    args.update(overrides)
    return Grant(**args)  # type: ignore[arg-type]


D1 = DeviceFacts("d1", "U9", "s1", "320211", PLACE_ROAD_SQUARE_TUNNEL_BRIDGE, FUNDING_GOVERNMENT)


# ------------------------------------------------------------------ maintenance


def test_an_added_grant_is_found_for_its_holder_and_device() -> None:
    index = GrantIndex([grant("g1")])
    assert [e.grant_id for e in index.candidates("user:a", D1)] == ["g1"]
    assert len(index) == 1 and "g1" in index


def test_a_grant_that_is_not_approved_is_not_filed() -> None:
    assert len(GrantIndex([grant("g1", state=RequestState.PENDING)])) == 0


def test_removing_a_grant_returns_it_and_forgets_it() -> None:
    index = GrantIndex([grant("g1"), grant("g2")])
    assert index.remove("g1") == grant("g1")
    assert [e.grant_id for e in index.candidates("user:a", D1)] == ["g2"]
    assert index.remove("g1") is None


def test_revoking_is_removing() -> None:
    index = GrantIndex([grant("g1")])
    index.revoke("g1")
    assert index.candidates("user:a", D1) == [] and len(index) == 0


def test_adding_a_grant_again_replaces_it() -> None:
    index = GrantIndex([grant("g1")])
    index.add(grant("g1", scope=Scope.of(device_ids=["d2"])))
    assert index.candidates("user:a", D1) == [] and len(index) == 1


def test_adding_a_grant_in_a_final_state_removes_it() -> None:
    index = GrantIndex([grant("g1")])
    index.add(grant("g1", state=RequestState.REVOKED))
    assert "g1" not in index


def test_expire_removes_exactly_the_grants_whose_validity_ended() -> None:
    index = GrantIndex([grant("g1"), grant("g2", valid_until=T0 + 48 * H)])
    assert [g.grant_id for g in index.expire(T0 + 24 * H)] == ["g1"]
    assert list(index.grants()) == [grant("g2", valid_until=T0 + 48 * H)]


def test_expire_skips_grants_that_were_replaced_with_a_longer_validity() -> None:
    index = GrantIndex([grant("g1")])
    index.add(grant("g1", valid_until=T0 + 48 * H))
    assert index.expire(T0 + 24 * H) == [] and "g1" in index
    assert index.next_expiry() == T0 + 48 * H


def test_next_expiry_is_none_for_an_empty_index() -> None:
    index = GrantIndex([grant("g1")])
    index.remove("g1")
    assert index.next_expiry() is None


def test_rebuild_replaces_every_grant() -> None:
    index = GrantIndex([grant("g1")])
    index.rebuild([grant("g2", holder="user:b")])
    assert index.held_by("user:a") == [] and [g.grant_id for g in index.held_by("user:b")] == ["g2"]


def test_minimal_prefixes_drop_the_ones_a_shorter_prefix_covers() -> None:
    assert _minimal_prefixes(["3202", "32", "3301", "330101", "33"]) == ("32", "33")
    assert _minimal_prefixes(["320211", "320212"]) == ("320211", "320212")


def test_a_grant_with_overlapping_prefixes_is_a_candidate_once() -> None:
    index = GrantIndex([grant("g1", scope=Scope.of(division_prefixes=["32", "3202", "320211"]))])
    assert [e.grant_id for e in index.candidates("user:a", D1)] == ["g1"]


def test_subscribe_grants_are_found_by_unit_and_others_are_not() -> None:
    index = GrantIndex([grant("g1", actions=frozenset({ACTION_SUBSCRIBE_EVENTS})), grant("g2")])
    assert [e.grant_id for e in index.unit_candidates("U1", D1)] == ["g1"]


def test_removing_a_subscribe_grant_removes_it_from_its_unit() -> None:
    index = GrantIndex([grant("g1", actions=frozenset({ACTION_SUBSCRIBE_EVENTS}))])
    index.remove("g1")
    assert index.unit_candidates("U1", D1) == []


# ------------------------------------------------------------------ properties

UNITS = ("U1", "U2", "U3")
PEOPLE = (
    PrincipalFacts("p1", "U1", "UNIT_KIND_GOVERNMENT_DEPARTMENT", frozenset({ROLE_DEPARTMENT_ANALYST})),
    PrincipalFacts("p2", "U1", "UNIT_KIND_PARTNER", frozenset({ROLE_PARTNER})),
    PrincipalFacts("p3", "U2", "UNIT_KIND_PUBLIC_SECURITY_ORGAN", frozenset({ROLE_PUBLIC_SECURITY_OFFICER})),
    PrincipalFacts("p4", "U3", "UNIT_KIND_ENTERPRISE", frozenset({ROLE_UNIT_OPERATOR}), unmask_right=True),
)
CATEGORIES = (PLACE_ROAD_SQUARE_TUNNEL_BRIDGE, PLACE_TRANSPORT, PLACE_NON_PUBLIC)
DIVISIONS = ("320211", "320212", "320311")
DEVICES = tuple(
    DeviceFacts(
        f"d{i}",
        UNITS[i % 3],
        f"s{i % 4}",
        DIVISIONS[i % 3],
        CATEGORIES[(i // 2) % 3],
        FUNDING_GOVERNMENT if i % 3 else FUNDING_PRIVATE,
        secret_related=i == 7,
    )
    for i in range(8)
)
WINDOWS = (
    TimeRange(T0 - 10 * H, T0 - 9 * H),
    TimeRange(T0 - 30 * H, T0 - 2 * H),
    TimeRange(T0 - 2 * H, T0),
)
NOWS = (T0 - H, T0 + 2 * H, T0 + 30 * H)

scopes = st.builds(
    lambda d, s, p, c: Scope.of(device_ids=d, site_ids=s, division_prefixes=p, place_categories=c),
    st.sets(st.sampled_from([d.device_id for d in DEVICES]), max_size=3),
    st.sets(st.sampled_from(["s0", "s1", "s2", "s3"]), max_size=2),
    st.sets(st.sampled_from(["32", "3202", "320211", "320212", "3203"]), max_size=2),
    st.sets(st.sampled_from(CATEGORIES), max_size=2),
).filter(lambda s: not s.empty)


@st.composite
def grants(draw: st.DrawFn, grant_id: str | None = None) -> Grant:
    holder = draw(st.sampled_from(PEOPLE))
    start = draw(st.integers(-40, 0))
    valid_from = draw(st.integers(-5, 3))
    return Grant(
        grant_id=grant_id or f"g{draw(st.integers(0, 10**9))}",
        holder_id=holder.id,
        holder_unit=holder.unit,
        purpose=Purpose.PUBLIC_ORDER,
        actions=frozenset(draw(st.sets(st.sampled_from(sorted(ACTIONS)), min_size=1))),
        scope=draw(scopes),
        footage_window=TimeRange(T0 + start * H, T0 + (start + draw(st.integers(1, 40))) * H),
        valid_from=T0 + valid_from * H,
        valid_until=T0 + (valid_from + draw(st.integers(1, 40))) * H,
        agreement_ref=draw(st.sampled_from(["", "AGR-1"])),
        approver_units=frozenset(draw(st.sets(st.sampled_from(UNITS), max_size=1))),
    )


grant_lists = st.lists(grants(), max_size=12, unique_by=lambda g: g.grant_id)


def decisions(index: GrantIndex) -> dict[tuple[str, str, str, int, int], tuple[bool, str]]:
    out = {}
    for p in PEOPLE:
        for a in sorted(ACTIONS):
            for d in DEVICES:
                for w, window in enumerate(WINDOWS):
                    for n, now in enumerate(NOWS):
                        dec = decide(a, d, window, p, now, index)
                        out[(p.id, a, d.device_id, w, n)] = (dec.allow, dec.grant_id)
    return out


@settings(max_examples=60, deadline=None)
@given(grant_lists)
def test_the_index_finds_exactly_the_grants_whose_scope_covers_the_device(gs: list[Grant]) -> None:
    index = GrantIndex(gs)
    for p in PEOPLE:
        for d in DEVICES:
            found = {e.grant_id for e in index.candidates(p.id, d) if e.covers(d)}
            assert found == {g.grant_id for g in gs if g.holder_id == p.id and g.scope.covers(d)}
            found = {e.grant_id for e in index.unit_candidates(p.unit, d) if e.covers(d)}
            expected = {
                g.grant_id
                for g in gs
                if g.holder_unit == p.unit and ACTION_SUBSCRIBE_EVENTS in g.actions and g.scope.covers(d)
            }
            assert found == expected


@settings(max_examples=40, deadline=None)
@given(grant_lists, grants(grant_id="g-new"))
def test_adding_a_grant_never_turns_an_allow_into_a_deny(gs: list[Grant], new: Grant) -> None:
    index = GrantIndex(gs)
    before = decisions(index)
    index.add(new)
    after = decisions(index)
    for key, (allowed, _) in before.items():
        assert after[key][0] or not allowed, key
        if key[0] != new.holder_id and not (key[1] == ACTION_SUBSCRIBE_EVENTS):
            assert after[key][0] == allowed, key  # other principals' video decisions do not move at all


@settings(max_examples=40, deadline=None)
@given(grant_lists, grants(grant_id="g-gone"))
def test_revoking_a_grant_removes_every_allow_it_caused_and_nothing_else(
    gs: list[Grant], gone: Grant
) -> None:
    index = GrantIndex([*gs, gone])
    before = decisions(index)
    index.revoke("g-gone")
    after = decisions(index)
    for key, (allowed, grant_id) in before.items():
        assert after[key][1] != "g-gone", key
        if not allowed:
            assert not after[key][0], key
        elif grant_id != "g-gone":
            assert after[key] == (True, grant_id), key


def test_a_revoked_grant_stops_allowing_at_once() -> None:
    g = grant("g1", holder="p1", unit="U1", scope=Scope.of(device_ids=["d1"]))
    index = GrantIndex([g])
    p1 = PEOPLE[0]
    d1 = replace(D1, funding=FUNDING_GOVERNMENT)
    window = TimeRange(T0 - 2 * H, T0 - H)
    assert decide(ACTION_PLAYBACK, d1, window, p1, T0 + H, index).allow
    index.revoke("g1")
    assert not decide(ACTION_PLAYBACK, d1, window, p1, T0 + H, index).allow


def test_live_view_is_decided_without_reading_the_footage_window() -> None:
    g = grant("g1", holder="p1", unit="U1", actions=frozenset({ACTION_LIVE_VIEW}), footage_window=None)
    assert decide(ACTION_LIVE_VIEW, D1, None, PEOPLE[0], T0 + H, GrantIndex([g])).allow
