"""Devices over gRPC: each rule refuses with its status, ErrorInfo reason, field and a denied audit record."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from vigil.registry.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_testing.calls import refused

from .conftest import GOV, HOSPITAL, SHOP, Registry, camera, device_id, hospital_site


async def register(reg: Registry, device: pb.Device, who: str = "hospital") -> pb.Device:
    return await reg.stub(who).RegisterDevice(pb.RegisterDeviceRequest(device=device))


async def assert_refused_and_audited(
    reg: Registry, call, code: grpc.StatusCode, rule: str | None, field: str, action: str
) -> None:
    async with refused() as err:
        await call
    assert (err[0].code, err[0].rule, err[0].field) == (code, rule, field)
    denied = [r for r in await reg.audits(action) if r.decision == 2]
    assert denied and denied[-1].rule_id == (rule or "")


async def test_register_stores_the_device_and_publishes_it_with_site_facts_and_retention(
    city: Registry,
) -> None:
    stored = await register(city, camera(1))
    assert stored.state == pb.DEVICE_STATE_REGISTERED and stored.retention_days == 30
    assert (stored.keepalive_interval_s, stored.keepalive_timeout_count) == (60, 3)
    (event,) = await city.events(type_=events_pb2.DeviceRegistered)
    d = event.message.device
    assert event.key == device_id(1)
    assert (d.site.place_category, d.site.funding, d.site.mandatory) == (
        pb.PLACE_CATEGORY_PUBLIC_SERVICES,
        pb.FUNDING_GOVERNMENT,
        True,
    )
    assert d.owner.name == HOSPITAL[1] and len(d.privacy_masks) == 1 and d.retention_days == 30
    (record,) = await city.audits("registry.device.register")
    assert record.decision == 1 and list(record.resources.device_ids) == [device_id(1)]


@pytest.mark.parametrize(
    "area", [pb.AREA_TYPE_TOILET, pb.AREA_TYPE_FITTING_ROOM, pb.AREA_TYPE_HOTEL_GUEST_ROOM]
)
async def test_register_refuses_a_device_in_a_forbidden_place_whoever_asks(city: Registry, area: int) -> None:
    await assert_refused_and_audited(
        city,
        register(city, camera(1, area_type=area), who="admin"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "REG-1",
        "device.area_type",
        "registry.device.register",
    )
    assert await city.events(type_=events_pb2.DeviceRegistered) == []


async def test_reg1_refusal_is_counted_even_for_a_caller_who_may_not_register(city: Registry) -> None:
    await assert_refused_and_audited(
        city,
        register(city, camera(1, area_type=pb.AREA_TYPE_TOILET), who="analyst"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "REG-1",
        "device.area_type",
        "registry.device.register",
    )


async def test_register_refuses_an_id_with_a_reserved_network_digit_naming_position_14(
    city: Registry,
) -> None:
    async with refused() as err:
        await register(city, camera(1, device_id=device_id(1, network="9")))
    assert (err[0].rule, err[0].field) == ("REG-10", "device.device_id")
    assert "position 14" in err[0].message


async def test_register_refuses_an_industry_code_that_does_not_fit_the_owner(city: Registry) -> None:
    async with refused() as err:
        await register(city, camera(1, device_id=device_id(1, industry="10")))
    assert err[0].rule == "REG-10" and "positions 9–10" in err[0].message


async def test_register_refuses_a_device_id_twice(city: Registry) -> None:
    await register(city, camera(1))
    async with refused() as err:
        await register(city, camera(1))
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.ALREADY_EXISTS, "REG-10")


async def test_register_refuses_a_unit_building_in_a_public_place_it_does_not_manage(city: Registry) -> None:
    await assert_refused_and_audited(
        city,
        register(city, camera(1, owner_unit_id=SHOP[0], device_id=device_id(1, industry="50")), who="shop"),
        grpc.StatusCode.PERMISSION_DENIED,
        "REG-3",
        "device.owner_unit_id",
        "registry.device.register",
    )


async def test_register_refuses_a_caller_acting_for_another_unit(city: Registry) -> None:
    async with refused() as err:
        await register(city, camera(1), who="shop")
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.PERMISSION_DENIED, "REG-3")


async def test_register_refuses_a_short_retention_profile_in_a_mandatory_place(city: Registry) -> None:
    await assert_refused_and_audited(
        city,
        register(city, camera(1, retention_profile="short")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "ARC-1",
        "device.retention_profile",
        "registry.device.register",
    )


async def test_a_sub_day_retention_profile_is_kept_as_a_fraction_outside_mandatory_places(
    city: Registry,
) -> None:
    await city.stub("admin").CreateSite(
        pb.CreateSiteRequest(
            site=hospital_site(
                site_id="shop-1",
                name="Corner shop",
                place_category=pb.PLACE_CATEGORY_NON_PUBLIC,
                managing_unit_id=SHOP[0],
                funding=pb.FUNDING_PRIVATE,
            )
        )
    )
    stored = await register(
        city,
        camera(1, site_id="shop-1", owner_unit_id=SHOP[0], retention_profile="hours", privacy_measures=""),
        who="shop",
    )
    assert stored.retention_days == pytest.approx(0.25)


async def test_register_refuses_a_keepalive_interval_under_one_second(city: Registry) -> None:
    async with refused() as err:
        await register(city, camera(1, keepalive_interval_s=0.5))
    assert (err[0].rule, err[0].field) == ("REG-11", "device.keepalive_interval_s")


async def test_register_refuses_a_mask_of_two_points(city: Registry) -> None:
    bad = camera(1)
    del bad.privacy_masks[0].points[2]
    async with refused() as err:
        await register(city, bad)
    assert (err[0].rule, err[0].field) == ("REG-5", "device.privacy_masks[0]")


async def test_register_accepts_any_vendor_name(city: Registry) -> None:
    stored = await register(city, camera(1, vendor="A brand nobody designated", model="Z"))
    assert stored.vendor == "A brand nobody designated"


async def test_register_names_an_unknown_site(city: Registry) -> None:
    async with refused() as err:
        await register(city, camera(1, site_id="nowhere"))
    assert (err[0].code, err[0].field) == (grpc.StatusCode.NOT_FOUND, "device.site_id")


async def test_activate_refuses_without_a_notice_sign(city: Registry) -> None:
    await register(city, camera(1, notice_sign_confirmed=False))
    await assert_refused_and_audited(
        city,
        city.stub("hospital").ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id(1))),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REG-6",
        "device.notice_sign_confirmed",
        "registry.device.activate",
    )


async def test_activate_refuses_without_privacy_measures_in_a_mandatory_place(city: Registry) -> None:
    await register(city, camera(1, privacy_measures=""))
    async with refused() as err:
        await city.stub("hospital").ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id(1)))
    assert (err[0].code, err[0].rule, err[0].field) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "REG-5",
        "device.privacy_measures",
    )


async def test_activate_refuses_near_a_military_zone_until_the_opinion_is_recorded(city: Registry) -> None:
    admin = city.stub("admin")
    await admin.UpdateSite(
        pb.UpdateSiteRequest(
            site=pb.Site(site_id="hosp-1", near_military_zone=True),
            update_mask=FieldMask(paths=["near_military_zone"]),
        )
    )
    await register(city, camera(1))
    async with refused() as err:
        await city.stub("hospital").ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id(1)))
    assert (err[0].rule, err[0].field) == ("REG-4", "site.military_opinion_ref")
    await admin.UpdateSite(
        pb.UpdateSiteRequest(
            site=pb.Site(site_id="hosp-1", military_opinion_ref="MIL-2025-7"),
            update_mask=FieldMask(paths=["military_opinion_ref"]),
        )
    )
    active = await city.stub("hospital").ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id(1)))
    assert active.state == pb.DEVICE_STATE_ACTIVE


async def test_activate_makes_the_device_active_with_an_event_and_a_deadline(city: Registry) -> None:
    await register(city, camera(1, keepalive_interval_s=10, keepalive_timeout_count=2))
    active = await city.stub("hospital").ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id(1)))
    assert active.state == pb.DEVICE_STATE_ACTIVE
    assert (
        active.offline_deadline.ToDatetime().timestamp() - active.activate_time.ToDatetime().timestamp() == 20
    )
    (event,) = await city.events(type_=events_pb2.DeviceActivated)
    assert event.message.device.state == pb.DEVICE_STATE_ACTIVE
    assert len(await city.audits("registry.device.activate")) == 1


async def test_moving_an_active_device_without_a_work_order_is_refused(city: Registry) -> None:
    await register(city, camera(1))
    await city.stub("hospital").ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id(1)))
    patch = pb.Device(device_id=device_id(1), direction_deg=180.0)
    await assert_refused_and_audited(
        city,
        city.stub("hospital").UpdateDevice(
            pb.UpdateDeviceRequest(device=patch, update_mask=FieldMask(paths=["direction_deg"]))
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REG-12",
        "device.direction_deg",
        "registry.device.update",
    )


async def test_moving_an_active_device_under_a_work_order_is_published(city: Registry) -> None:
    await register(city, camera(1))
    await city.stub("hospital").ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id(1)))
    patch = pb.Device(device_id=device_id(1), direction_deg=180.0)
    updated = await city.stub("hospital").UpdateDevice(
        pb.UpdateDeviceRequest(
            device=patch, update_mask=FieldMask(paths=["direction_deg"]), work_order_ref="WO-1"
        )
    )
    assert updated.direction_deg == 180.0
    (event,) = await city.events(type_=events_pb2.DeviceUpdated)
    assert (list(event.message.changed_fields), event.message.work_order_ref, event.message.moved) == (
        ["direction_deg"],
        "WO-1",
        True,
    )


async def test_update_refuses_an_output_only_path(city: Registry) -> None:
    await register(city, camera(1))
    async with refused() as err:
        await city.stub("hospital").UpdateDevice(
            pb.UpdateDeviceRequest(
                device=pb.Device(device_id=device_id(1), state=pb.DEVICE_STATE_ACTIVE),
                update_mask=FieldMask(paths=["state"]),
            )
        )
    assert (err[0].code, err[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, "update_mask")


async def test_decommission_needs_a_work_order(city: Registry) -> None:
    await register(city, camera(1))
    await assert_refused_and_audited(
        city,
        city.stub("hospital").DecommissionDevice(pb.DecommissionDeviceRequest(device_id=device_id(1))),
        grpc.StatusCode.FAILED_PRECONDITION,
        "REG-12",
        "work_order_ref",
        "registry.device.decommission",
    )
    done = await city.stub("hospital").DecommissionDevice(
        pb.DecommissionDeviceRequest(device_id=device_id(1), work_order_ref="WO-9")
    )
    assert done.state == pb.DEVICE_STATE_DECOMMISSIONED
    (event,) = await city.events(type_=events_pb2.DeviceDecommissioned)
    assert event.message.work_order_ref == "WO-9"


async def test_suspend_publishes_device_suspended(city: Registry) -> None:
    await register(city, camera(1))
    await city.stub("hospital").ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id(1)))
    suspended = await city.stub("hospital").SuspendDevice(
        pb.SuspendDeviceRequest(device_id=device_id(1), reason="repair")
    )
    assert suspended.state == pb.DEVICE_STATE_SUSPENDED
    (event,) = await city.events(type_=events_pb2.DeviceSuspended)
    assert event.message.reason == "repair"


async def test_get_device_is_refused_to_another_unit_and_served_to_an_auditor(city: Registry) -> None:
    await register(city, camera(1))
    async with refused() as err:
        await city.stub("shop").GetDevice(pb.GetDeviceRequest(device_id=device_id(1)))
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.PERMISSION_DENIED, "ACC-2")
    got = await city.stub("auditor").GetDevice(pb.GetDeviceRequest(device_id=device_id(1)))
    assert got.device_id == device_id(1)


async def test_list_devices_filters_and_pages(city: Registry) -> None:
    for serial in range(1, 6):
        await register(city, camera(serial))
    await city.stub("hospital").ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id(2)))
    officer = city.stub("officer")
    active = await officer.ListDevices(pb.ListDevicesRequest(state=pb.DEVICE_STATE_ACTIVE))
    assert [d.device_id for d in active.devices] == [device_id(2)]
    seen, token = [], ""
    while True:
        page = await officer.ListDevices(
            pb.ListDevicesRequest(page_size=2, page_token=token, division_prefix="3202", site_id="hosp-1")
        )
        seen += [d.device_id for d in page.devices]
        token = page.next_page_token
        if not token:
            break
    assert seen == [device_id(n) for n in range(1, 6)]
    other = await officer.ListDevices(pb.ListDevicesRequest(division_prefix="3203"))
    assert list(other.devices) == []
    hospital_only = await officer.ListDevices(pb.ListDevicesRequest(owner_unit_id=GOV[0]))
    assert list(hospital_only.devices) == []


async def test_a_unit_operator_lists_only_its_own_devices(city: Registry) -> None:
    await register(city, camera(1))
    async with refused() as err:
        await city.stub("shop").ListDevices(pb.ListDevicesRequest(owner_unit_id=HOSPITAL[0]))
    assert err[0].rule == "ACC-2"
    mine = await city.stub("shop").ListDevices(pb.ListDevicesRequest())
    assert list(mine.devices) == []
