"""Vigil end to end, as its users see it, on the real stack (registry, ingest, sharing, archive and audit
processes, the broker and S3):

a hospital's cameras are registered and activated → they upload real, signed H.264 segments → the
archive indexes them under retention → the transport department asks for playback and the hospital
approves → the manifest's segments download and decode → every step is in the audit log and proves
against a signed tree head → the hospital revokes and access stops within a second → a partner
subscribed to the lobby camera's events receives the lobby's and none of the store room's → footage of
a short-retention camera expires, except what a legal hold keeps → an early-deletion attempt shows in
the compliance report.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import av
import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.field_mask_pb2 import FieldMask

from vigil.archive.v1 import archive_service_pb2 as apb
from vigil.archive.v1 import archive_service_pb2_grpc as apb_grpc
from vigil.audit.v1 import audit_service_pb2 as audpb
from vigil.audit.v1 import audit_service_pb2_grpc as aud_grpc
from vigil.audit.v1 import compliance_service_pb2 as cpb
from vigil.audit.v1 import compliance_service_pb2_grpc as c_grpc
from vigil.registry.v1 import events_pb2 as reg_events
from vigil.registry.v1 import registry_service_pb2 as rpb
from vigil.registry.v1 import registry_service_pb2_grpc as rpb_grpc
from vigil.sharing.v1 import sharing_service_pb2 as spb
from vigil.sharing.v1 import sharing_service_pb2_grpc as s_grpc
from vigil_archive.codec import time_range
from vigil_cli.audit_cmds import check_inclusion, fetch_public_key
from vigil_ingest.domain.signing import generate_device_key
from vigil_ingest.video import encode_segment
from vigil_kit import cloudevents, topics
from vigil_kit.auth import TokenIssuer
from vigil_kit.grpc_client import make_channel
from vigil_sharing.fanout import FANOUT_GROUP
from vigil_sharing.partner import device_id_of
from vigil_testing.broker import committed_past, read_topic
from vigil_testing.platform import (
    PARTNER,
    Uploader,
    admin_token,
    gateway_token,
    new_device_id,
    partner_subscription,
    partner_token,
    register_active_device,
)
from vigil_testing.poll import apoll_until
from vigil_testing.services import start_together

pytestmark = pytest.mark.slow

TRANSPORT = ("113202000142871537", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
PSB = ("113202000142870306", "UNIT_KIND_PUBLIC_SECURITY_ORGAN")
SEGMENT = timedelta(seconds=1)
BLINK_DAYS = 12 / 86_400  # a 12-second retention profile, for a camera outside the mandatory categories
UPDATED = reg_events.DeviceUpdated.DESCRIPTOR.full_name
# The fan-out's faust group joins ~13 s after sharing starts; a loaded machine takes longer.
DELIVERY_S = 120


def _token(issuer: TokenIssuer, who: str, unit: tuple[str, str], role: str) -> str:
    return issuer.mint(sub=f"user:{who}", name=who, unit=unit[0], unit_kind=unit[1], roles=[role])


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.fixture
def city(vigil_service, issuer: TokenIssuer, s3_server, tmp_path):
    key = tmp_path / "audit.pem"
    key.write_bytes(
        Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    registry = vigil_service(
        "registry",
        start=False,
        JURISDICTION_PREFIXES='["3202"]',
        RETENTION_PROFILES_DAYS=f'{{"standard": 30, "extended": 90, "important": 730, "blink": {BLINK_DAYS}}}',
    )
    common = {"REGISTRY_ADDR": registry.address}
    # MIN_LOCK_S: the store room's short profile applies as is (ingest otherwise locks for an hour at least).
    ingest = vigil_service(
        "ingest",
        start=False,
        SERVICE_TOKEN=issuer.mint_service("ingest"),
        MIN_LOCK_S="1",
        s3=s3_server,
        **common,
    )
    sharing = vigil_service("sharing", start=False, SERVICE_TOKEN=issuer.mint_service("sharing"), **common)
    archive = vigil_service(
        "archive",
        start=False,
        SERVICE_TOKEN=issuer.mint_service("archive"),
        SHARING_ADDR=sharing.address,
        SWEEP_INTERVAL_S="1",
        s3=s3_server,
        **common,
    )
    audit = vigil_service(
        "audit",
        start=False,
        SERVICE_TOKEN=issuer.mint_service("audit"),
        SIGNING_KEY_FILE=str(key),
        ARCHIVE_ADDR=archive.address,
        **common,
    )
    start_together(registry, ingest, sharing, archive, audit)
    return registry, ingest, sharing, archive, audit


async def test_a_day_in_the_city_from_registration_to_compliance(city, issuer: TokenIssuer) -> None:
    registry, ingest, sharing, archive, audit = city
    admin = admin_token(issuer)
    hospital = gateway_token(
        issuer
    )  # the hospital's operator: uploads through its gateway, decides on its devices
    analyst = _token(issuer, "analyst", TRANSPORT, "ROLE_DEPARTMENT_ANALYST")
    officer = _token(issuer, "officer", PSB, "ROLE_PUBLIC_SECURITY_OFFICER")
    auditor = _token(
        issuer, "auditor", ("11320200MB0000001T", "UNIT_KIND_GOVERNMENT_DEPARTMENT"), "ROLE_AUDITOR"
    )

    # Registered and activated; the lobby camera keeps footage 30 days, the store-room one 12 seconds.
    lobby, store_room = new_device_id(), new_device_id()
    keys = {lobby: generate_device_key(), store_room: generate_device_key()}
    await register_active_device(registry.address, admin, lobby, keys[lobby].public_key_b64)
    await register_active_device(
        registry.address,
        admin,
        store_room,
        keys[store_room].public_key_b64,
        site_id="hosp-stores",
        place_category=rpb.PLACE_CATEGORY_NON_PUBLIC,
        retention_profile="blink",
    )

    # The simulators upload real segments: the lobby's from five minutes ago, the store room's now
    # (its 12 s retention runs from capture). An officer has put the store room's first second under a
    # legal hold before its footage arrives: the archive applies it as the segment is indexed.
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    t1 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    async with make_channel(archive.address, token=officer, default_timeout_s=30) as officer_archive:
        await apb_grpc.ArchiveServiceStub(officer_archive).PlaceHold(
            apb.PlaceHoldRequest(
                device_ids=[store_room],
                range=time_range(t1, t1 + SEGMENT),
                case_reference="CASE-2026-0117",
                reason="evidence of a break-in",
            )
        )
    clips: dict[str, list[bytes]] = {}
    versions: dict[str, list[str]] = {}
    for device, start0 in ((lobby, t0), (store_room, t1)):
        uploader = Uploader(ingest.address, hospital, device, keys[device])
        clips[device], versions[device] = [], []
        for i in range(3):
            start = start0 + i * SEGMENT
            data = encode_segment(device, start, seconds=1, size=(160, 96), bitrate=150_000)
            reply = await uploader.upload(data, start, i + 1, SEGMENT)
            clips[device].append(data)
            versions[device].append(reply.segment.version_id)
    window = time_range(t0, t0 + timedelta(minutes=1))

    async with (
        make_channel(archive.address, token=admin, default_timeout_s=30) as admin_archive,
        make_channel(archive.address, token=analyst, default_timeout_s=30) as analyst_archive,
        make_channel(sharing.address, token=analyst) as analyst_sharing,
        make_channel(sharing.address, token=hospital) as hospital_sharing,
        make_channel(audit.address, token=auditor, default_timeout_s=30) as auditor_audit,
    ):
        archive_admin = apb_grpc.ArchiveServiceStub(admin_archive)

        async def indexed(device: str) -> list[apb.Segment] | None:
            found = await archive_admin.FindSegments(apb.FindSegmentsRequest(device_id=device, range=window))
            return list(found.segments) if len(found.segments) == 3 else None

        # Archived under retention: the index holds each version with the retain-until ingest stamped.
        lobby_segments = await apoll_until(lambda: indexed(lobby), timeout=30, what="the lobby's footage")
        assert all(
            s.retain_until.ToDatetime(tzinfo=UTC) > datetime.now(UTC) + timedelta(days=29)
            for s in lobby_segments
        )

        # A department asks, the owning unit approves.
        request = await s_grpc.SharingServiceStub(analyst_sharing).CreateAccessRequest(
            spb.CreateAccessRequestRequest(
                access_request=spb.AccessRequest(
                    purpose=spb.PURPOSE_TRAFFIC_MANAGEMENT,
                    legal_basis="ambulance access study",
                    scope=spb.Scope(device_ids=[lobby]),
                    actions=[spb.ACTION_PLAYBACK],
                    footage_window=time_range(t0 - timedelta(hours=1), t0 + timedelta(hours=1)),
                    valid_until=time_range(t0, datetime.now(UTC) + timedelta(days=1)).end_time,
                )
            )
        )
        await s_grpc.SharingServiceStub(hospital_sharing).ApproveAccessRequest(
            spb.ApproveAccessRequestRequest(
                request_id=request.request_id, reason="study agreed with the hospital"
            )
        )

        # The manifest's segments download by version and decode.
        viewer = apb_grpc.ArchiveServiceStub(analyst_archive)
        manifest = await apoll_until(
            lambda: _manifest(viewer, lobby, window), timeout=30, what="a manifest under the grant"
        )
        assert [s.version_id for s in manifest.segments] == [s.version_id for s in lobby_segments]
        for url, data in zip(manifest.urls, clips[lobby], strict=True):
            body = await asyncio.to_thread(_download, url)
            assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
            with av.open(io.BytesIO(body)) as container:
                assert sum(1 for _ in container.decode(video=0)) == 25

        # The audit log proves every step: uploads, the request, its approval, the manifest.
        log = aud_grpc.AuditServiceStub(auditor_audit)
        key = await fetch_public_key(log)
        wanted = {
            "ingest.segment.upload",
            "sharing.request.create",
            "sharing.request.approve",
            "archive.playback.manifest",
        }

        async def steps_logged() -> list[audpb.LogEntry] | None:
            found = await log.QueryRecords(audpb.QueryRecordsRequest(device_id=lobby, page_size=200))
            actions = {e.record.action for e in found.entries}
            return list(found.entries) if wanted <= actions else None

        entries = await apoll_until(steps_logged, timeout=30, what="every step in the audit log")
        for entry in entries:
            if entry.record.action in wanted:
                proof = await apoll_until(
                    lambda e=entry: _proof(log, e.record.record_id),
                    timeout=10,
                    what="a signed head covering it",
                )
                assert check_inclusion(proof, entry.record.record_id, key) is None, entry.record.action

        # The hospital revokes: a new manifest is refused within a second.
        await s_grpc.SharingServiceStub(hospital_sharing).RevokeGrant(
            spb.RevokeGrantRequest(grant_id=request.request_id)
        )
        revoked = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await viewer.GetPlaybackManifest(apb.GetPlaybackManifestRequest(device_id=lobby, range=window))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert time.monotonic() - revoked <= 1.0

        # A partner subscribes to the lobby camera's events under a grant the hospital approves; then
        # the administrator renames the store room's camera and the lobby's. The partner's topic gets
        # the lobby's change, unchanged, and — once the fan-out is past the store room's — not that one.
        await partner_subscription(
            sharing.address,
            partner_token(issuer),
            hospital,
            grant_devices=[lobby],
            scope_devices=[lobby],
            event_types=[UPDATED],
            legal_basis="hospital entrance status feed, agreement 2026-17",
        )
        async with make_channel(registry.address, token=admin) as admin_registry:
            for device, name in ((store_room, "Store room, east door"), (lobby, "Lobby, main entrance")):
                await rpb_grpc.RegistryServiceStub(admin_registry).UpdateDevice(
                    rpb.UpdateDeviceRequest(
                        device=rpb.Device(device_id=device, name=name), update_mask=FieldMask(paths=["name"])
                    )
                )
        bootstrap = sharing.kafka_bootstrap
        renamed = await apoll_until(
            lambda: _renames(bootstrap, {store_room: "Store room, east door", lobby: "Lobby, main entrance"}),
            timeout=30,
            what="both renames on the registry's topic",
        )
        partner_topic = topics.partner_topic(PARTNER[0])

        async def fanned_out() -> list[cloudevents.CloudEvent] | None:
            if not await committed_past(bootstrap, FANOUT_GROUP, renamed[store_room]):
                return None
            copies = await read_topic(bootstrap, partner_topic)
            return copies if renamed[lobby].id in {c.id for c in copies} else None

        copies = await apoll_until(
            fanned_out, timeout=DELIVERY_S, interval=0.5, what="the fan-out past both renames"
        )
        copy = next(c for c in copies if c.id == renamed[lobby].id)
        assert (copy.type, copy.data) == (UPDATED, renamed[lobby].data)
        assert store_room not in {_device_of(c) for c in copies}

        # An early deletion is refused (ARC-2) and audited; it will be in the compliance report.
        with pytest.raises(grpc.aio.AioRpcError) as early:
            await archive_admin.DeleteSegment(
                apb.DeleteSegmentRequest(
                    key=lobby_segments[0].key, version_id=lobby_segments[0].version_id, reason="tidy up"
                )
            )
        assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        # The legal hold keeps the store room's first segment; the rest expires with its 12 s profile.
        async def expired() -> list[apb.Segment] | None:
            found = await archive_admin.FindSegments(
                apb.FindSegmentsRequest(device_id=store_room, range=time_range(t1, t1 + timedelta(minutes=1)))
            )
            return list(found.segments) if len(found.segments) == 1 else None

        kept = await apoll_until(expired, timeout=60, interval=0.5, what="the unheld footage expiring")
        assert kept[0].version_id == versions[store_room][0] and list(kept[0].hold_ids)

        # The audit log receives the archive's expiry records through the broker, a moment after the
        # index changes: wait until it holds as many as expired, then compare them exactly.
        async def expiries_logged() -> list[str] | None:
            found = await log.QueryRecords(
                audpb.QueryRecordsRequest(device_id=store_room, action="archive.segment.expire", page_size=50)
            )
            ids = sorted(v for e in found.entries for v in e.record.resources.segment_ids)
            return ids if len(ids) >= len(versions[store_room]) - 1 else None

        logged = await apoll_until(expiries_logged, timeout=30, what="the expiries in the audit log")
        assert logged == sorted(versions[store_room][1:])

        # The compliance report shows the early-deletion attempt on the lobby camera.
        async def reported() -> cpb.ComplianceReport | None:
            report = await c_grpc.ComplianceServiceStub(auditor_audit).GetComplianceReport(
                cpb.GetComplianceReportRequest(
                    range=time_range(t0 - timedelta(hours=1), datetime.now(UTC) + timedelta(minutes=1))
                )
            )
            kinds = {(f.kind, tuple(f.subject_ids)) for f in report.findings}
            return (
                report
                if any(k == cpb.FINDING_KIND_EARLY_DELETION_ATTEMPT and lobby in s for k, s in kinds)
                else None
            )

        await apoll_until(
            reported, timeout=30, interval=0.5, what="the early deletion in the compliance report"
        )


def _device_of(event: cloudevents.CloudEvent) -> str:
    """The device a partner-topic event is about (every kind the fan-out offers names one)."""
    return device_id_of(event)[0]


async def _renames(bootstrap: str, names: dict[str, str]) -> dict[str, cloudevents.CloudEvent] | None:
    """Each device's DeviceUpdated event carrying its new name, once all are on the registry's topic."""
    found: dict[str, cloudevents.CloudEvent] = {}
    for event in await read_topic(bootstrap, topics.REGISTRY_EVENTS):
        if event.type == UPDATED:
            device = reg_events.DeviceUpdated.FromString(event.data).device
            if names.get(device.device_id) == device.name:
                found[device.device_id] = event
    return found if len(found) == len(names) else None


async def _proof(log: aud_grpc.AuditServiceStub, record_id: str) -> audpb.InclusionProof | None:
    try:
        return await log.GetInclusionProof(audpb.GetInclusionProofRequest(record_id=record_id))
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
            return None  # not under a signed tree head yet (one is signed at least every second)
        raise


async def _manifest(viewer: apb_grpc.ArchiveServiceStub, device: str, window) -> apb.PlaybackManifest | None:  # type: ignore[no-untyped-def]
    try:
        return await viewer.GetPlaybackManifest(
            apb.GetPlaybackManifestRequest(device_id=device, range=window)
        )
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.PERMISSION_DENIED:
            return None  # sharing has not seen the approval yet
        raise
