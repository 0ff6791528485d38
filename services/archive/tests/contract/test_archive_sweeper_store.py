"""The sweeper's driver-level index work on SQLite and PostgreSQL: pages, removal, events, audit, day roots."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from vigil.archive.v1 import events_pb2
from vigil.audit.v1 import audit_record_pb2
from vigil_archive import store
from vigil_archive.api import ArchiveBase, ArchiveDeps
from vigil_archive.app import MIGRATIONS
from vigil_archive.domain import Hold, SegmentRef
from vigil_archive.sweeper import EXPIRE_ACTION, EXPIRED_TYPE, Sweeper
from vigil_kit import db, topics
from vigil_kit.migrations import outbox_table, upgrade

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = datetime(2026, 1, 1, 23, 59, 56, 250000, tzinfo=UTC)  # segments cross midnight: two days
DEVICES = ("32020501501320000011", "32020501501320000012")


@pytest.fixture(params=["async-engine", "worker-thread"])
async def base(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[ArchiveBase]:
    """The archive's index; on SQLite also as the service wires it, the sweeper's transactions in one
    worker-thread hand-off (db.threaded_transactions)."""
    if request.param == "worker-thread" and not database_url.startswith("sqlite"):
        pytest.skip("the worker-thread path is SQLite's")
    engine = db.create_engine(database_url)
    await upgrade(engine, MIGRATIONS)
    transactions = db.threaded_transactions(engine) if request.param == "worker-thread" else None
    try:
        yield ArchiveBase(
            ArchiveDeps(
                sessions=db.session_factory(engine), minio=None, clock=lambda: NOW, transactions=transactions
            )
        )
    finally:
        if transactions is not None:
            transactions.close()
        await engine.dispose()


async def index(base: ArchiveBase, count: int, *, retain_until: datetime, device: str = DEVICES[0]) -> None:
    async with base.sessions.begin() as s:
        for i in range(count):
            start = T0 + timedelta(seconds=2 * i)
            ref = SegmentRef(
                device_id=device,
                start=start,
                end=start + timedelta(seconds=2),
                bucket="vigil-segments",
                key=f"segments/{device}/{i:04d}.ts",
                version_id=f"v{i}",
                size=100 + i,
                sha256=f"{i:064x}",
                retain_until=retain_until + timedelta(microseconds=i),
            )
            await store.insert_segment(
                s, ref, sequence=i, owner_unit_id="o", codec="h264", container="ts",
                legal_hold=False, source="ingest", now=NOW,
            )  # fmt: skip


class Storage:
    """A deleter that deletes everything asked, recording the requests."""

    def __init__(self) -> None:
        self.requests: list[list[tuple[str, str]]] = []

    async def __call__(self, bucket: str, objects: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
        self.requests.append(list(objects))
        return []


async def outbox(base: ArchiveBase, topic: str) -> list[bytes]:
    async with base.sessions() as s:
        t = outbox_table.c
        rows = (await s.execute(select(t.payload, t.ce_type).where(t.topic == topic).order_by(t.id))).all()
    return [r.payload for r in rows]


async def indexed(base: ArchiveBase) -> int:
    async with base.sessions() as s:
        return len(await store.expired_candidates(s, NOW + timedelta(days=3650), limit=100_000))


async def test_pages_walk_every_expired_row_once_in_retention_order(base: ArchiveBase) -> None:
    await index(base, 7, retain_until=NOW - timedelta(days=1))
    await index(base, 2, retain_until=NOW + timedelta(days=1), device=DEVICES[1])
    seen: list[int] = []
    after = None
    async with base.sessions() as s:
        while page := await store.expired_page(s, NOW, limit=3, after=after):
            seen.extend(r[0] for r in page)
            after = (page[-1][11], page[-1][0])
    assert len(seen) == 7 and len(set(seen)) == 7


async def test_a_sweep_drops_every_expired_row_with_one_decodable_event_each(base: ArchiveBase) -> None:
    await index(base, 12, retain_until=NOW - timedelta(days=1))
    await index(base, 3, retain_until=NOW + timedelta(days=1), device=DEVICES[1])
    storage = Storage()
    report = await Sweeper(base, deleter=storage, batch_size=5, commit_rows=10).run_once()
    assert (report.expired, report.kept, report.failed) == (12, 0, 0)
    assert await indexed(base) == 3
    events = [events_pb2.SegmentExpired.FromString(p) for p in await outbox(base, topics.ARCHIVE_EVENTS)]
    assert sorted(e.segment.version_id for e in events) == sorted(f"v{i}" for i in range(12))
    first = next(e for e in events if e.segment.version_id == "v0")
    assert first.segment.start_time.ToDatetime(tzinfo=UTC) == T0
    assert first.segment.retain_until.ToDatetime(tzinfo=UTC) == NOW - timedelta(days=1)
    assert first.expire_time.ToDatetime(tzinfo=UTC) == NOW
    assert (first.segment.size, first.segment.sha256, first.segment.owner_unit_id) == (100, f"{0:064x}", "o")
    assert sorted(k for batch in storage.requests for k, _ in batch) == sorted(
        f"segments/{DEVICES[0]}/{i:04d}.ts" for i in range(12)
    )


async def test_each_removed_version_is_listed_in_an_audit_record_of_its_device(base: ArchiveBase) -> None:
    await index(base, 6, retain_until=NOW - timedelta(days=1))
    await Sweeper(base, deleter=Storage(), batch_size=4).run_once()
    records = [audit_record_pb2.AuditRecord.FromString(p) for p in await outbox(base, topics.AUDIT_RECORDS)]
    assert {r.action for r in records} == {EXPIRE_ACTION} and {r.rule_id for r in records} == {"ARC-3"}
    assert sorted(v for r in records for v in r.resources.segment_ids) == sorted(f"v{i}" for i in range(6))
    assert {tuple(r.resources.device_ids) for r in records} == {(DEVICES[0],)}


async def test_the_days_of_removed_rows_are_marked_for_new_roots(base: ArchiveBase) -> None:
    await index(base, 4, retain_until=NOW - timedelta(days=1))
    async with base.sessions.begin() as s:
        for day in ("2026-01-01", "2026-01-02"):
            await store.put_day_root(s, DEVICES[0], day, 2, b"r", NOW)
    await Sweeper(base, deleter=Storage()).run_once()
    async with base.sessions() as s:
        roots = [await store.get_day_root(s, DEVICES[0], day) for day in ("2026-01-01", "2026-01-02")]
    assert [r.dirty for r in roots if r is not None] == [True, True]


async def test_a_row_removed_twice_is_reported_once(base: ArchiveBase) -> None:
    await index(base, 2, retain_until=NOW - timedelta(days=1))
    async with base.sessions() as s:
        ids = [r[0] for r in await store.expired_page(s, NOW, limit=10)]
    # As the sweeper removes rows: delete_segment_rows in one write transaction each.
    first = await base.run_transaction(lambda conn: store.delete_segment_rows(conn, ids))
    second = await base.run_transaction(lambda conn: store.delete_segment_rows(conn, ids))
    assert sorted(r[0] for r in first) == sorted(ids) and second == []


async def test_a_held_devices_rows_in_the_holds_range_stay(base: ArchiveBase) -> None:
    await index(base, 4, retain_until=NOW - timedelta(days=1))
    held = Hold(
        hold_id="h-1",
        device_ids=frozenset({DEVICES[0]}),
        start=T0,
        end=T0 + timedelta(seconds=3),  # the first two segments
        case_reference="C-1",
        reason="case",
        placed_by="officer",
        placed_at=NOW,
    )
    async with base.sessions.begin() as s:
        await store.insert_hold(s, held, 2)
    report = await Sweeper(base, deleter=Storage()).run_once()
    assert (report.expired, report.kept) == (2, 2)
    async with base.sessions() as s:
        left = await store.expired_candidates(s, NOW, limit=10)
    assert sorted(r.ref.version_id for r in left) == ["v0", "v1"]


async def test_a_storage_failure_fails_the_sweep_and_keeps_the_rows_it_did_not_commit(
    base: ArchiveBase,
) -> None:
    await index(base, 6, retain_until=NOW - timedelta(days=1))

    async def broken(bucket: str, objects: Sequence[tuple[str, str]]) -> list[tuple[str, str, str]]:
        raise ConnectionError("storage unreachable")

    with pytest.raises(ConnectionError):
        await Sweeper(base, deleter=broken, batch_size=2).run_once()
    assert await indexed(base) == 6
    assert await outbox(base, topics.ARCHIVE_EVENTS) == []


async def test_expired_events_carry_the_segment_expired_type(base: ArchiveBase) -> None:
    await index(base, 1, retain_until=NOW - timedelta(days=1))
    await Sweeper(base, deleter=Storage()).run_once()
    async with base.sessions() as s:
        t = outbox_table.c
        types = (await s.execute(select(t.ce_type).where(t.topic == topics.ARCHIVE_EVENTS))).scalars().all()
    assert types == [EXPIRED_TYPE]


async def test_outbox_rows_store_their_time_as_sqlalchemy_would(base: ArchiveBase) -> None:
    await index(base, 1, retain_until=NOW - timedelta(days=1))
    await Sweeper(base, deleter=Storage()).run_once()
    async with base.sessions() as s:
        typed = (await s.execute(select(outbox_table.c.created_at))).scalars().all()
        raw = (await (await s.connection()).exec_driver_sql("SELECT created_at FROM outbox")).scalars().all()
        expected = store.driver_time(s, NOW)
    assert set(typed) == {NOW}
    # NOW has no microseconds: SQLite's text must still carry them, as SQLAlchemy writes it.
    assert {str(v) for v in raw} == {str(expected)}
    if s.get_bind().dialect.name == "sqlite":
        assert expected == NOW.strftime("%Y-%m-%d %H:%M:%S.000000")
