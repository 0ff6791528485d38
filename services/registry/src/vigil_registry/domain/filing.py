"""REG-7 filing (799 Art. 14): due dates, DUE/FILED/OVERDUE/CHANGE_PENDING, reopening, the dossier."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from vigil_kit.errors import FailedPrecondition, InvalidArgument

from . import ids
from .model import Device, DeviceState, Filing, FilingFacts, FilingState, Site, Unit

# 799 Art. 14: filed with the county-level public security organ within 30 days of going into use.
FILING_PERIOD = timedelta(days=30)

# The filed facts whose change reopens a filing, by name (also the names reported in Filing.changes).
FACT_NAMES = ("device_count", "device_types", "location", "retention")


def due_date(in_use_on: date) -> date:
    """REG-7: the last day to file — in use + 30 days."""
    return in_use_on + FILING_PERIOD


def system_devices(unit_id: str, site_id: str, devices: Iterable[Device]) -> list[Device]:
    """The unit's system at the site: its devices there that are not decommissioned."""
    return [
        d
        for d in devices
        if d.owner_unit_id == unit_id and d.site_id == site_id and d.state != DeviceState.DECOMMISSIONED
    ]


def in_use_date(site: Site, devices: Iterable[Device]) -> date | None:
    """REG-7 + REG-8: when the system went into use — the site's recorded in-use date (REG-8), else
    the (UTC) date its first device was activated; None while nothing is in use."""
    if site.in_use_on is not None:
        return site.in_use_on
    activations = [d.activated_at.date() for d in devices if d.activated_at is not None]
    return min(activations) if activations else None


def current_facts(site: Site, devices: Iterable[Device]) -> FilingFacts:
    """REG-7: the facts a filing records, computed from the system as it is now."""
    devices = list(devices)
    types = Counter(d.type_code for d in devices)
    retention = sorted({d.retention_days for d in devices if d.retention_days is not None})
    return FilingFacts(
        device_count=len(devices),
        device_types=tuple(sorted(types.items())),
        location=(site.division_code, site.address),
        retention_days=tuple(retention),
    )


def changed_facts(filed: FilingFacts, current: FilingFacts) -> tuple[str, ...]:
    """REG-7: which filed facts changed — device count or types, location, retention."""
    pairs = (
        ("device_count", filed.device_count, current.device_count),
        ("device_types", filed.device_types, current.device_types),
        ("location", filed.location, current.location),
        ("retention", filed.retention_days, current.retention_days),
    )
    return tuple(name for name, before, now in pairs if before != now)


def open_filing(unit_id: str, site: Site, devices: Iterable[Device], today: date) -> Filing | None:
    """REG-7: the filing a unit's system at a site owes, once it is in use (None before that)."""
    mine = system_devices(unit_id, site.site_id, devices)
    in_use = in_use_date(site, mine)
    if in_use is None:
        return None
    filing = Filing(unit_id=unit_id, site_id=site.site_id, in_use_on=in_use, due_on=due_date(in_use))
    return evaluate(filing, current_facts(site, mine), today)


def evaluate(filing: Filing, facts: FilingFacts, today: date) -> Filing:
    """REG-7: the filing's state today.

    Not filed: DUE until the due date (inclusive), OVERDUE after it. Filed: FILED while the facts are
    as filed; CHANGE_PENDING (with the changed fact names) as soon as any differs — and FILED again if
    they change back. A change-pending filing stays CHANGE_PENDING until re-filed: the text sets no
    deadline for re-filing, so the platform does not invent one.
    """
    if filing.filed_facts is None:
        state = FilingState.OVERDUE if today > filing.due_on else FilingState.DUE
        return replace(filing, state=state, changes=())
    changes = changed_facts(filing.filed_facts, facts)
    return replace(
        filing, state=FilingState.CHANGE_PENDING if changes else FilingState.FILED, changes=changes
    )


def record_filing(
    filing: Filing, facts: FilingFacts, *, filing_number: str, filed_on: date, today: date
) -> Filing:
    """REG-7: the public security organ's filing number and date are recorded; the facts as they are now
    become the filed facts (a re-filing after a change does the same)."""
    if not filing_number.strip():
        raise InvalidArgument(
            "REG-7: a filing needs the filing number", rule="REG-7", field="filing.filing_number"
        )
    if filed_on > today:
        raise InvalidArgument(
            f"REG-7: filed_on {filed_on.isoformat()} is in the future", rule="REG-7", field="filing.filed_on"
        )
    if facts.device_count == 0:
        raise FailedPrecondition(
            "REG-7: the system has no devices to file", rule="REG-7", field="filing.site_id"
        )
    filed = replace(filing, filing_number=filing_number.strip(), filed_on=filed_on, filed_facts=facts)
    return evaluate(filed, facts, today)


def dossier(
    unit: Unit, site: Site, devices: Iterable[Device], filing: Filing | None = None
) -> dict[str, Any]:
    """REG-7 (799 Art. 14): the filing dossier as JSON-ready data — unit name, unit kind, unified social
    credit code, location, number and types of devices, retention period (the shortest of the system's
    devices: what the unit guarantees), plus the filing's own state."""
    mine = system_devices(unit.unit_id, site.site_id, devices)
    facts = current_facts(site, mine)
    out: dict[str, Any] = {
        "unit_name": unit.name,
        "unit_kind": unit.kind.value,
        "credit_code": unit.unit_id,
        "location": {
            "site_id": site.site_id,
            "site_name": site.name,
            "division_code": site.division_code,
            "address": site.address,
            "latitude": site.latitude,
            "longitude": site.longitude,
            "place_category": site.place_category.value,
        },
        "device_count": facts.device_count,
        "device_types": [
            {"type_code": code, "type_name": ids.TYPE_CODES.get(code, "unknown"), "count": n}
            for code, n in facts.device_types
        ],
        "retention_days": min(facts.retention_days) if facts.retention_days else None,
        "retention_periods_days": list(facts.retention_days),
    }
    if filing is not None:
        out["filing"] = {
            "state": filing.state.value,
            "in_use_on": filing.in_use_on.isoformat(),
            "due_on": filing.due_on.isoformat(),
            "filing_number": filing.filing_number,
            "filed_on": filing.filed_on.isoformat() if filing.filed_on else None,
            "changes": list(filing.changes),
        }
    return out
