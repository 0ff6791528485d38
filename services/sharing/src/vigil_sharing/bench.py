"""Benchmark figure of the sharing service: access decisions per second through decide(), excluding I/O."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from vigil_kit.bench import BenchContext, Figure
from vigil_sharing.domain.index import GrantIndex
from vigil_sharing.domain.model import (
    ACTION_EXPORT,
    ACTION_LIVE_VIEW,
    ACTION_PLAYBACK,
    ACTION_SUBSCRIBE_EVENTS,
    FUNDING_GOVERNMENT,
    FUNDING_PRIVATE,
    PLACE_CATEGORIES,
    ROLE_DEPARTMENT_ANALYST,
    ROLE_PARTNER,
    ROLE_PUBLIC_SECURITY_OFFICER,
    UNIT_KIND_GOVERNMENT_DEPARTMENT,
    UNIT_KIND_PARTNER,
    UNIT_KIND_PUBLIC_SECURITY_ORGAN,
    Action,
    Decision,
    DeviceFacts,
    Grant,
    PrincipalFacts,
    Purpose,
    Scope,
    TimeRange,
)
from vigil_sharing.domain.policy import decide

T0 = datetime(2026, 11, 28, tzinfo=UTC)
HOUR = timedelta(hours=1)
TARGET = 50_000.0
CATEGORIES = sorted(PLACE_CATEGORIES)
ACTION_SETS: tuple[frozenset[Action], ...] = (
    frozenset({ACTION_PLAYBACK}),
    frozenset({ACTION_PLAYBACK, ACTION_EXPORT}),
    frozenset({ACTION_LIVE_VIEW}),
    frozenset({ACTION_LIVE_VIEW, ACTION_PLAYBACK}),
    frozenset({ACTION_SUBSCRIBE_EVENTS}),
)


@dataclass
class Workload:
    """A city's worth of devices, principals and active grants, and a request mix about half of them denied."""

    index: GrantIndex
    requests: list[tuple[str, DeviceFacts | None, TimeRange | None, PrincipalFacts, datetime]]

    def run(self) -> tuple[float, int]:
        """Decide every request once; (seconds, allowed count)."""
        index = self.index
        allowed = 0
        start = time.perf_counter()
        for action, device, window, principal, now in self.requests:
            if decide(action, device, window, principal, now, index).allow:
                allowed += 1
        return time.perf_counter() - start, allowed


def build_workload(
    *,
    grants: int = 10_000,
    principals: int = 2_000,
    devices: int = 20_000,
    requests: int = 100_000,
    seed: int = 7,
) -> Workload:
    rng = random.Random(seed)
    kinds = (
        (UNIT_KIND_GOVERNMENT_DEPARTMENT, ROLE_DEPARTMENT_ANALYST),
        (UNIT_KIND_PUBLIC_SECURITY_ORGAN, ROLE_PUBLIC_SECURITY_OFFICER),
        (UNIT_KIND_PARTNER, ROLE_PARTNER),
    )
    people = []
    for i in range(principals):
        kind, role = kinds[i % len(kinds)]
        people.append(
            PrincipalFacts(f"user:{i}", f"U{i // 4:05d}", kind, frozenset({role}), unmask_right=i % 5 == 0)
        )
    districts = [f"3202{d:02d}" for d in range(1, 13)]
    fleet = [
        DeviceFacts(
            device_id=f"320200{i:014d}",
            owner_unit=f"OWNER{i % 300:04d}",
            site_id=f"S{i // 8:05d}",
            division_code=rng.choice(districts) + f"{rng.randrange(1000):03d}",
            place_category=rng.choice(CATEGORIES),
            funding=FUNDING_GOVERNMENT if rng.random() < 0.8 else FUNDING_PRIVATE,
            secret_related=rng.random() < 0.01,
        )
        for i in range(devices)
    ]
    sites = sorted({d.site_id for d in fleet})

    issued: list[Grant] = []
    for g in range(grants):
        holder = people[g % principals]
        shape = rng.random()
        if shape < 0.6:
            scope = Scope.of(device_ids=[rng.choice(fleet).device_id for _ in range(rng.randint(1, 20))])
        elif shape < 0.8:
            scope = Scope.of(site_ids=rng.sample(sites, rng.randint(1, 3)))
        else:
            scope = Scope.of(
                division_prefixes=rng.sample(districts, rng.randint(1, 2)),
                place_categories=rng.sample(CATEGORIES, rng.randint(1, 3)),
            )
        start = rng.randint(-30 * 24, -24)
        issued.append(
            Grant(
                grant_id=f"g-{g}",
                holder_id=holder.id,
                holder_unit=holder.unit,
                purpose=Purpose.PUBLIC_ORDER,
                actions=rng.choice(ACTION_SETS),
                scope=scope,
                footage_window=TimeRange(T0 + start * HOUR, T0 + (start + rng.randint(2, 72)) * HOUR),
                valid_from=T0 - rng.randint(0, 48) * HOUR,
                valid_until=T0 + rng.randint(1, 30 * 24) * HOUR,
                agreement_ref="AGR-1" if rng.random() < 0.5 else "",
            )
        )
    index = GrantIndex(issued)
    now = T0

    def covered(g: Grant) -> DeviceFacts | None:
        """A device in the grant's scope, found by sampling (the scopes above all cover some devices)."""
        if g.scope.device_ids:
            cands = [by_id[d] for d in g.scope.device_ids]
        elif g.scope.site_ids:
            cands = [d for s in g.scope.site_ids for d in by_site[s]]
        else:
            cands = []
            for _ in range(2_000):
                d = fleet[rng.randrange(len(fleet))]
                if g.scope.covers(d):
                    cands.append(d)
                    break
        cands = [
            d for d in cands if g.scope.covers(d) and not d.secret_related and d.funding == FUNDING_GOVERNMENT
        ]
        return rng.choice(cands) if cands else None

    by_id = {d.device_id: d for d in fleet}
    by_site: dict[str, list[DeviceFacts]] = {}
    for d in fleet:
        by_site.setdefault(d.site_id, []).append(d)
    people_by_id = {p.id: p for p in people}

    mix: list[tuple[str, DeviceFacts | None, TimeRange | None, PrincipalFacts, datetime]] = []
    while len(mix) < requests:
        g = rng.choice(issued)
        holder = people_by_id[g.holder_id]
        action = rng.choice(sorted(g.actions))
        device = covered(g)
        if device is None:
            continue
        window = None
        if action in (ACTION_PLAYBACK, ACTION_EXPORT):
            assert g.footage_window is not None
            window = TimeRange(g.footage_window.start + HOUR, g.footage_window.start + 2 * HOUR)
        if len(mix) % 2 == 0:
            mix.append((action, device, window, holder, now))  # meant to be allowed
            continue
        # Meant to be denied, in the ways real refusals happen.
        how = rng.randrange(5)
        if how == 0:  # a device outside every scope the holder has
            mix.append((action, rng.choice(fleet), window, holder, now))
        elif how == 1:  # footage older than the grant's window
            old = TimeRange(T0 - 60 * 24 * HOUR, T0 - 59 * 24 * HOUR)
            mix.append((ACTION_PLAYBACK, device, old, holder, now))
        elif how == 2:  # someone else asking for the same
            mix.append((action, device, window, rng.choice(people), now))
        elif how == 3:  # after the grant expired
            mix.append((action, device, window, holder, g.valid_until + HOUR))
        else:  # a device no one has heard of
            mix.append((action, None, window, holder, now))
    return Workload(index, mix)


def measure(workload: Workload, rounds: int = 3) -> tuple[float, float]:
    """(best decisions per second over `rounds`, fraction allowed)."""
    best, allowed = float("inf"), 0
    for _ in range(rounds):
        seconds, allowed = workload.run()
        best = min(best, seconds)
    n = len(workload.requests)
    return n / best, allowed / n


def first_decision(workload: Workload) -> Decision:
    action, device, window, principal, now = workload.requests[0]
    return decide(action, device, window, principal, now, workload.index)


async def figures(ctx: BenchContext) -> list[Figure]:
    workload = build_workload()
    rate, allowed = measure(workload)
    return [
        Figure.bounded(
            "sharing: decide() with 10,000 active grants",
            value=rate,
            unit="decisions/s",
            at_least=TARGET,
            notes=(
                f"one process, excluding I/O; {len(workload.requests):,} requests with footage windows over "
                f"{len(workload.index):,} grants of 2,000 principals on 20,000 devices; {allowed:.0%} allowed; "
                "best of 3 rounds"
            ),
        )
    ]
