"""Filings (REG-7) across the due date with the injected clock, the dossier, and the compliance summary."""

from __future__ import annotations

import json

import grpc

from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_testing.calls import refused

from .conftest import HOSPITAL, Registry, camera, device_id, hospital_site


async def in_use(reg: Registry, *serials: int) -> None:
    hospital = reg.stub("hospital")
    for serial in serials:
        await hospital.RegisterDevice(pb.RegisterDeviceRequest(device=camera(serial)))
        await hospital.ActivateDevice(pb.ActivateDeviceRequest(device_id=device_id(serial)))


def key(filing: pb.Filing) -> tuple[str, str]:
    return filing.unit_id, filing.site_id


async def test_no_filing_is_owed_before_the_system_is_in_use(city: Registry) -> None:
    async with refused() as err:
        await city.stub("officer").GetFiling(pb.GetFilingRequest(unit_id=HOSPITAL[0], site_id="hosp-1"))
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.NOT_FOUND, "REG-7")


async def test_a_filing_is_due_thirty_days_after_going_into_use_and_overdue_after(city: Registry) -> None:
    await in_use(city, 1)
    filing = await city.stub("officer").GetFiling(pb.GetFilingRequest(unit_id=HOSPITAL[0], site_id="hosp-1"))
    assert (filing.state, filing.in_use_on, filing.due_on) == (
        pb.FILING_STATE_DUE,
        "2025-06-01",
        "2025-07-01",
    )
    city.clock.advance(days=30)
    again = await city.stub("officer").GetFiling(pb.GetFilingRequest(unit_id=HOSPITAL[0], site_id="hosp-1"))
    assert again.state == pb.FILING_STATE_DUE
    city.clock.advance(days=1)
    late = await city.stub("officer").GetFiling(pb.GetFilingRequest(unit_id=HOSPITAL[0], site_id="hosp-1"))
    assert late.state == pb.FILING_STATE_OVERDUE


async def test_recording_a_filing_files_it_and_a_new_device_reopens_it(city: Registry) -> None:
    await in_use(city, 1)
    city.clock.advance(days=10)
    filed = await city.stub("officer").RecordFiling(
        pb.RecordFilingRequest(
            unit_id=HOSPITAL[0], site_id="hosp-1", filing_number="GA-2025-001", filed_on="2025-06-10"
        )
    )
    assert filed.state == pb.FILING_STATE_FILED and filed.filed_facts.device_count == 1
    (record,) = await city.audits("registry.filing.record")
    assert record.attributes["filing_number"] == "GA-2025-001"
    await in_use(city, 2)
    reopened = await city.stub("officer").GetFiling(
        pb.GetFilingRequest(unit_id=HOSPITAL[0], site_id="hosp-1")
    )
    assert reopened.state == pb.FILING_STATE_CHANGE_PENDING and list(reopened.changes) == [
        "device_count",
        "device_types",
    ]


async def test_another_unit_may_not_record_the_hospital_filing(city: Registry) -> None:
    await in_use(city, 1)
    async with refused() as err:
        await city.stub("shop").RecordFiling(
            pb.RecordFilingRequest(
                unit_id=HOSPITAL[0], site_id="hosp-1", filing_number="X", filed_on="2025-06-01"
            )
        )
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.PERMISSION_DENIED, "ACC-2")
    (record,) = await city.audits("registry.filing.record")
    assert record.decision == 2


async def test_list_filings_filters_by_state(city: Registry) -> None:
    await in_use(city, 1)
    city.clock.advance(days=45)
    overdue = await city.stub("auditor").ListFilings(pb.ListFilingsRequest(state=pb.FILING_STATE_OVERDUE))
    assert [key(f) for f in overdue.filings] == [(HOSPITAL[0], "hosp-1")]
    due = await city.stub("auditor").ListFilings(pb.ListFilingsRequest(state=pb.FILING_STATE_DUE))
    assert list(due.filings) == []


async def test_the_dossier_exports_the_filed_facts_as_json(city: Registry) -> None:
    await in_use(city, 1, 2)
    response = await city.stub("hospital").ExportFilingDossier(
        pb.ExportFilingDossierRequest(unit_id=HOSPITAL[0], site_id="hosp-1")
    )
    dossier = json.loads(response.dossier_json)
    assert (dossier["unit_name"], dossier["unit_kind"], dossier["credit_code"]) == (
        HOSPITAL[1],
        "UNIT_KIND_INSTITUTION",
        HOSPITAL[0],
    )
    assert dossier["device_count"] == 2 and dossier["retention_days"] == 30
    assert dossier["device_types"] == [{"type_code": "132", "type_name": "IP camera", "count": 2}]
    assert dossier["location"]["division_code"] == "320205"


async def test_the_compliance_summary_reports_gaps_overdue_filings_and_outages(city: Registry) -> None:
    admin = city.stub("admin")
    await admin.CreateSite(pb.CreateSiteRequest(site=hospital_site(site_id="hosp-2", name="Second hospital")))
    await in_use(city, 1)
    await city.stub("hospital").RegisterDevice(
        pb.RegisterDeviceRequest(device=camera(2, notice_sign_confirmed=False, privacy_measures=""))
    )
    city.clock.advance(seconds=181)
    await city.detector().status.mark_offline([device_id(1)])
    city.clock.advance(days=40)
    summary = await city.stub("auditor").GetComplianceSummary(pb.GetComplianceSummaryRequest())
    # Both hospitals now lack an active device (hosp-1's only active camera is offline).
    assert [g.site_id for g in summary.sites_without_active_device] == ["hosp-1", "hosp-2"]
    assert [key(f) for f in summary.overdue_filings] == [(HOSPITAL[0], "hosp-1")]
    assert [g.device_id for g in summary.devices_missing_privacy_measures] == [device_id(2)]
    assert [g.device_id for g in summary.devices_missing_notice_sign] == [device_id(2)]
    assert (summary.offline_devices_count, summary.outages_over_limit_count) == (1, 1)
    assert summary.offline_devices[0].over_limit and summary.outage_limit.seconds == 3 * 86400
    assert (summary.device_count, summary.active_device_count, summary.site_count) == (2, 0, 2)


async def test_a_unit_operator_may_not_read_the_compliance_summary(city: Registry) -> None:
    async with refused() as err:
        await city.stub("hospital").GetComplianceSummary(pb.GetComplianceSummaryRequest())
    assert (err[0].code, err[0].rule) == (grpc.StatusCode.PERMISSION_DENIED, "ACC-2")
