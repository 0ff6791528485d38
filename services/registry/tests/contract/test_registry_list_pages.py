"""ListDevices' fast page path against GetDevice, and RegisterDevice's group commit under concurrency."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf.field_mask_pb2 import FieldMask

from vigil.audit.v1 import audit_record_pb2
from vigil.registry.v1 import events_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_registry.store import DeviceFilter, RegistryStore
from vigil_testing.calls import refused

from .conftest import Registry, camera, device_id, hospital_site

DIVISIONS = ("320205", "320211", "320213")


async def _city_in_three_divisions(reg: Registry) -> list[str]:
    """Three hospital sites in three division codes, three cameras each (ids interleaved across them)."""
    admin = reg.stub("admin")
    for k, division in enumerate(DIVISIONS[1:], start=2):
        await admin.CreateSite(
            pb.CreateSiteRequest(site=hospital_site(site_id=f"hosp-{k}", division_code=division))
        )
    ids = []
    for serial in range(1, 10):
        site = ("hosp-1", "hosp-2", "hosp-3")[serial % 3]
        await reg.stub("hospital").RegisterDevice(
            pb.RegisterDeviceRequest(device=camera(serial, site_id=site))
        )
        ids.append(device_id(serial))
    return ids


async def _pages(stub, request: pb.ListDevicesRequest) -> list[pb.Device]:
    seen: list[pb.Device] = []
    while True:
        page = await stub.ListDevices(request)
        seen += page.devices
        if not page.next_page_token:
            return seen
        request.page_token = page.next_page_token


async def test_a_listed_device_is_the_message_get_device_returns(city: Registry) -> None:
    ids = await _city_in_three_divisions(city)
    hospital = city.stub("hospital")
    await hospital.ActivateDevice(pb.ActivateDeviceRequest(device_id=ids[0]))
    await hospital.Keepalive(pb.KeepaliveRequest(device_id=ids[0]))
    await hospital.ActivateDevice(pb.ActivateDeviceRequest(device_id=ids[1]))
    officer = city.stub("officer")
    listed = await _pages(officer, pb.ListDevicesRequest(page_size=4))
    assert [d.device_id for d in listed] == sorted(ids)
    for device in listed:
        assert device == await officer.GetDevice(pb.GetDeviceRequest(device_id=device.device_id))


async def test_a_division_prefix_spanning_several_codes_pages_in_id_order(city: Registry) -> None:
    ids = await _city_in_three_divisions(city)
    officer = city.stub("officer")
    division_of = {
        i: (await officer.GetDevice(pb.GetDeviceRequest(device_id=i))).site.division_code for i in ids
    }
    assert len(set(division_of.values())) == 3
    for prefix in ("3202", "32021", "320211"):
        listed = await _pages(officer, pb.ListDevicesRequest(page_size=2, division_prefix=prefix))
        expected = sorted(i for i in ids if division_of[i].startswith(prefix))
        assert [d.device_id for d in listed] == expected, prefix
    assert list((await officer.ListDevices(pb.ListDevicesRequest(division_prefix="32029"))).devices) == []


async def test_a_listed_device_shows_its_sites_update(city: Registry) -> None:
    ids = await _city_in_three_divisions(city)
    officer = city.stub("officer")
    await officer.ListDevices(pb.ListDevicesRequest(division_prefix="320205"))  # the site is now cached
    await city.stub("admin").UpdateSite(
        pb.UpdateSiteRequest(
            site=pb.Site(site_id="hosp-1", name="Renamed Hospital"), update_mask=FieldMask(paths=["name"])
        )
    )
    listed = await officer.ListDevices(pb.ListDevicesRequest(site_id="hosp-1"))
    assert listed.devices and {d.site.name for d in listed.devices} == {"Renamed Hospital"}
    assert {d.device_id for d in listed.devices} <= set(ids)


async def test_a_site_in_a_new_division_is_listed_under_a_prefix_already_asked_for(city: Registry) -> None:
    ids = await _city_in_three_divisions(city)
    officer = city.stub("officer")
    assert len((await officer.ListDevices(pb.ListDevicesRequest(division_prefix="3202"))).devices) == len(ids)
    await city.stub("admin").CreateSite(
        pb.CreateSiteRequest(site=hospital_site(site_id="hosp-9", division_code="320299"))
    )
    await city.stub("hospital").RegisterDevice(pb.RegisterDeviceRequest(device=camera(99, site_id="hosp-9")))
    listed = await _pages(officer, pb.ListDevicesRequest(page_size=4, division_prefix="3202"))
    assert [d.device_id for d in listed] == sorted([*ids, device_id(99)])


async def test_concurrent_registrations_each_commit_with_their_event_or_fail_alone(city: Registry) -> None:
    hospital = city.stub("hospital")
    calls = [hospital.RegisterDevice(pb.RegisterDeviceRequest(device=camera(n))) for n in range(1, 21)]
    calls.append(hospital.RegisterDevice(pb.RegisterDeviceRequest(device=camera(5))))  # a duplicate
    calls.append(
        hospital.RegisterDevice(pb.RegisterDeviceRequest(device=camera(30, site_id="nowhere")))
    )  # an unknown site
    results = await asyncio.gather(*calls, return_exceptions=True)
    failed = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert sorted(e.code().name for e in failed) == ["ALREADY_EXISTS", "NOT_FOUND"]
    registered = await city.events(type_=events_pb2.DeviceRegistered)
    assert sorted(e.key for e in registered) == sorted(device_id(n) for n in range(1, 21))
    audits = await city.audits("registry.device.register")
    decisions = [a.decision for a in audits]
    assert decisions.count(audit_record_pb2.DECISION_ALLOWED) == 20
    assert decisions.count(audit_record_pb2.DECISION_DENIED) == 2
    async with refused() as err:
        await hospital.RegisterDevice(pb.RegisterDeviceRequest(device=camera(1)))
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.ALREADY_EXISTS, "REG-10")


async def test_a_page_read_in_one_thread_hand_off_equals_the_page_a_read_session_reads(
    city: Registry,
) -> None:
    # ListDevices reads on the SQLite worker thread when it has one and through a read session's
    # run_sync otherwise (PostgreSQL): both runners must give the same page, sites and owners.
    await _city_in_three_divisions(city)
    ctx = city.context
    assert ctx is not None and ctx.transactions is not None and ctx.read_sessions is not None
    for f in (DeviceFilter(division_prefix="3202"), DeviceFilter(division_prefix="320211"), DeviceFilter()):
        threaded = await RegistryStore().list_device_rows(ctx.transactions.read, f, after="", limit=5)
        async with ctx.read_sessions() as s:
            in_session = await RegistryStore().list_device_rows(s.run_sync, f, after="", limit=5)
        assert [tuple(r) for r in threaded.rows] == [tuple(r) for r in in_session.rows]
        assert (threaded.sites, threaded.units) == (in_session.sites, in_session.units)
        assert len(threaded.rows) == (3 if f.division_prefix == "320211" else 5)
