"""Filings (REG-7) and the compliance summary, computed from the store with the domain's rules."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date, datetime

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_kit.errors import NotFound
from vigil_registry import codec
from vigil_registry.domain import filing as filing_rules
from vigil_registry.domain import keepalive, rules
from vigil_registry.domain.model import (
    MANDATORY_CATEGORIES,
    DeviceState,
    Filing,
    FilingFacts,
    FilingState,
    PlaceCategory,
    RegistryPolicy,
    Site,
    Unit,
)
from vigil_registry.store import FilingRecord, RegistryStore, devices


@dataclass(frozen=True)
class SystemFiling:
    """A unit's system at a site: its filing today and the facts as they are now."""

    filing: Filing
    current: FilingFacts


def _with_record(filing: Filing, record: FilingRecord | None, facts: FilingFacts, today: date) -> Filing:
    if record is not None:
        filing = replace(
            filing,
            filing_number=record.filing_number,
            filed_on=record.filed_on,
            filed_facts=record.filed_facts,
        )
    return filing_rules.evaluate(filing, facts, today)


async def load_system(
    s: AsyncSession, store: RegistryStore, unit_id: str, site_id: str
) -> tuple[Unit, Site, list]:
    unit = await store.get_unit(s, unit_id)
    if unit is None:
        raise NotFound(f"unit {unit_id!r} does not exist", field="unit_id")
    site = await store.get_site(s, site_id)
    if site is None:
        raise NotFound(f"site {site_id!r} does not exist", field="site_id")
    return unit[0], site[0], await store.system_devices(s, unit_id, site_id)


async def filing_of(
    s: AsyncSession, store: RegistryStore, unit_id: str, site_id: str, today: date
) -> tuple[SystemFiling, Unit, Site, list]:
    """REG-7: the filing the unit's system at the site owes today; NotFound while it is not in use."""
    unit, site, mine = await load_system(s, store, unit_id, site_id)
    opened = filing_rules.open_filing(unit_id, site, mine, today)
    if opened is None:
        raise NotFound(
            f"REG-7: unit {unit_id}'s system at site {site_id} is not in use, so no filing is owed yet",
            rule="REG-7",
            field="site_id",
        )
    facts = filing_rules.current_facts(site, mine)
    record = await store.get_filing(s, unit_id, site_id)
    return SystemFiling(_with_record(opened, record, facts, today), facts), unit, site, mine


async def all_filings(
    s: AsyncSession,
    store: RegistryStore,
    today: date,
    *,
    unit_id: str = "",
    site_id: str = "",
    division_prefix: str = "",
) -> list[SystemFiling]:
    """REG-7: every system that is in use, with its filing state today, ordered by (unit, site)."""
    systems = await store.systems(s, unit_id=unit_id, site_id=site_id, division_prefix=division_prefix)
    sites = await store.sites_by_id(s, (site for _, site, _ in systems))
    records = await store.filing_records(s)
    out: list[SystemFiling] = []
    for unit, site_key, mine in systems:
        site = sites[site_key]
        opened = filing_rules.open_filing(unit, site, mine, today)
        if opened is None:
            continue
        facts = filing_rules.current_facts(site, mine)
        out.append(SystemFiling(_with_record(opened, records.get((unit, site_key)), facts, today), facts))
    return out


def dossier_json(unit: Unit, site: Site, mine: list, filing: Filing) -> str:
    """REG-7 (799 Art. 14): the dossier as canonical JSON (keys in the domain's order, UTF-8 kept)."""
    return json.dumps(filing_rules.dossier(unit, site, mine, filing), ensure_ascii=False, indent=2)


async def summary(
    s: AsyncSession,
    store: RegistryStore,
    policy: RegistryPolicy,
    now: datetime,
    *,
    division_prefix: str = "",
    max_items: int = 100,
) -> pb.ComplianceSummary:
    """What the audit service's compliance report reads: REG-2 gaps, REG-7 overdue filings, REG-5 and
    REG-6 missing facts, REG-11 outages (and those over the limit)."""
    out = pb.ComplianceSummary(compute_time=codec.ts(now), outage_limit=codec.duration(policy.outage_limit))

    gaps = await store.mandatory_sites_without_active_device(s, MANDATORY_CATEGORIES, division_prefix)
    out.sites_without_active_device_count = len(gaps)
    out.sites_without_active_device.extend(
        pb.SiteGap(
            site_id=site.site_id,
            name=site.name,
            place_category=pb.PlaceCategory.Value(site.place_category.value),
            managing_unit_id=site.managing_unit_id,
        )
        for site in gaps[:max_items]
    )

    filings = await all_filings(s, store, now.date(), division_prefix=division_prefix)
    overdue = [f for f in filings if f.filing.state == FilingState.OVERDUE]
    out.overdue_filings_count = len(overdue)
    out.overdue_filings.extend(codec.filing_to_pb(f.filing, f.current) for f in overdue[:max_items])
    out.change_pending_filings_count = sum(f.filing.state == FilingState.CHANGE_PENDING for f in filings)

    live = devices.c.state != DeviceState.DECOMMISSIONED.value
    # The SQL narrows the candidates; the domain's rule decides (so the rule lives in one place).
    candidates = await store.devices_where(
        s,
        live,
        devices.c.place_category.in_([c.value for c in MANDATORY_CATEGORIES]),
        func.trim(devices.c.privacy_measures) == "",
        division_prefix=division_prefix,
    )
    sites = await store.sites_by_id(s, (d.site_id for d in candidates))
    missing_measures = [d for d in candidates if rules.check_privacy_measures(d, sites[d.site_id])]
    out.devices_missing_privacy_measures_count = len(missing_measures)
    out.devices_missing_privacy_measures.extend(_gap(d, "REG-5") for d in missing_measures[:max_items])

    candidates = await store.devices_where(
        s,
        live,
        devices.c.place_category != PlaceCategory.NON_PUBLIC.value,
        devices.c.notice_sign_confirmed.is_(False),
        division_prefix=division_prefix,
    )
    sites = await store.sites_by_id(s, (d.site_id for d in candidates))
    missing_sign = [
        d
        for d in candidates
        if any(
            v.field == "device.notice_sign_confirmed" for v in rules.check_field_of_view(d, sites[d.site_id])
        )
    ]
    out.devices_missing_notice_sign_count = len(missing_sign)
    out.devices_missing_notice_sign.extend(_gap(d, "REG-6") for d in missing_sign[:max_items])

    offline = await store.devices_where(
        s, devices.c.state == DeviceState.OFFLINE.value, division_prefix=division_prefix
    )
    over = [d for d in offline if keepalive.outage_over_limit(d, now, policy)]
    out.offline_devices_count = len(offline)
    out.outages_over_limit_count = len(over)
    # Longest outages first: those are the ones a report must show.
    offline.sort(key=lambda d: d.offline_since or now)
    for d in offline[:max_items]:
        item = pb.DeviceOutage(
            device_id=d.device_id,
            site_id=d.site_id,
            owner_unit_id=d.owner_unit_id,
            offline_time=codec.ts(d.offline_since),
            over_limit=keepalive.outage_over_limit(d, now, policy),
        )
        current = keepalive.outage(d, now)
        if current is not None:
            item.outage.CopyFrom(codec.duration(current))
        out.offline_devices.append(item)

    total, active, site_count = await store.counts(s, division_prefix)
    out.device_count, out.active_device_count, out.site_count = total, active, site_count
    return out


def _gap(d, rule: str) -> pb.DeviceGap:
    return pb.DeviceGap(
        device_id=d.device_id,
        site_id=d.site_id,
        owner_unit_id=d.owner_unit_id,
        state=pb.DeviceState.Value(d.state.value),
        rule=rule,
    )
