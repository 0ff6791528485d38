"""The compliance report on the real stack (AUD-3): a known history seeded through registry, ingest, sharing
and archive is found in the audit service's report, each finding exactly once, with a section per finding
in the self-contained HTML page and every cited audit record provable against the log."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest

from vigil.archive.v1 import archive_service_pb2 as apb
from vigil.archive.v1 import archive_service_pb2_grpc as apb_grpc
from vigil.audit.v1 import audit_service_pb2, audit_service_pb2_grpc
from vigil.audit.v1 import compliance_service_pb2 as cpb
from vigil.audit.v1 import compliance_service_pb2_grpc as cpb_grpc
from vigil.registry.v1 import registry_service_pb2 as rpb
from vigil.registry.v1 import registry_service_pb2_grpc as rpb_grpc
from vigil_archive.codec import time_range
from vigil_audit.domain.sth import load_public_key
from vigil_cli.audit_cmds import check_inclusion
from vigil_cli.compliance_cmds import render_html, report_json
from vigil_ingest.domain.signing import generate_device_key
from vigil_ingest.video import encode_segment
from vigil_kit.auth import TokenIssuer
from vigil_kit.grpc_client import make_channel
from vigil_testing.platform import (
    HOSPITAL,
    Uploader,
    admin_token,
    gateway_token,
    new_device_id,
    register_active_device,
    ts_payload,
)
from vigil_testing.poll import apoll_until
from vigil_testing.services import start_together

pytestmark = pytest.mark.slow

SEGMENT = timedelta(seconds=1)
EXPECTED = (
    "FORBIDDEN_PLACE",
    "MISSING_NOTICE_SIGN",
    "OVERDUE_FILING",
    "RECORDING_GAP",
    "BULK_EXPORT",
    "NIGHT_ACCESS",
)


def _auditor(issuer: TokenIssuer) -> str:
    return issuer.mint(
        sub="user:auditor",
        name="auditor",
        unit="11320200MB0000001T",
        unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
        roles=["ROLE_AUDITOR"],
    )


@pytest.fixture
def stack(vigil_service, issuer: TokenIssuer, s3_server, fresh_kafka_broker):
    # A broker of its own: the audit log then holds this test's history only.
    kafka = fresh_kafka_broker
    registry = vigil_service("registry", start=False, kafka=kafka, JURISDICTION_PREFIXES='["3202"]')
    ingest = vigil_service(
        "ingest",
        start=False,
        kafka=kafka,
        REGISTRY_ADDR=registry.address,
        SERVICE_TOKEN=issuer.mint_service("ingest"),
    )
    sharing = vigil_service(
        "sharing",
        start=False,
        kafka=kafka,
        REGISTRY_ADDR=registry.address,
        SERVICE_TOKEN=issuer.mint_service("sharing"),
    )
    archive = vigil_service(
        "archive",
        start=False,
        kafka=kafka,
        REGISTRY_ADDR=registry.address,
        SHARING_ADDR=sharing.address,
        SERVICE_TOKEN=issuer.mint_service("archive"),
    )
    hour = datetime.now(UTC).hour
    audit = vigil_service(
        "audit",
        start=False,
        kafka=kafka,
        REGISTRY_ADDR=registry.address,
        ARCHIVE_ADDR=archive.address,
        SERVICE_TOKEN=issuer.mint_service("audit"),
        # "Now" is night: the hour before to two hours after it, in UTC.
        COMPLIANCE_UTC_OFFSET_HOURS=0,
        COMPLIANCE_NIGHT_START_HOUR=(hour - 1) % 24,
        COMPLIANCE_NIGHT_END_HOUR=(hour + 2) % 24,
        COMPLIANCE_BULK_EXPORT_SEGMENTS=2,
    )
    start_together(registry, ingest, sharing, archive, audit)
    return registry, ingest, sharing, archive, audit


async def _seed(stack, issuer: TokenIssuer) -> dict[str, tuple[str, ...]]:
    """The known history; returns each expected finding's subject."""
    registry, ingest, _sharing, archive, _audit = stack
    admin = admin_token(issuer)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    # A recorded device with a recording gap (ARC-5): segments at 0 s, 1 s, then 60 s.
    gap_device, gap_key = new_device_id(), generate_device_key()
    await register_active_device(registry.address, admin, gap_device, gap_key.public_key_b64)
    uploader = Uploader(ingest.address, gateway_token(issuer), gap_device, gap_key)
    for seq, offset in enumerate((0, 1, 60), start=1):
        await uploader.upload(ts_payload(seq), t0 + timedelta(seconds=offset), seq, SEGMENT)

    # A device exported in bulk at night by its owner unit's operator (ACC-1).
    export_device, export_key = new_device_id(), generate_device_key()
    await register_active_device(registry.address, admin, export_device, export_key.public_key_b64)
    exporter = Uploader(ingest.address, gateway_token(issuer), export_device, export_key)
    for i in range(2):
        data = encode_segment(export_device, t0 + i * SEGMENT, seconds=1, size=(160, 96), bitrate=200_000)
        await exporter.upload(data, t0 + i * SEGMENT, i + 1, SEGMENT)

    async with make_channel(archive.address, token=gateway_token(issuer), default_timeout_s=60) as channel:
        stub = apb_grpc.ArchiveServiceStub(channel)

        async def export() -> apb.ExportedClip | None:
            request = apb.ExportClipRequest(
                device_id=export_device,
                range=time_range(t0, t0 + timedelta(minutes=1)),
                purpose="incident review",
            )
            try:
                progress = [m async for m in stub.ExportClip(request)]
            except grpc.aio.AioRpcError:
                return None  # the archive or sharing has not indexed / heard of the device yet
            done = progress[-1].done
            return done if done.segment_count == 2 else None

        await apoll_until(export, timeout=60, what="the night-time bulk export")

    async with make_channel(registry.address, token=admin, default_timeout_s=30) as channel:
        stub = rpb_grpc.RegistryServiceStub(channel)
        # REG-6: a public-place device registered without a confirmed notice sign (so never active).
        unsigned = new_device_id()
        await stub.RegisterDevice(
            rpb.RegisterDeviceRequest(
                device=rpb.Device(
                    device_id=unsigned,
                    site_id="hosp-1",
                    owner_unit_id=HOSPITAL[0],
                    name="Side door",
                    area_type=rpb.AREA_TYPE_ENTRANCE,
                    latitude=31.57,
                    longitude=120.3,
                    direction_deg=45,
                    capture_range_m=15,
                    notice_sign_confirmed=False,
                    privacy_measures="none needed: faces a car park",
                )
            )
        )
        # REG-1: a camera in a changing room, refused.
        forbidden = new_device_id()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.RegisterDevice(
                rpb.RegisterDeviceRequest(
                    device=rpb.Device(
                        device_id=forbidden,
                        site_id="hosp-1",
                        owner_unit_id=HOSPITAL[0],
                        name="Changing room",
                        area_type=rpb.AREA_TYPE_CHANGING_ROOM,
                        notice_sign_confirmed=True,
                        privacy_measures="-",
                    )
                )
            )
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        # REG-7: a system in use since 60 days ago and never filed.
        in_use = (date.today() - timedelta(days=60)).isoformat()
        await stub.CreateSite(
            rpb.CreateSiteRequest(
                site=rpb.Site(
                    site_id="hosp-annex",
                    name="Hospital annex",
                    division_code="320205",
                    place_category=rpb.PLACE_CATEGORY_PUBLIC_SERVICES,
                    managing_unit_id=HOSPITAL[0],
                    funding=rpb.FUNDING_GOVERNMENT,
                    in_use_on=in_use,
                    built_on=in_use,
                    designed_on=in_use,
                )
            )
        )
    await register_active_device(
        registry.address, admin, new_device_id(), generate_device_key().public_key_b64, site_id="hosp-annex"
    )
    subject = f"gateway:{HOSPITAL[0]}"
    return {
        "FORBIDDEN_PLACE": (forbidden,),
        "MISSING_NOTICE_SIGN": (unsigned,),
        "OVERDUE_FILING": (HOSPITAL[0], "hosp-annex"),
        "RECORDING_GAP": (gap_device,),
        "BULK_EXPORT": (subject,),
        "NIGHT_ACCESS": (subject,),
    }


async def test_a_seeded_history_yields_each_finding_once_with_html_sections_and_provable_evidence(
    stack, issuer: TokenIssuer
) -> None:
    audit = stack[-1]
    subjects = await _seed(stack, issuer)
    start = datetime.now(UTC) - timedelta(hours=1)
    async with make_channel(audit.address, token=_auditor(issuer), default_timeout_s=60) as channel:
        compliance = cpb_grpc.ComplianceServiceStub(channel)
        log = audit_service_pb2_grpc.AuditServiceStub(channel)

        async def complete() -> cpb.ComplianceReport | None:
            window = time_range(start, datetime.now(UTC) + timedelta(minutes=1))
            report = await compliance.GetComplianceReport(cpb.GetComplianceReportRequest(range=window))
            kinds = {cpb.FindingKind.Name(f.kind).removeprefix("FINDING_KIND_") for f in report.findings}
            return report if kinds >= set(EXPECTED) and not report.notes else None

        report = await apoll_until(complete, timeout=90, what="every seeded finding in the report")
        found = json.loads(report_json(report))["findings"]
        for kind in EXPECTED:
            of_kind = [f for f in found if f["kind"] == f"FINDING_KIND_{kind}"]
            assert len(of_kind) == 1, (kind, of_kind)
            assert tuple(of_kind[0]["subject_ids"]) == subjects[kind], (kind, of_kind)
            assert of_kind[0]["evidence_record_ids"], kind

        page = render_html(report)
        for kind in EXPECTED:
            assert f'<section id="{kind}">' in page
        assert not re.search(r"(?i)https?:|//[a-z0-9]|src=|@import|url\(", page)
        assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', page))

        key = load_public_key(
            (await log.GetPublicKey(audit_service_pb2.GetPublicKeyRequest())).public_key_pem
        )
        cited = {
            r
            for f in found
            if f["kind"].removeprefix("FINDING_KIND_") in EXPECTED
            for r in f["evidence_record_ids"]
        }
        for record_id in sorted(cited):

            async def proof(record_id: str = record_id) -> audit_service_pb2.InclusionProof | None:
                try:
                    return await log.GetInclusionProof(
                        audit_service_pb2.GetInclusionProofRequest(record_id=record_id)
                    )
                except grpc.aio.AioRpcError:
                    return None  # appended but not yet under a signed tree head

            proven = await apoll_until(proof, timeout=30, what=f"a proof of record {record_id}")
            assert check_inclusion(proven, record_id, key) is None, record_id
