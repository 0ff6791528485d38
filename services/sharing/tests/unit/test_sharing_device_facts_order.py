"""newer_facts: what sharing holds of a device never goes back to older facts, whatever order they arrive in."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from vigil_sharing.domain.model import DeviceFacts, newer_facts

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)

# Registered at T0 at the metro station, government funded, not secret-related.
REGISTERED = DeviceFacts(
    device_id="32020501501320000001",
    owner_unit="91320200554682701W",
    site_id="metro-central",
    division_code="320205",
    place_category="PLACE_CATEGORY_TRANSPORT",
    funding="FUNDING_GOVERNMENT",
    secret_related=False,
    owner_unit_kind="UNIT_KIND_ENTERPRISE",
    device_time=T0,
    site_time=T0,
)
# The site marked secret-related at T0 + 2 s (a SiteUpdated, on the site's partition).
SITE_SECRET = replace(REGISTERED, secret_related=True, site_time=T0 + 2 * S)
# The device handed to another owner at T0 + 1 s (a DeviceUpdated, on the device's partition).
NEW_OWNER = replace(REGISTERED, owner_unit="113202000142871537", device_time=T0 + S, site_time=T0 + S)


def test_a_late_device_event_does_not_undo_a_newer_site_update() -> None:
    held = newer_facts(newer_facts(REGISTERED, SITE_SECRET), NEW_OWNER)

    assert held.secret_related is True  # ACC-6: the site's newer flag stands
    assert held.owner_unit == NEW_OWNER.owner_unit  # and the device's own newer fields are taken
    assert held.site_time == SITE_SECRET.site_time


def test_the_same_facts_in_the_other_order_give_the_same_result() -> None:
    one = newer_facts(newer_facts(REGISTERED, SITE_SECRET), NEW_OWNER)
    other = newer_facts(newer_facts(REGISTERED, NEW_OWNER), SITE_SECRET)

    assert one == other


def test_an_older_device_event_is_ignored() -> None:
    assert newer_facts(NEW_OWNER, REGISTERED) == NEW_OWNER


def test_a_device_event_newer_than_the_site_update_brings_its_own_site_facts() -> None:
    later = replace(REGISTERED, secret_related=False, device_time=T0 + 3 * S, site_time=T0 + 3 * S)

    assert newer_facts(SITE_SECRET, later) == later


def test_a_device_moved_to_another_site_takes_that_sites_facts() -> None:
    moved = replace(
        REGISTERED,
        site_id="hosp-1",
        place_category="PLACE_CATEGORY_PUBLIC_SERVICES",
        device_time=T0 + S,
        site_time=T0 + S,
    )

    held = newer_facts(SITE_SECRET, moved)  # the old site's later update is not the new site's

    assert held == moved


def test_facts_without_times_are_older_than_facts_with_them() -> None:
    untimed = replace(REGISTERED, owner_unit="someone-else", device_time=None, site_time=None)

    assert newer_facts(REGISTERED, untimed) == REGISTERED
    assert newer_facts(untimed, REGISTERED) == REGISTERED
    assert newer_facts(None, untimed) == untimed
    assert newer_facts(untimed, replace(untimed, owner_unit="x")).owner_unit == "x"  # untimed: the later wins
