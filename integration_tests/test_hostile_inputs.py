"""Hostile inputs against the real stack (registry, ingest, sharing and archive processes, the broker, S3):
each refusal carries its exact status and the rule or field it rests on, and afterwards nothing already
accepted is lost, nothing new is stored, and every service still reports SERVING.

One stack serves the whole module: a hospital camera with three accepted segments (in S3 and in the
archive's index) and a transport analyst's approved playback grant on it. Every test ends by checking
that exactly the accepted versions are there, byte for byte, and the services are healthy; the upload
cases also check that ingest still takes the camera's next segment (a refusal releases what it held).

Where this module meets a case tested elsewhere (a forged signature, a replayed sequence, an expired
or foreign-signed token) it adds what only the real stack shows: the refusal crosses process boundaries
intact, no object version or multipart part is left in S3, the archive's index is unchanged and the
services stay SERVING. Not repeated here:
- the other upload refusals, in process, each with its denied audit record (missing signature, size
  over the maximum, repeated header, chunk over 1 MiB, hash mismatch, a small truncated upload, text
  declared as MPEG-TS, another unit's gateway, a client cancelling midway):
  services/ingest/tests/contract/test_ingest_refusals_api.py and test_ingest_upload_api.py;
- every broken MPEG-TS packet and MP4 box the checkers know:
  services/ingest/tests/unit/test_ingest_container.py;
- a text file, and a segment signed with another device's key, uploaded through the CLI (what the user
  sees): integration_tests/test_cli_ingest.py;
- malformed and foreign-issuer tokens, tampered signatures, the verified-token cache:
  libs/kit/tests/unit/test_kit_auth.py and libs/kit/tests/contract/test_kit_grpc_server.py;
- a grant allowing only its own device, and revocation across replicas:
  integration_tests/test_sharing_flow.py;
- Hypothesis-fuzzed requests to every RPC: integration_tests/test_fuzz_rpcs.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from minio import Minio

from vigil.archive.v1 import archive_service_pb2 as apb
from vigil.archive.v1 import archive_service_pb2_grpc as apb_grpc
from vigil.audit.v1 import audit_record_pb2
from vigil.ingest.v1 import ingest_service_pb2 as ipb
from vigil.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from vigil.registry.v1 import registry_service_pb2 as rpb
from vigil.registry.v1 import registry_service_pb2_grpc as rpb_grpc
from vigil.sharing.v1 import sharing_service_pb2 as spb
from vigil.sharing.v1 import sharing_service_pb2_grpc as spb_grpc
from vigil_archive.codec import time_range
from vigil_ingest.domain.signing import DeviceKey, generate_device_key
from vigil_ingest.video import encode_segment
from vigil_kit.auth import TokenIssuer, generate_keypair
from vigil_kit.embedded import EmbeddedProcess
from vigil_kit.errors import VigilError
from vigil_kit.grpc_client import make_channel
from vigil_kit.objectstore import SEGMENTS_BUCKET, make_minio
from vigil_kit.settings import ServiceSettings
from vigil_testing.broker import audit_records
from vigil_testing.calls import refused
from vigil_testing.platform import (
    HOSPITAL,
    MiB,
    Uploader,
    admin_token,
    gateway_token,
    new_device_id,
    register_active_device,
    ts_payload,
)
from vigil_testing.poll import apoll_until, poll_until
from vigil_testing.services import ServiceProcess, start_together, stop_together

pytestmark = pytest.mark.slow

TRANSPORT = ("113202000142871537", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
ENVIRONMENT = ("11320200014287250X", "UNIT_KIND_GOVERNMENT_DEPARTMENT")
SEGMENT = timedelta(seconds=1)
# Small enough that a truncated upload has already sent whole parts to S3 when its stream ends.
PART_BYTES = 5 * MiB


@dataclass
class Accepted:
    sequence: int
    key: str
    version_id: str
    sha256: str


@dataclass
class Stack:
    services: dict[str, ServiceProcess]
    issuer: TokenIssuer
    s3: Minio
    device: str
    key: DeviceKey
    t0: datetime
    grant_id: str
    accepted: dict[int, Accepted] = field(default_factory=dict)

    def address(self, name: str) -> str:
        return self.services[name].address

    def uploader(self, key: DeviceKey | None = None, token: str | None = None) -> Uploader:
        return Uploader(
            self.address("ingest"), token or gateway_token(self.issuer), self.device, key or self.key
        )

    def start_of(self, sequence: int) -> datetime:
        return self.t0 + sequence * SEGMENT

    def next_sequence(self) -> int:
        return max(self.accepted) + 1

    async def upload(self, sequence: int) -> None:
        """A good segment for `sequence`, recorded as accepted."""
        data = encode_segment(
            self.device, self.start_of(sequence), seconds=1, size=(160, 96), bitrate=150_000
        )
        reply = await self.uploader().upload(data, self.start_of(sequence), sequence, SEGMENT)
        assert not reply.replayed
        s = reply.segment
        self.accepted[sequence] = Accepted(sequence, s.key, s.version_id, s.sha256)

    def versions(self) -> list[Any]:
        """Every object version (and delete marker) under the camera's prefix."""
        return list(
            self.s3.list_objects(
                SEGMENTS_BUCKET, prefix=f"segments/{self.device}/", include_version=True, recursive=True
            )
        )

    def open_multipart_uploads(self) -> list[Any]:
        return list(
            self.s3._list_multipart_uploads(SEGMENTS_BUCKET, prefix=f"segments/{self.device}/").uploads
        )

    def uploaded_parts(self) -> int:
        """Parts already uploaded by the camera's open multipart uploads."""
        return sum(
            len(self.s3._list_parts(SEGMENTS_BUCKET, u.object_name, u.upload_id).parts)
            for u in self.open_multipart_uploads()
        )

    async def indexed(self) -> list[apb.Segment]:
        window = time_range(self.t0, self.t0 + timedelta(hours=1))
        async with make_channel(self.address("archive"), token=admin_token(self.issuer)) as channel:
            found = await apb_grpc.ArchiveServiceStub(channel).FindSegments(
                apb.FindSegmentsRequest(device_id=self.device, range=window)
            )
        return list(found.segments)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    kafka_broker: EmbeddedProcess,
    s3_server: EmbeddedProcess,
    issuer: TokenIssuer,
) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("hostile")
    keys = [issuer.public_key_pem.decode()]

    def process(name: str, s3: bool = False, **settings: object) -> ServiceProcess:
        return ServiceProcess(
            name,
            workdir=root / name,
            kafka_bootstrap=kafka_broker.address,
            public_keys_pem=keys,
            s3_endpoint=s3_server.address if s3 else None,
            settings=settings,
        )

    registry = process("registry", JURISDICTION_PREFIXES='["3202"]')
    common = {"REGISTRY_ADDR": registry.address}
    sharing = process("sharing", SERVICE_TOKEN=issuer.mint_service("sharing"), **common)
    ingest = process(
        "ingest",
        s3=True,
        SERVICE_TOKEN=issuer.mint_service("ingest"),
        SINGLE_PUT_MAX_BYTES=PART_BYTES,
        PART_BYTES=PART_BYTES,
        **common,
    )
    archive = process(
        "archive",
        s3=True,
        SERVICE_TOKEN=issuer.mint_service("archive"),
        SHARING_ADDR=sharing.address,
        **common,
    )
    services = {"registry": registry, "sharing": sharing, "ingest": ingest, "archive": archive}
    try:
        start_together(*services.values())
        s3 = make_minio(ServiceSettings(service_name="test", s3_endpoint=s3_server.address))
        poll_until(lambda: s3.bucket_exists(SEGMENTS_BUCKET), timeout=30, what="the segments bucket")
        device, key = new_device_id(), generate_device_key()
        t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        built = Stack(services, issuer, s3, device, key, t0, grant_id="")
        asyncio.run(_seed(built))
        yield built
    finally:
        stop_together(*services.values())


async def _seed(stack: Stack) -> None:
    """The camera, its three accepted segments (indexed), and the transport analyst's approved grant."""
    await register_active_device(
        stack.address("registry"), admin_token(stack.issuer), stack.device, stack.key.public_key_b64
    )
    for sequence in (1, 2, 3):
        await stack.upload(sequence)
    async with (
        make_channel(stack.address("sharing"), token=_token(stack.issuer, "analyst", TRANSPORT)) as analyst,
        make_channel(stack.address("sharing"), token=gateway_token(stack.issuer)) as hospital,
    ):
        request = await spb_grpc.SharingServiceStub(analyst).CreateAccessRequest(
            spb.CreateAccessRequestRequest(
                access_request=spb.AccessRequest(
                    purpose=spb.PURPOSE_TRAFFIC_MANAGEMENT,
                    legal_basis="ambulance access study",
                    scope=spb.Scope(device_ids=[stack.device]),
                    actions=[spb.ACTION_PLAYBACK],
                    footage_window=time_range(stack.t0 - timedelta(hours=1), stack.t0 + timedelta(hours=1)),
                    valid_until=time_range(stack.t0, datetime.now(UTC) + timedelta(days=1)).end_time,
                )
            )
        )
        await spb_grpc.SharingServiceStub(hospital).ApproveAccessRequest(
            spb.ApproveAccessRequestRequest(request_id=request.request_id, reason="study agreed")
        )
    stack.grant_id = request.request_id
    await _all_indexed(stack)


def _token(
    issuer: TokenIssuer, who: str, unit: tuple[str, str], role: str = "ROLE_DEPARTMENT_ANALYST"
) -> str:
    return issuer.mint(sub=f"user:{who}", name=who, unit=unit[0], unit_kind=unit[1], roles=[role])


async def _all_indexed(stack: Stack) -> None:
    wanted = sorted(a.version_id for a in stack.accepted.values())

    async def done() -> bool:
        return sorted(s.version_id for s in await stack.indexed()) == wanted

    await apoll_until(done, timeout=30, what="exactly the accepted segments in the archive's index")


async def assert_intact_and_healthy(stack: Stack) -> None:
    """Exactly the accepted versions are stored, byte for byte, and indexed; nothing half-written
    remains; every service is alive and SERVING."""
    for name, service in stack.services.items():
        assert service.alive() and service.health() == "SERVING", f"{name}:\n{service.log_tail()}"
    versions = stack.versions()
    assert not any(v.is_delete_marker for v in versions)
    assert sorted(v.version_id for v in versions) == sorted(a.version_id for a in stack.accepted.values())
    for a in stack.accepted.values():
        body = stack.s3.get_object(SEGMENTS_BUCKET, a.key, version_id=a.version_id)
        try:
            assert hashlib.sha256(body.read()).hexdigest() == a.sha256, a
        finally:
            body.close()
            body.release_conn()
    assert stack.open_multipart_uploads() == []
    await _all_indexed(stack)


async def assert_still_accepts_uploads(stack: Stack) -> None:
    """The camera's next good segment is stored: the refusal released the device's upload slot."""
    await stack.upload(stack.next_sequence())
    await assert_intact_and_healthy(stack)


async def _send(stack: Stack, header: ipb.SegmentHeader, chunks: Sequence[bytes]) -> VigilError:
    async def messages() -> AsyncIterator[ipb.UploadSegmentRequest]:
        yield ipb.UploadSegmentRequest(header=header)
        for chunk in chunks:
            yield ipb.UploadSegmentRequest(chunk=chunk)

    async with (
        make_channel(stack.address("ingest"), token=gateway_token(stack.issuer), default_timeout_s=60) as ch,
        refused() as err,
    ):
        await ipb_grpc.IngestServiceStub(ch).UploadSegment(messages())
    return err[0]


def _chunks(data: bytes) -> list[bytes]:
    return [data[i : i + MiB] for i in range(0, len(data), MiB)]


# --- malformed video ------------------------------------------------------------------------------


async def test_a_real_segment_that_stops_being_mpeg_ts_midway_is_refused_at_its_first_bad_byte(
    stack: Stack,
) -> None:
    sequence = stack.next_sequence()
    data = bytearray(encode_segment(stack.device, stack.start_of(sequence), seconds=1, size=(160, 96)))
    data[10 * 188] = 0x00  # the 11th packet's sync byte
    header = stack.uploader().header(bytes(data), stack.start_of(sequence), sequence, SEGMENT)
    err = await _send(stack, header, _chunks(bytes(data)))
    assert (err.code, err.field) == (grpc.StatusCode.INVALID_ARGUMENT, "chunk")
    assert "MPEG-TS" in err.message and f"at byte {10 * 188}" in err.message
    await assert_still_accepts_uploads(stack)


async def test_an_mp4_whose_box_walk_breaks_is_refused_at_the_broken_box(stack: Stack) -> None:
    sequence = stack.next_sequence()
    data = bytearray(
        encode_segment(stack.device, stack.start_of(sequence), seconds=1, size=(160, 96), container="mp4")
    )
    (ftyp_size,) = struct.unpack(">I", data[:4])
    data[ftyp_size : ftyp_size + 4] = struct.pack(">I", 4)  # the next box claims fewer bytes than its header
    header = stack.uploader().header(bytes(data), stack.start_of(sequence), sequence, SEGMENT)
    header.container = ipb.CONTAINER_FMP4
    err = await _send(stack, header, _chunks(bytes(data)))
    assert (err.code, err.field) == (grpc.StatusCode.INVALID_ARGUMENT, "chunk")
    assert f"at byte {ftyp_size}" in err.message and "smaller than its own header" in err.message
    await assert_still_accepts_uploads(stack)


# --- truncated upload -----------------------------------------------------------------------------


async def test_an_upload_whose_stream_ends_before_its_size_leaves_no_object_version_and_no_parts(
    stack: Stack,
) -> None:
    sequence = stack.next_sequence()
    data = ts_payload(sequence, packets=(3 * PART_BYTES) // 188)  # three parts' worth: a multipart upload
    header = stack.uploader().header(data, stack.start_of(sequence), sequence, SEGMENT)
    sent = 2 * PART_BYTES + MiB
    end_stream = asyncio.Event()

    async def messages() -> AsyncIterator[ipb.UploadSegmentRequest]:
        yield ipb.UploadSegmentRequest(header=header)
        for chunk in _chunks(data[:sent]):
            yield ipb.UploadSegmentRequest(chunk=chunk)
        await end_stream.wait()  # then the stream ends, short of header.size

    async with make_channel(stack.address("ingest"), token=gateway_token(stack.issuer)) as channel:
        call = ipb_grpc.IngestServiceStub(channel).UploadSegment(messages(), timeout=60)
        # Whole parts are in S3 before the stream ends: the refusal has something to clean up.
        await apoll_until(
            lambda: asyncio.to_thread(stack.uploaded_parts), timeout=30, what="parts of the upload in S3"
        )
        end_stream.set()
        async with refused() as err:
            await call
    assert (err[0].code, err[0].field) == (grpc.StatusCode.INVALID_ARGUMENT, "header.size")
    assert str(sent) in err[0].message
    await assert_still_accepts_uploads(stack)


# --- tokens ---------------------------------------------------------------------------------------


async def test_a_gateway_token_replayed_after_it_expired_is_unauthenticated(stack: Stack) -> None:
    issued = datetime.now(UTC) - timedelta(hours=2)
    expired = stack.issuer.mint(
        sub=f"gateway:{HOSPITAL[0]}",
        name="gateway",
        unit=HOSPITAL[0],
        unit_kind=HOSPITAL[2],
        roles=["ROLE_UNIT_OPERATOR"],
        ttl_s=3600,
        now=issued,
    )
    sequence = stack.next_sequence()
    data = ts_payload(sequence)
    uploader = stack.uploader(token=expired)
    async with refused() as err:
        await uploader.upload(data, stack.start_of(sequence), sequence, SEGMENT)
    assert err[0].code == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in err[0].message and expired not in err[0].message
    await assert_still_accepts_uploads(stack)


async def test_an_administrator_token_signed_by_a_foreign_key_is_unauthenticated_and_changes_nothing(
    stack: Stack,
) -> None:
    forged = TokenIssuer(generate_keypair()[0]).mint(
        sub="user:admin",
        name="admin",
        unit="11320200MB0000001T",
        unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
        roles=["ROLE_PLATFORM_ADMIN"],
    )
    async with make_channel(stack.address("registry"), token=forged) as channel:
        async with refused() as err:
            await rpb_grpc.RegistryServiceStub(channel).SuspendDevice(
                rpb.SuspendDeviceRequest(device_id=stack.device, reason="taken over")
            )
    assert err[0].code == grpc.StatusCode.UNAUTHENTICATED
    assert "not signed by a trusted issuer key" in err[0].message
    async with make_channel(stack.address("registry"), token=admin_token(stack.issuer)) as channel:
        device = await rpb_grpc.RegistryServiceStub(channel).GetDevice(
            rpb.GetDeviceRequest(device_id=stack.device)
        )
    assert device.state != rpb.DEVICE_STATE_SUSPENDED
    await assert_still_accepts_uploads(stack)


# --- device signatures and replays ----------------------------------------------------------------


async def test_a_segment_signed_by_another_key_is_unauthenticated_and_stores_nothing(stack: Stack) -> None:
    sequence = stack.next_sequence()
    data = encode_segment(stack.device, stack.start_of(sequence), seconds=1, size=(160, 96))
    forger = stack.uploader(key=generate_device_key())
    async with refused() as err:
        await forger.upload(data, stack.start_of(sequence), sequence, SEGMENT)
    assert (err[0].code, err[0].rule, err[0].field) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "ARC-4",
        "header.signature",
    )
    await assert_still_accepts_uploads(stack)


async def test_an_accepted_sequence_uploaded_again_with_other_bytes_is_refused_and_the_original_kept(
    stack: Stack,
) -> None:
    original = stack.accepted[2]
    other = encode_segment(stack.device, stack.start_of(2), seconds=1, size=(160, 96), bitrate=90_000)
    assert hashlib.sha256(other).hexdigest() != original.sha256
    async with refused() as err:
        await stack.uploader().upload(other, stack.start_of(2), 2, SEGMENT)
    assert (err[0].code, err[0].rule, err[0].field) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "ARC-4",
        "header.sequence",
    )
    assert stack.accepted[2] == original
    await assert_still_accepts_uploads(stack)


# --- someone else's grant -------------------------------------------------------------------------


async def test_a_principal_without_the_grant_is_denied_the_footage_it_covers_and_audited_as_denied(
    stack: Stack,
) -> None:
    window = time_range(stack.t0, stack.t0 + timedelta(minutes=1))
    intruder = _token(stack.issuer, "env-analyst", ENVIRONMENT)
    async with make_channel(stack.address("archive"), token=intruder, default_timeout_s=30) as channel:
        async with refused() as err:
            await apb_grpc.ArchiveServiceStub(channel).GetPlaybackManifest(
                apb.GetPlaybackManifestRequest(device_id=stack.device, range=window)
            )
    assert (err[0].code, err[0].rule, err[0].field) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "ACC-2",
        "device_id",
    )

    async def denial() -> list[audit_record_pb2.AuditRecord] | None:
        found = [
            r
            for r in await audit_records(stack.services["archive"].kafka_bootstrap)
            if r.actor.id == "user:env-analyst"
            and r.action == "archive.playback.manifest"
            and stack.device in r.resources.device_ids
        ]
        return found or None

    (record,) = await apoll_until(denial, timeout=30, what="the archive's record of the refusal")
    assert (record.decision, record.rule_id) == (audit_record_pb2.DECISION_DENIED, "ACC-2")

    # The grant itself is untouched: its holder still gets the footage under it.
    analyst = _token(stack.issuer, "analyst", TRANSPORT)
    async with make_channel(stack.address("archive"), token=analyst, default_timeout_s=30) as channel:
        manifest = await apb_grpc.ArchiveServiceStub(channel).GetPlaybackManifest(
            apb.GetPlaybackManifestRequest(device_id=stack.device, range=window)
        )
    assert manifest.grant_id == stack.grant_id
    assert {s.version_id for s in manifest.segments} == {a.version_id for a in stack.accepted.values()}
    await assert_intact_and_healthy(stack)
