"""VerifySegments and GetSegmentProof over real storage (ARC-4): what tampering each check catches, once."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

from sqlalchemy import update

from vigil.archive.v1 import events_pb2
from vigil.audit.v1 import audit_record_pb2
from vigil_archive import store
from vigil_archive.codec import time_range
from vigil_kit import merkle, objectstore
from vigil_testing.calls import refused

from .conftest import Archive, hour, new_device_id, pb, ts_bytes


def verify_request(device: str, n: int = 1) -> pb.VerifySegmentsRequest:
    return pb.VerifySegmentsRequest(device_id=device, range=time_range(hour(0), hour(0) + timedelta(hours=n)))


async def put_newer_version(archive: Archive, row: store.IndexedSegment, data: bytes = b"") -> str:
    """A PUT straight into storage over the indexed key: S3 accepts it as a newer version."""
    _key, version = await archive.put_object(
        row.ref.device_id,
        row.ref.start,
        data or ts_bytes(-row.row_id),
        retain_until=row.ref.retain_until,
        sequence=row.sequence,
    )
    return version


async def tamper_index(archive: Archive, row: store.IndexedSegment, **values: object) -> None:
    async with archive.sessions.begin() as s:
        await s.execute(
            update(store.segments_table).where(store.segments_table.c.id == row.row_id).values(**values)
        )


def kinds(resp: pb.VerifySegmentsResponse) -> list[str]:
    return sorted(pb.ViolationKind.Name(f.kind) for f in resp.findings)


async def test_verify_of_untouched_footage_is_ok_and_audited(archive: Archive) -> None:
    device = new_device_id()
    await archive.put_run(device, hour(0), 3)
    resp = await archive.stub("auditor").VerifySegments(verify_request(device))
    assert resp.ok and resp.checked == 3 and not resp.findings
    assert [(r.day, r.leaf_count, r.verified) for r in resp.day_roots] == [
        (hour(0).strftime("%Y-%m-%d"), 3, True)
    ]
    audits = await archive.audits("archive.segments.verify")
    assert audits[-1].decision == audit_record_pb2.DECISION_ALLOWED
    assert audits[-1].attributes["checked"] == "3"


async def test_a_newer_version_put_over_an_indexed_key_is_reported_once(archive: Archive) -> None:
    device = new_device_id()
    rows = await archive.put_run(device, hour(0), 2)
    newer = await put_newer_version(archive, rows[1])
    first = await archive.stub().VerifySegments(verify_request(device))
    second = await archive.stub().VerifySegments(verify_request(device))
    assert not first.ok and kinds(first) == ["VIOLATION_KIND_NEWER_VERSION"]
    assert first.findings[0].key == rows[1].ref.key and first.findings[0].version_id == rows[1].ref.version_id
    assert newer in first.findings[0].detail
    assert kinds(second) == kinds(first)  # still wrong, still said
    violations = await archive.events(events_pb2.IntegrityViolation)
    assert [(v.device_id, v.detected_by) for v in violations] == [(device, "verify")]  # published once
    audits = await archive.audits("archive.integrity.violation")
    assert len(audits) == 1 and audits[0].rule_id == "ARC-4"
    assert audits[0].attributes["kind"] == "NEWER_VERSION"


async def test_a_delete_marker_over_an_indexed_key_is_not_a_violation(archive: Archive) -> None:
    device = new_device_id()
    row = await archive.put_segment(device, hour(0))
    await asyncio.to_thread(archive.s3.remove_object, objectstore.SEGMENTS_BUCKET, row.ref.key)
    resp = await archive.stub().VerifySegments(verify_request(device))
    assert resp.ok, resp.findings


async def test_an_index_hash_that_is_not_the_stored_bytes_is_a_hash_mismatch_and_a_day_root_mismatch(
    archive: Archive,
) -> None:
    device = new_device_id()
    rows = await archive.put_run(device, hour(0), 3)
    await archive.servicer.day_roots.run_once()
    await tamper_index(archive, rows[0], sha256=hashlib.sha256(b"not the footage").hexdigest())
    resp = await archive.stub().VerifySegments(verify_request(device))
    assert kinds(resp) == ["VIOLATION_KIND_DAY_ROOT_MISMATCH", "VIOLATION_KIND_HASH_MISMATCH"]
    assert [r.verified for r in resp.day_roots] == [False]
    again = await archive.stub().VerifySegments(verify_request(device))
    assert [r.verified for r in again.day_roots] == [False]  # the recorded root is not overwritten


async def test_an_index_size_that_is_not_the_stored_size_is_a_size_mismatch(archive: Archive) -> None:
    device = new_device_id()
    row = await archive.put_segment(device, hour(0))
    await tamper_index(archive, row, size=row.ref.size + 1)
    resp = await archive.stub().VerifySegments(verify_request(device))
    assert kinds(resp) == ["VIOLATION_KIND_SIZE_MISMATCH"]


async def test_an_indexed_version_missing_from_storage_is_reported_missing(archive: Archive) -> None:
    device = new_device_id()
    row = await archive.put_segment(device, hour(0))
    await tamper_index(archive, row, version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY")
    resp = await archive.stub().VerifySegments(verify_request(device))
    assert "VIOLATION_KIND_MISSING" in kinds(resp)
    violation = (await archive.events(events_pb2.IntegrityViolation))[0]
    assert violation.finding.kind == pb.VIOLATION_KIND_MISSING


async def test_verify_by_a_unit_without_access_is_refused_and_audited(archive: Archive) -> None:
    device = new_device_id()
    await archive.put_segment(device, hour(0))
    async with refused() as err:
        await archive.stub("shop").VerifySegments(verify_request(device))
    assert err[0].code.name == "PERMISSION_DENIED" and err[0].rule == "ACC-2"
    audits = await archive.audits("archive.segments.verify")
    assert audits[-1].decision == audit_record_pb2.DECISION_DENIED


async def test_verify_of_a_range_holding_more_than_one_call_rehashes_is_refused_naming_the_range(
    archive: Archive,
) -> None:
    device = new_device_id()
    await archive.put_run(device, hour(0), 3)
    archive.servicer.verify_max_segments = 2
    async with refused() as err:
        await archive.stub().VerifySegments(verify_request(device))
    assert err[0].code.name == "INVALID_ARGUMENT" and err[0].field == "range"
    narrower = pb.VerifySegmentsRequest(
        device_id=device, range=time_range(hour(0), hour(0) + timedelta(seconds=4))
    )
    assert (await archive.stub().VerifySegments(narrower)).checked == 2


async def test_a_segment_proof_verifies_against_its_day_root(archive: Archive) -> None:
    device = new_device_id()
    rows = await archive.put_run(device, hour(0), 5)
    target = rows[3]
    proof = await archive.stub("hospital").GetSegmentProof(
        pb.GetSegmentProofRequest(key=target.ref.key, version_id=target.ref.version_id)
    )
    leaf = merkle.leaf_hash(bytes.fromhex(target.ref.sha256))
    assert proof.leaf_index == 3 and proof.day_root.leaf_count == 5 and proof.day_root.verified
    assert merkle.verify_inclusion(
        leaf, proof.leaf_index, proof.day_root.leaf_count, list(proof.path), proof.day_root.root
    )
    other = merkle.leaf_hash(bytes.fromhex(rows[2].ref.sha256))
    assert not merkle.verify_inclusion(other, 3, 5, list(proof.path), proof.day_root.root)
    async with archive.sessions() as s:
        recorded = await store.get_day_root(s, device, hour(0).strftime("%Y-%m-%d"))
    assert recorded is not None and recorded.root == proof.day_root.root and not recorded.dirty


async def test_the_day_root_worker_recomputes_a_day_after_a_segment_is_added(archive: Archive) -> None:
    device = new_device_id()
    day = hour(0).strftime("%Y-%m-%d")
    await archive.put_run(device, hour(0), 2)
    await archive.servicer.day_roots.run_once()
    async with archive.sessions() as s:
        before = await store.get_day_root(s, device, day)
    await archive.put_segment(device, hour(0) + timedelta(minutes=1))
    async with archive.sessions() as s:
        assert (await store.get_day_root(s, device, day)).dirty  # type: ignore[union-attr]
    await archive.servicer.day_roots.run_once()
    async with archive.sessions() as s:
        after = await store.get_day_root(s, device, day)
    assert before is not None and after is not None
    assert (before.leaf_count, after.leaf_count, after.dirty) == (2, 3, False)
    assert after.root != before.root


async def test_a_proof_for_an_unknown_segment_is_not_found(archive: Archive) -> None:
    async with refused() as err:
        await archive.stub().GetSegmentProof(pb.GetSegmentProofRequest(key="segments/none", version_id="v"))
    assert err[0].code.name == "NOT_FOUND"
