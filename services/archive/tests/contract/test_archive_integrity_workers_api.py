"""The scrubber and reconciliation over real storage (ARC-4): what they find, re-index, refuse and report."""

from __future__ import annotations

import asyncio
import hashlib
import io
from datetime import UTC, datetime, timedelta

from minio.commonconfig import COMPLIANCE
from minio.retention import Retention

from vigil.archive.v1 import events_pb2
from vigil_archive import store
from vigil_archive.reconciler import DeviceFacts, RegistryUnavailable
from vigil_archive.scrubber import CURSOR_STATE
from vigil_kit import objectstore
from vigil_kit.segment_header import (
    Container,
    SegmentHeader,
    UploadHeader,
    generate_device_key,
    object_metadata,
    sign,
)

from .conftest import HOSPITAL, Archive, b64, hour, new_device_id, segment_key, ts_bytes


class Registry:
    """A registry lookup the test controls: known devices, or unreachable."""

    def __init__(self) -> None:
        self.devices: dict[str, DeviceFacts] = {}
        self.reachable = True
        self.asked: list[str] = []

    async def get(self, device_id: str) -> DeviceFacts | None:
        self.asked.append(device_id)
        if not self.reachable:
            raise RegistryUnavailable("connection refused")
        return self.devices.get(device_id)


async def put_signed_orphan(
    archive: Archive, device: str, start: datetime, key_pair, *, sequence: int = 7, tamper: bool = False
) -> tuple[str, str, bytes]:
    """An ingest-style object (signed header in its metadata, COMPLIANCE lock) that was never indexed."""
    data = ts_bytes(hash((device, start, sequence)))
    digest = hashlib.sha256(data).hexdigest()
    header = SegmentHeader.of(
        device_id=device, sequence=sequence, start=start, duration=timedelta(seconds=2), sha256=digest
    )
    upload = UploadHeader(
        segment=header,
        container=Container.MPEG_TS,
        codec="h264",
        size=len(data),
        signature=sign(key_pair.private_key, header),
    )
    stored = data if not tamper else data[:-1] + b"\x00"
    key = segment_key(device, start, sequence)
    result = await asyncio.to_thread(
        archive.s3.put_object,
        objectstore.SEGMENTS_BUCKET,
        key,
        io.BytesIO(stored),
        len(stored),
        content_type="video/mp2t",
        metadata={
            **object_metadata(upload),
            "x-amz-sdk-checksum-algorithm": "SHA256",
            "x-amz-checksum-sha256": b64(hashlib.sha256(stored).digest()),
        },
        retention=Retention(COMPLIANCE, datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)),
    )
    return key, result.version_id, data


def reconciler(archive: Archive, registry: Registry):
    rec = archive.servicer.reconciler
    rec.devices = registry
    rec.settle = timedelta(0)
    return rec


def device_prefix(device: str) -> str:
    return f"segments/{device}/"


# --- the scrubber -------------------------------------------------------------------------------


async def test_the_scrubber_finds_a_newer_version_over_an_indexed_key(archive: Archive) -> None:
    device = new_device_id()
    rows = await archive.put_run(device, hour(0), 3)
    await archive.put_object(
        device,
        rows[1].ref.start,
        b"G" * 188,
        retain_until=rows[1].ref.retain_until,
        sequence=rows[1].sequence,
    )
    report = await archive.servicer.scrubber.run_once()
    assert report.checked == 3
    assert [(f.key, f.kind) for f in report.findings] == [(rows[1].ref.key, 3)]  # NEWER_VERSION
    violations = await archive.events(events_pb2.IntegrityViolation)
    assert [(v.detected_by, v.finding.key) for v in violations] == [("scrubber", rows[1].ref.key)]
    audits = await archive.audits("archive.integrity.violation")
    assert audits[0].attributes["detected_by"] == "scrubber" and audits[0].actor.id == "service:archive"


async def test_the_scrubber_walks_the_index_in_ticks_and_persists_its_cursor(archive: Archive) -> None:
    device = new_device_id()
    rows = await archive.put_run(device, hour(0), 5)
    scrubber = archive.servicer.scrubber
    scrubber.policy = type(scrubber.policy)(per_tick=2, random_share=0.0, max_bytes=10**9)
    first = await scrubber.run_once()
    second = await scrubber.run_once()
    third = await scrubber.run_once()
    assert [first.cursor.after, second.cursor.after] == [rows[1].row_id, rows[3].row_id]
    assert (third.cursor.after, third.cursor.passes) == (None, 1)  # reached the end: a pass is done
    async with archive.sessions() as s:
        assert '"passes": 1' in (await store.get_state(s, CURSOR_STATE) or "")


async def test_a_scrubber_tick_stops_at_its_byte_budget_but_always_checks_one(archive: Archive) -> None:
    device = new_device_id()
    rows = await archive.put_run(device, hour(0), 3)
    scrubber = archive.servicer.scrubber
    scrubber.policy = type(scrubber.policy)(per_tick=3, random_share=0.0, max_bytes=1)
    report = await scrubber.run_once()
    assert report.checked == 1 and report.cursor.after == rows[0].row_id


# --- reconciliation ------------------------------------------------------------------------------


async def test_a_signed_orphan_is_reindexed_with_its_stored_retention_and_the_owner_unit(
    archive: Archive,
) -> None:
    device = new_device_id()
    key_pair = generate_device_key()
    registry = Registry()
    registry.devices[device] = DeviceFacts(device, key_pair.public_key_b64, HOSPITAL[0])
    key, version, data = await put_signed_orphan(archive, device, hour(0), key_pair)
    report = await reconciler(archive, registry).run_once(device_prefix(device))
    assert report.reindexed == [f"{key}@{version}"]
    async with archive.sessions() as s:
        row = await store.get_segment(s, key, version)
    assert row is not None
    assert (row.ref.sha256, row.ref.size, row.owner_unit_id, row.sequence) == (
        hashlib.sha256(data).hexdigest(),
        len(data),
        HOSPITAL[0],
        7,
    )
    stat = await asyncio.to_thread(
        archive.s3.stat_object, objectstore.SEGMENTS_BUCKET, key, version_id=version
    )
    assert (
        f"{row.ref.retain_until:%Y-%m-%dT%H:%M:%S}.000Z"
        == stat.metadata["x-amz-object-lock-retain-until-date"]
    )
    archived = await archive.events(events_pb2.SegmentArchived)
    assert [(a.segment.version_id, a.source) for a in archived] == [(version, "reconciliation")]
    assert [o.segment.version_id for o in await archive.events(events_pb2.OrphanReindexed)] == [version]
    assert len(await archive.audits("archive.segment.reindex")) == 1
    again = await archive.servicer.reconciler.run_once(device_prefix(device))
    assert again.reindexed == [] and again.matched == 1


async def test_an_orphan_whose_signature_does_not_verify_is_never_indexed(archive: Archive) -> None:
    device = new_device_id()
    registry = Registry()
    registry.devices[device] = DeviceFacts(device, generate_device_key().public_key_b64, HOSPITAL[0])
    key, version, _ = await put_signed_orphan(archive, device, hour(0), generate_device_key())
    report = await reconciler(archive, registry).run_once(device_prefix(device))
    assert report.reindexed == [] and "signature" in report.skipped[f"{key}@{version}"]
    async with archive.sessions() as s:
        assert await store.get_segment(s, key, version) is None


async def test_an_orphan_whose_bytes_differ_from_its_signed_header_is_never_indexed(archive: Archive) -> None:
    device = new_device_id()
    key_pair = generate_device_key()
    registry = Registry()
    registry.devices[device] = DeviceFacts(device, key_pair.public_key_b64, HOSPITAL[0])
    key, version, _ = await put_signed_orphan(archive, device, hour(0), key_pair, tamper=True)
    report = await reconciler(archive, registry).run_once(device_prefix(device))
    assert report.reindexed == [] and "differ" in report.skipped[f"{key}@{version}"]


async def test_an_orphan_waits_for_an_unreachable_registry_and_is_reindexed_once_it_answers(
    archive: Archive,
) -> None:
    device = new_device_id()
    key_pair = generate_device_key()
    registry = Registry()
    registry.devices[device] = DeviceFacts(device, key_pair.public_key_b64, HOSPITAL[0])
    registry.reachable = False
    key, version, _ = await put_signed_orphan(archive, device, hour(0), key_pair)
    first = await reconciler(archive, registry).run_once(device_prefix(device))
    assert first.reindexed == [] and "registry unavailable" in first.skipped[f"{key}@{version}"]
    registry.reachable = True
    second = await archive.servicer.reconciler.run_once(device_prefix(device))
    assert second.reindexed == [f"{key}@{version}"]


async def test_a_young_object_is_pending_not_an_orphan(archive: Archive) -> None:
    device = new_device_id()
    key_pair = generate_device_key()
    registry = Registry()
    await put_signed_orphan(archive, device, hour(0), key_pair)
    rec = reconciler(archive, registry)
    rec.settle = timedelta(hours=1)
    report = await rec.run_once(device_prefix(device))
    assert (report.pending, report.reindexed, registry.asked) == (1, [], [])


async def test_reconciliation_reports_an_indexed_version_missing_from_storage(archive: Archive) -> None:
    device = new_device_id()
    rows = await archive.put_run(device, hour(0), 2)
    async with archive.sessions.begin() as s:
        await s.execute(
            store.segments_table.update()
            .where(store.segments_table.c.id == rows[0].row_id)
            .values(version_id="0000-no-such-version")
        )
    report = await reconciler(archive, Registry()).run_once(device_prefix(device))
    assert [f.version_id for f in report.missing] == ["0000-no-such-version"]
    # The real version is now an object the index lacks: without a signed header it is not re-indexed.
    assert report.reindexed == [] and "no signed segment header" in next(iter(report.skipped.values()))
    violations = await archive.events(events_pb2.IntegrityViolation)
    assert [(v.detected_by, v.finding.kind) for v in violations] == [("reconciliation", 2)]  # MISSING
