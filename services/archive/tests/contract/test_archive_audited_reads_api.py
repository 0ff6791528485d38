"""Audited reads on either path: the page (or manifest) read and its audit record in one transaction.

The servicer runs on SQLite and PostgreSQL, through the async engine and — on a SQLite file — through
db.ThreadedTransactions (one worker-thread hand-off); every path must page, name holds, and commit the
read's audit record before it answers (ACC-1) alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from minio import Minio
from sqlalchemy import select

from vigil.archive.v1 import archive_service_pb2 as pb
from vigil.audit.v1 import audit_record_pb2
from vigil.sharing.v1 import sharing_service_pb2 as sharing_pb
from vigil_archive import store
from vigil_archive.api import ArchiveDeps
from vigil_archive.app import MIGRATIONS, ArchiveServicer
from vigil_archive.codec import time_range
from vigil_archive.domain import Hold, SegmentRef
from vigil_kit import db, topics
from vigil_kit.auth import Principal, VerifiedToken, reset_current_token, set_current_token
from vigil_kit.migrations import outbox_table, upgrade

DEVICE = "32020501501330012345"
OWNER = "12320200MB0000003X"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
AUDITOR = Principal(
    id="user:auditor",
    name="auditor",
    unit="11320200MB0000001T",
    unit_kind="UNIT_KIND_GOVERNMENT_DEPARTMENT",
    roles=frozenset({"ROLE_AUDITOR"}),
)


@dataclass
class Reads:
    servicer: ArchiveServicer
    sessions: object
    path: str


async def _allow_unmasked(
    p: Principal, device_id: str, start: datetime, end: datetime, **kw: object
) -> object:
    return sharing_pb.AuthorizeResponse(allowed=True, grant_id="grant-1", rule="ACC-3", unmasked_allowed=True)


@pytest.fixture(params=["async-engine", "worker-thread"])
async def reads(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Reads]:
    if request.param == "worker-thread" and not database_url.startswith("sqlite"):
        pytest.skip("the worker-thread path is SQLite's")
    engine = db.create_engine(database_url)
    await upgrade(engine, MIGRATIONS)
    transactions = db.threaded_transactions(engine) if request.param == "worker-thread" else None
    sessions = db.session_factory(engine)
    deps = ArchiveDeps(
        sessions=sessions,
        # Presigning needs no server: the URLs are only signed, never fetched here.
        minio=Minio("127.0.0.1:9", access_key="vigil", secret_key="vigil-secret", secure=False),
        clock=lambda: datetime.now(UTC),
        grant_check=_allow_unmasked,
        transactions=transactions,
    )
    reset = set_current_token(
        VerifiedToken(principal=AUDITOR, issuer="vigil", expires_at=datetime.now(UTC) + timedelta(hours=1))
    )
    try:
        yield Reads(ArchiveServicer(deps), sessions, request.param)
    finally:
        reset_current_token(reset)
        if transactions is not None:
            transactions.close()
        await engine.dispose()


async def index(
    reads: Reads, starts: list[datetime], duration: timedelta = timedelta(seconds=2)
) -> list[str]:
    """Index one segment per start (several may share one); their version ids in index order."""
    versions = []
    async with reads.sessions.begin() as s:  # type: ignore[attr-defined]
        for i, start in enumerate(starts):
            version = f"v{i:04d}"
            await store.insert_segment(
                s,
                SegmentRef(
                    device_id=DEVICE,
                    start=start,
                    end=start + duration,
                    bucket="vigil-segments",
                    key=f"segments/{DEVICE}/{i}.ts",
                    version_id=version,
                    size=100 + i,
                    sha256=f"{i:064x}",
                    retain_until=T0 + timedelta(days=30, microseconds=250),
                ),
                sequence=i + 1,
                owner_unit_id=OWNER,
                codec="h264",
                container="ts",
                legal_hold=False,
                source="ingest",
                now=datetime.now(UTC),
            )
            versions.append(version)
    return versions


async def all_pages(reads: Reads, start: datetime, end: datetime, page_size: int) -> list[pb.Segment]:
    found: list[pb.Segment] = []
    token = ""
    while True:
        page = await reads.servicer.FindSegments(
            pb.FindSegmentsRequest(
                device_id=DEVICE, range=time_range(start, end), page_size=page_size, page_token=token
            ),
            None,
        )
        found += page.segments
        token = page.next_page_token
        if not token:
            return found


async def audit_records(reads: Reads, action: str) -> list[audit_record_pb2.AuditRecord]:
    async with reads.sessions() as s:  # type: ignore[operator]
        rows = (
            await s.execute(select(outbox_table).where(outbox_table.c.topic == topics.AUDIT_RECORDS))
        ).all()
    records = [audit_record_pb2.AuditRecord.FromString(r.payload) for r in rows]
    return [r for r in records if r.action == action]


async def test_pages_continue_across_segments_that_share_a_start_time_without_repeats_or_gaps(
    reads: Reads,
) -> None:
    # Seven versions start at one instant (a re-upload after a newer PUT, ARC-4), between others.
    starts = [T0, T0 + timedelta(seconds=2)] + [T0 + timedelta(seconds=4)] * 7 + [T0 + timedelta(seconds=6)]
    made = await index(reads, starts)
    found = await all_pages(reads, T0, T0 + timedelta(minutes=1), page_size=3)
    assert [s.version_id for s in found] == made


async def test_a_page_carries_the_indexed_times_and_fields_exactly(reads: Reads) -> None:
    start = T0 + timedelta(microseconds=123_456)
    await index(reads, [start], duration=timedelta(seconds=2, microseconds=500))
    (segment,) = await all_pages(reads, T0, T0 + timedelta(minutes=1), page_size=10)
    assert segment.start_time.ToDatetime(tzinfo=UTC) == start
    assert segment.end_time.ToDatetime(tzinfo=UTC) == start + timedelta(seconds=2, microseconds=500)
    assert segment.retain_until.ToDatetime(tzinfo=UTC) == T0 + timedelta(days=30, microseconds=250)
    assert (segment.device_id, segment.sequence, segment.size, segment.owner_unit_id) == (
        DEVICE,
        1,
        100,
        OWNER,
    )
    assert (segment.codec, segment.container, segment.sha256) == ("h264", "ts", f"{0:064x}")


async def test_a_page_names_only_the_active_holds_overlapping_each_segment(reads: Reads) -> None:
    await index(reads, [T0, T0 + timedelta(seconds=2), T0 + timedelta(seconds=4)])
    hold = Hold(
        hold_id="hold-1",
        device_ids=frozenset({DEVICE}),
        start=T0 + timedelta(seconds=3),
        end=T0 + timedelta(seconds=5),
        case_reference="case",
        reason="evidence",
        important=False,
        placed_by="officer",
        placed_at=T0,
    )
    async with reads.sessions.begin() as s:  # type: ignore[attr-defined]
        await store.insert_hold(s, hold, covered=2)
    found = await all_pages(reads, T0, T0 + timedelta(minutes=1), page_size=10)
    assert [list(s.hold_ids) for s in found] == [[], ["hold-1"], ["hold-1"]]


async def test_every_page_is_answered_with_its_audit_record_already_committed(reads: Reads) -> None:
    await index(reads, [T0 + timedelta(seconds=2 * i) for i in range(5)])
    found = await all_pages(reads, T0, T0 + timedelta(minutes=1), page_size=2)
    records = await audit_records(reads, "archive.segments.find")
    assert len(found) == 5
    assert len(records) == 3  # three pages, three records
    assert {r.attributes["page_size"] for r in records} == {"2"}
    assert all(r.footage.start_time.ToDatetime(tzinfo=UTC) == T0 for r in records)


async def test_a_manifest_lists_every_segment_of_its_window_and_its_record_counts_them(reads: Reads) -> None:
    made = await index(reads, [T0 + timedelta(seconds=2 * i) for i in range(6)])
    manifest = await reads.servicer.GetPlaybackManifest(
        pb.GetPlaybackManifestRequest(device_id=DEVICE, range=time_range(T0, T0 + timedelta(seconds=8))), None
    )
    (record,) = await audit_records(reads, "archive.playback.manifest")
    assert [s.version_id for s in manifest.segments] == made[:4]
    assert [f"versionId={v}" in u for u, v in zip(manifest.urls, made, strict=False)] == [True] * 4
    assert record.record_id == manifest.audit_record_id
    assert record.attributes["segments"] == "4"
    assert manifest.playlist.count("#EXTINF:2.000,") == 4
