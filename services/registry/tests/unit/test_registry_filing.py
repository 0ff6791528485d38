"""REG-7 filing: due in use + 30 days, overdue after, reopened when filed facts change, the dossier."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest

from vigil_kit.errors import FailedPrecondition, InvalidArgument
from vigil_registry.domain import filing
from vigil_registry.domain.model import DeviceState, FilingState

IN_USE = date(2025, 6, 1)


@pytest.fixture
def site(world):
    return world.site(in_use_on=IN_USE)


@pytest.fixture
def cams(world):
    base = world.device(state=DeviceState.ACTIVE, retention=timedelta(days=30))
    return [
        base,
        replace(base, device_id="32020501501310000002", name="Lobby camera"),
    ]


def filed(site, cams, on=IN_USE + timedelta(days=10)):
    opened = filing.open_filing(cams[0].owner_unit_id, site, cams, on)
    facts = filing.current_facts(site, cams)
    return filing.record_filing(opened, facts, filing_number="GA-3202-0042", filed_on=on, today=on)


def test_the_due_date_is_thirty_days_after_going_into_use() -> None:
    assert filing.due_date(date(2025, 1, 15)) == date(2025, 2, 14)


def test_a_filing_is_due_up_to_and_including_the_due_date(world, site, cams) -> None:
    f = filing.open_filing(world.hospital.unit_id, site, cams, IN_USE + timedelta(days=30))
    assert (f.state, f.due_on) == (FilingState.DUE, date(2025, 7, 1))


def test_an_unfiled_system_is_overdue_the_day_after_the_due_date(world, site, cams) -> None:
    f = filing.open_filing(world.hospital.unit_id, site, cams, IN_USE + timedelta(days=31))
    assert f.state == FilingState.OVERDUE


def test_without_a_recorded_in_use_date_the_first_activation_starts_the_clock(world, cams) -> None:
    first = replace(cams[0], activated_at=datetime(2025, 5, 20, 9, 30, tzinfo=world.clock.now.tzinfo))
    f = filing.open_filing(world.hospital.unit_id, world.site(), [first, cams[1]], date(2025, 6, 1))
    assert (f.in_use_on, f.due_on) == (date(2025, 5, 20), date(2025, 6, 19))


def test_nothing_is_owed_before_the_system_goes_into_use(world, cams) -> None:
    assert filing.open_filing(world.hospital.unit_id, world.site(), cams, IN_USE) is None


def test_recording_the_filing_makes_it_filed(site, cams) -> None:
    f = filed(site, cams)
    assert (f.state, f.filing_number, f.filed_on) == (FilingState.FILED, "GA-3202-0042", date(2025, 6, 11))


def test_a_filed_system_stays_filed_past_the_due_date(site, cams) -> None:
    f = filed(site, cams)
    later = filing.evaluate(f, filing.current_facts(site, cams), IN_USE + timedelta(days=400))
    assert later.state == FilingState.FILED


def test_filing_needs_a_number(site, cams) -> None:
    opened = filing.open_filing(cams[0].owner_unit_id, site, cams, IN_USE)
    with pytest.raises(InvalidArgument) as err:
        filing.record_filing(
            opened, filing.current_facts(site, cams), filing_number=" ", filed_on=IN_USE, today=IN_USE
        )
    assert (err.value.rule, err.value.field) == ("REG-7", "filing.filing_number")


def test_filing_cannot_be_dated_in_the_future(site, cams) -> None:
    opened = filing.open_filing(cams[0].owner_unit_id, site, cams, IN_USE)
    with pytest.raises(InvalidArgument):
        filing.record_filing(
            opened,
            filing.current_facts(site, cams),
            filing_number="N",
            filed_on=IN_USE + timedelta(days=1),
            today=IN_USE,
        )


def test_an_empty_system_cannot_be_filed(site, cams) -> None:
    opened = filing.open_filing(cams[0].owner_unit_id, site, cams, IN_USE)
    with pytest.raises(FailedPrecondition):
        filing.record_filing(
            opened, filing.current_facts(site, []), filing_number="N", filed_on=IN_USE, today=IN_USE
        )


@pytest.mark.parametrize(
    ("change", "fact"),
    [
        ("add_device", "device_count"),
        ("decommission", "device_count"),
        ("retype", "device_types"),
        ("move_site", "location"),
        ("retention", "retention"),
    ],
)
def test_a_change_to_a_filed_fact_reopens_the_filing(world, site, cams, change: str, fact: str) -> None:
    f = filed(site, cams)
    now_site, now_cams = site, list(cams)
    if change == "add_device":
        now_cams.append(replace(cams[0], device_id="32020501501320000003"))
    elif change == "decommission":
        now_cams[1] = replace(cams[1], state=DeviceState.DECOMMISSIONED)
    elif change == "retype":
        now_cams[1] = replace(cams[1], device_id="32020501501320000002")
    elif change == "move_site":
        now_site = replace(site, address="2 Hospital Road")
    else:
        now_cams[0] = replace(cams[0], retention=timedelta(days=90))
    mine = filing.system_devices(world.hospital.unit_id, now_site.site_id, now_cams)
    reopened = filing.evaluate(f, filing.current_facts(now_site, mine), IN_USE + timedelta(days=60))
    assert reopened.state == FilingState.CHANGE_PENDING
    assert fact in reopened.changes


def test_a_change_that_touches_no_filed_fact_keeps_it_filed(world, site, cams) -> None:
    f = filed(site, cams)
    renamed = [replace(cams[0], name="Renamed", vendor="Other"), cams[1]]
    assert filing.evaluate(f, filing.current_facts(site, renamed), IN_USE).state == FilingState.FILED


def test_refiling_after_a_change_makes_it_filed_again(world, site, cams) -> None:
    f = filed(site, cams)
    more = [*cams, replace(cams[0], device_id="32020501501320000003")]
    facts = filing.current_facts(site, more)
    assert filing.evaluate(f, facts, IN_USE + timedelta(days=60)).state == FilingState.CHANGE_PENDING
    again = filing.record_filing(
        f,
        facts,
        filing_number="GA-3202-0042-1",
        filed_on=IN_USE + timedelta(days=60),
        today=IN_USE + timedelta(days=60),
    )
    assert (again.state, again.changes, again.filed_facts.device_count) == (FilingState.FILED, (), 3)


def test_other_units_devices_are_not_part_of_the_system(world, site, cams) -> None:
    theirs = replace(cams[0], device_id="32020501501320000009", owner_unit_id=world.shop.unit_id)
    assert len(filing.system_devices(world.hospital.unit_id, site.site_id, [*cams, theirs])) == 2


def test_the_dossier_holds_the_filed_facts_and_is_json(world, site, cams) -> None:
    f = filed(site, cams)
    doc = filing.dossier(world.hospital, site, cams, f)
    assert json.loads(json.dumps(doc)) == doc
    assert (doc["unit_name"], doc["unit_kind"], doc["credit_code"]) == (
        "First People's Hospital",
        "UNIT_KIND_INSTITUTION",
        "12320200MB0000003X",
    )
    assert doc["location"]["division_code"] == "320205"
    assert doc["device_count"] == 2
    assert doc["device_types"] == [
        {"type_code": "131", "type_name": "camera", "count": 1},
        {"type_code": "132", "type_name": "IP camera", "count": 1},
    ]
    assert doc["retention_days"] == 30
    assert doc["filing"]["state"] == "FILING_STATE_FILED"
