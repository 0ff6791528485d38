"""The archive database: the segment index keyed by object version, holds, device-day roots, findings.

One row per stored object *version* (ARC-4: S3 accepts a newer PUT over a locked key, so the key
alone does not name the original). Rows are looked up by (device, start time) for FindSegments and
coverage, by retain-until for the sweeper, and by (bucket, key, version) for everything else.
SQLite and PostgreSQL alike; times are UTC (vigil_kit.db.UTCDateTime).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from vigil_archive.domain import Hold, SegmentRef
from vigil_kit.db import UTCDateTime, sqlite_insert_many

METADATA = MetaData()

# The longest segment ingest accepts by default (INGEST_MAX_SEGMENT_SECONDS); bounds the index range
# FindSegments scans from below. The archive's setting of the same name must be at least ingest's.
MAX_SEGMENT = timedelta(minutes=10)

# INTEGER PRIMARY KEY is SQLite's rowid (autoincrementing); BIGSERIAL on PostgreSQL.
RowId = BigInteger().with_variant(Integer, "sqlite")

segments_table = Table(
    "archive_segments",
    METADATA,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("device_id", String(32), nullable=False),
    Column("sequence", BigInteger, nullable=False),
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime, nullable=False),
    # UTC day of start_time (YYYY-MM-DD): the device-day a segment's Merkle leaf belongs to.
    Column("day", String(10), nullable=False),
    Column("bucket", String(63), nullable=False),
    Column("key", String(512), nullable=False),
    Column("version_id", String(128), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("retain_until", UTCDateTime, nullable=False),
    Column("owner_unit_id", String(64), nullable=False),
    Column("codec", String(32), nullable=False),
    Column("container", String(8), nullable=False),
    # Whether the archive set an S3 legal hold on the version (ARC-6), so release knows to clear it.
    Column("legal_hold", Boolean, nullable=False),
    Column("source", String(16), nullable=False),
    Column("index_time", UTCDateTime, nullable=False),
    # Leads with key: it also serves look-ups by key alone (migration 0003).
    UniqueConstraint("key", "version_id", "bucket", name="uq_archive_segments_object"),
    Index("ix_archive_segments_device_start", "device_id", "start_time", "id"),
    Index("ix_archive_segments_retain", "retain_until", "id"),
)

holds_table = Table(
    "archive_holds",
    METADATA,
    Column("hold_id", String(64), primary_key=True),
    Column("start_time", UTCDateTime, nullable=False),
    Column("end_time", UTCDateTime, nullable=False),
    Column("case_reference", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Column("important", Boolean, nullable=False),
    Column("placed_by", String(255), nullable=False),
    Column("place_time", UTCDateTime, nullable=False),
    Column("release_time", UTCDateTime, nullable=True),
    Column("released_by", String(255), nullable=False),
    Column("covered_segments", BigInteger, nullable=False),
    Index("ix_archive_holds_active", "release_time"),
)

hold_devices_table = Table(
    "archive_hold_devices",
    METADATA,
    Column("hold_id", String(64), primary_key=True),
    Column("device_id", String(32), primary_key=True),
    Index("ix_archive_hold_devices_device", "device_id"),
)

day_roots_table = Table(
    "archive_day_roots",
    METADATA,
    Column("device_id", String(32), primary_key=True),
    Column("day", String(10), primary_key=True),
    Column("leaf_count", BigInteger, nullable=False),
    Column("root", LargeBinary, nullable=False),
    # Set when the day's segments changed since the root was computed.
    Column("dirty", Boolean, nullable=False),
    Column("update_time", UTCDateTime, nullable=False),
    Index("ix_archive_day_roots_dirty", "dirty"),
)

findings_table = Table(
    "archive_findings",
    METADATA,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("device_id", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("version_id", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("detected_by", String(16), nullable=False),
    Column("detect_time", UTCDateTime, nullable=False),
    # One report per (object, kind): a scrubber that sees it again does not flood the log.
    UniqueConstraint("key", "version_id", "kind", name="uq_archive_findings_object_kind"),
)

state_table = Table(
    "archive_state",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("update_time", UTCDateTime, nullable=False),
)

SEGMENT_COLUMNS = (
    segments_table.c.id,
    segments_table.c.device_id,
    segments_table.c.sequence,
    segments_table.c.start_time,
    segments_table.c.end_time,
    segments_table.c.bucket,
    segments_table.c.key,
    segments_table.c.version_id,
    segments_table.c.size,
    segments_table.c.sha256,
    segments_table.c.retain_until,
    segments_table.c.owner_unit_id,
    segments_table.c.codec,
    segments_table.c.container,
    segments_table.c.legal_hold,
)


@dataclass(frozen=True)
class IndexedSegment:
    """One index row: the domain's SegmentRef plus what the index keeps beside it."""

    row_id: int
    ref: SegmentRef
    sequence: int
    owner_unit_id: str
    codec: str
    container: str
    legal_hold: bool


def _row(row: Any, hold_ids: Iterable[str] = ()) -> IndexedSegment:
    return IndexedSegment(
        row_id=row.id,
        ref=SegmentRef(
            device_id=row.device_id,
            start=row.start_time,
            end=row.end_time,
            bucket=row.bucket,
            key=row.key,
            version_id=row.version_id,
            size=row.size,
            sha256=row.sha256,
            retain_until=row.retain_until,
            hold_ids=frozenset(hold_ids),
        ),
        sequence=row.sequence,
        owner_unit_id=row.owner_unit_id,
        codec=row.codec,
        container=row.container,
        legal_hold=row.legal_hold,
    )


def day_of(t: datetime) -> str:
    """The UTC day a time falls on, as the index stores it."""
    return t.strftime("%Y-%m-%d")


async def insert_segment(
    session: AsyncSession,
    seg: SegmentRef,
    *,
    sequence: int,
    owner_unit_id: str,
    codec: str,
    container: str,
    legal_hold: bool,
    source: str,
    now: datetime,
) -> bool:
    """Index one object version; False when that version is already indexed (nothing changes)."""
    existing = await session.scalar(
        select(segments_table.c.id).where(
            segments_table.c.bucket == seg.bucket,
            segments_table.c.key == seg.key,
            segments_table.c.version_id == seg.version_id,
        )
    )
    if existing is not None:
        return False
    await session.execute(
        segments_table.insert().values(
            device_id=seg.device_id,
            sequence=sequence,
            start_time=seg.start,
            end_time=seg.end,
            day=day_of(seg.start),
            bucket=seg.bucket,
            key=seg.key,
            version_id=seg.version_id,
            size=seg.size,
            sha256=seg.sha256,
            retain_until=seg.retain_until,
            owner_unit_id=owner_unit_id,
            codec=codec,
            container=container,
            legal_hold=legal_hold,
            source=source,
            index_time=now,
        )
    )
    await mark_day_dirty(session, seg.device_id, day_of(seg.start), now)
    return True


async def mark_day_dirty(session: AsyncSession, device_id: str, day: str, now: datetime) -> None:
    """Flag a device-day's root for recomputation (its segments changed)."""
    updated = await session.execute(
        update(day_roots_table)
        .where(day_roots_table.c.device_id == device_id, day_roots_table.c.day == day)
        .values(dirty=True, update_time=now)
    )
    if updated.rowcount == 0:
        await session.execute(
            day_roots_table.insert().values(
                device_id=device_id, day=day, leaf_count=0, root=b"", dirty=True, update_time=now
            )
        )


async def find_rows(
    session: AsyncSession,
    device_id: str,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    after: tuple[datetime, int] | None = None,
    max_segment: timedelta = MAX_SEGMENT,
) -> Sequence[Any]:
    """Rows (SEGMENT_COLUMNS) of one device overlapping [start, end), in (start time, row id) order.

    The scan walks the (device_id, start_time, id) index from the earliest start that can still
    overlap (a segment starting before `start` overlaps only when it ends after it; segments are at
    most `max_segment` long, so the lower bound stays an index range), after a keyset cursor.
    """
    t = segments_table.c
    low = start - max_segment
    if after is not None:
        low = max(low, after[0])  # seek to the cursor instead of walking the window's earlier rows
    query = select(*SEGMENT_COLUMNS).where(
        t.device_id == device_id,
        t.start_time >= low,
        t.start_time < end,
        t.end_time > start,
    )
    if after is not None:
        after_start, after_id = after
        query = query.where(or_(t.start_time > after_start, t.id > after_id))
    query = query.order_by(t.start_time, t.id).limit(limit)
    return (await session.execute(query)).all()


async def newest_rows(session: AsyncSession, device_id: str, count: int) -> list[Any]:
    """The device's newest `count` rows (SEGMENT_COLUMNS), oldest first: a live window."""
    t = segments_table.c
    rows = (
        await session.execute(
            select(*SEGMENT_COLUMNS)
            .where(t.device_id == device_id)
            .order_by(t.start_time.desc(), t.id.desc())
            .limit(count)
        )
    ).all()
    return list(reversed(rows))


async def find_segments(
    session: AsyncSession,
    device_id: str,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    after: tuple[datetime, int] | None = None,
    max_segment: timedelta = MAX_SEGMENT,
) -> list[IndexedSegment]:
    """find_rows as the domain's values."""
    rows = await find_rows(session, device_id, start, end, limit=limit, after=after, max_segment=max_segment)
    return [_row(r) for r in rows]


async def stream_segments(
    session: AsyncSession,
    device_id: str,
    start: datetime,
    end: datetime,
    *,
    chunk: int = 5000,
    max_segment: timedelta = MAX_SEGMENT,
) -> AsyncIterator[IndexedSegment]:
    """Every segment of a device overlapping [start, end), in time order, fetched in keyset chunks."""
    after: tuple[datetime, int] | None = None
    while True:
        page = await find_segments(
            session, device_id, start, end, limit=chunk, after=after, max_segment=max_segment
        )
        for seg in page:
            yield seg
        if len(page) < chunk:
            return
        after = (page[-1].ref.start, page[-1].row_id)


async def get_segment(session: AsyncSession, key: str, version_id: str = "") -> IndexedSegment | None:
    """The indexed version of a key (the newest indexed one when version_id is empty)."""
    t = segments_table.c
    query = select(*SEGMENT_COLUMNS).where(t.key == key)
    if version_id:
        query = query.where(t.version_id == version_id)
    row = (await session.execute(query.order_by(t.id.desc()).limit(1))).first()
    return _row(row) if row is not None else None


async def earliest_start(session: AsyncSession, device_id: str) -> datetime | None:
    return await session.scalar(
        select(func.min(segments_table.c.start_time)).where(segments_table.c.device_id == device_id)
    )


async def device_owner(session: AsyncSession, device_id: str) -> str | None:
    """The owner unit the device's newest indexed segment names (None: the archive holds nothing of it)."""
    t = segments_table.c
    return await session.scalar(
        select(t.owner_unit_id).where(t.device_id == device_id).order_by(t.start_time.desc()).limit(1)
    )


async def day_leaves(session: AsyncSession, device_id: str, day: str) -> list[IndexedSegment]:
    """The device-day's segments in Merkle leaf order: start time, then row id."""
    t = segments_table.c
    rows = (
        await session.execute(
            select(*SEGMENT_COLUMNS)
            .where(t.device_id == device_id, t.day == day)
            .order_by(t.start_time, t.id)
        )
    ).all()
    return [_row(r) for r in rows]


@dataclass(frozen=True)
class DayRootRow:
    device_id: str
    day: str
    leaf_count: int
    root: bytes
    dirty: bool


async def get_day_root(session: AsyncSession, device_id: str, day: str) -> DayRootRow | None:
    t = day_roots_table.c
    row = (
        await session.execute(
            select(t.device_id, t.day, t.leaf_count, t.root, t.dirty).where(
                t.device_id == device_id, t.day == day
            )
        )
    ).first()
    return DayRootRow(*row) if row is not None else None


async def dirty_days(session: AsyncSession, limit: int) -> list[tuple[str, str]]:
    t = day_roots_table.c
    rows = (await session.execute(select(t.device_id, t.day).where(t.dirty.is_(True)).limit(limit))).all()
    return [(r.device_id, r.day) for r in rows]


async def put_day_root(
    session: AsyncSession, device_id: str, day: str, leaf_count: int, root: bytes, now: datetime
) -> None:
    t = day_roots_table.c
    await session.execute(
        update(day_roots_table)
        .where(t.device_id == device_id, t.day == day)
        .values(leaf_count=leaf_count, root=root, dirty=False, update_time=now)
    )


async def remove_segments(session: AsyncSession, row_ids: Sequence[int], now: datetime) -> None:
    """Drop expired rows from the index and flag their days' roots for recomputation."""
    if not row_ids:
        return
    t = segments_table.c
    days = (await session.execute(select(t.device_id, t.day).where(t.id.in_(row_ids)).distinct())).all()
    await session.execute(delete(segments_table).where(t.id.in_(row_ids)))
    await mark_days_dirty(session, [(d, day) for d, day in days], now)


# --- holds --------------------------------------------------------------------------------------


def _hold(row: Any, device_ids: Iterable[str]) -> Hold:
    return Hold(
        hold_id=row.hold_id,
        device_ids=frozenset(device_ids),
        start=row.start_time,
        end=row.end_time,
        case_reference=row.case_reference,
        reason=row.reason,
        placed_by=row.placed_by,
        placed_at=row.place_time,
        released_at=row.release_time,
        important=row.important,
        released_by=row.released_by,
    )


async def insert_hold(session: AsyncSession, hold: Hold, covered: int) -> None:
    await session.execute(
        holds_table.insert().values(
            hold_id=hold.hold_id,
            start_time=hold.start,
            end_time=hold.end,
            case_reference=hold.case_reference,
            reason=hold.reason,
            important=hold.important,
            placed_by=hold.placed_by,
            place_time=hold.placed_at,
            release_time=hold.released_at,
            released_by=hold.released_by,
            covered_segments=covered,
        )
    )
    await session.execute(
        hold_devices_table.insert(),
        [{"hold_id": hold.hold_id, "device_id": d} for d in sorted(hold.device_ids)],
    )


async def release_hold(session: AsyncSession, hold: Hold) -> None:
    await session.execute(
        update(holds_table)
        .where(holds_table.c.hold_id == hold.hold_id)
        .values(release_time=hold.released_at, released_by=hold.released_by)
    )


async def covered_count(session: AsyncSession, hold_id: str) -> int:
    return int(
        await session.scalar(select(holds_table.c.covered_segments).where(holds_table.c.hold_id == hold_id))
        or 0
    )


async def _devices_of(session: AsyncSession, hold_ids: Sequence[str]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {h: set() for h in hold_ids}
    if not hold_ids:
        return out
    t = hold_devices_table.c
    for row in (await session.execute(select(t.hold_id, t.device_id).where(t.hold_id.in_(hold_ids)))).all():
        out[row.hold_id].add(row.device_id)
    return out


async def get_hold(session: AsyncSession, hold_id: str) -> Hold | None:
    row = (await session.execute(select(holds_table).where(holds_table.c.hold_id == hold_id))).first()
    if row is None:
        return None
    return _hold(row, (await _devices_of(session, [hold_id]))[hold_id])


async def list_holds(
    session: AsyncSession,
    *,
    device_id: str = "",
    include_released: bool = False,
    limit: int | None = None,
    after: str = "",
) -> list[Hold]:
    """Holds in hold-id order (UUIDv7: placement order), active only unless asked, optionally one device's."""
    t = holds_table.c
    query = select(holds_table)
    if not include_released:
        query = query.where(t.release_time.is_(None))
    if device_id:
        query = query.where(
            t.hold_id.in_(
                select(hold_devices_table.c.hold_id).where(hold_devices_table.c.device_id == device_id)
            )
        )
    if after:
        query = query.where(t.hold_id > after)
    query = query.order_by(t.hold_id)
    if limit is not None:
        query = query.limit(limit)
    rows = (await session.execute(query)).all()
    devices = await _devices_of(session, [r.hold_id for r in rows])
    return [_hold(r, devices[r.hold_id]) for r in rows]


# --- findings and state ---------------------------------------------------------------------------


async def record_finding(
    session: AsyncSession,
    *,
    device_id: str,
    key: str,
    version_id: str,
    kind: str,
    detail: str,
    detected_by: str,
    now: datetime,
) -> bool:
    """Record a finding once per (object, kind); False when it was already recorded."""
    t = findings_table.c
    seen = await session.scalar(select(t.id).where(t.key == key, t.version_id == version_id, t.kind == kind))
    if seen is not None:
        return False
    await session.execute(
        findings_table.insert().values(
            device_id=device_id,
            key=key,
            version_id=version_id,
            kind=kind,
            detail=detail,
            detected_by=detected_by,
            detect_time=now,
        )
    )
    return True


async def get_state(session: AsyncSession, name: str) -> str | None:
    return await session.scalar(select(state_table.c.value).where(state_table.c.name == name))


async def put_state(session: AsyncSession, name: str, value: str, now: datetime) -> None:
    t = state_table.c
    updated = await session.execute(
        update(state_table).where(t.name == name).values(value=value, update_time=now)
    )
    if updated.rowcount == 0:
        await session.execute(state_table.insert().values(name=name, value=value, update_time=now))


# --- retention and holds (ARC-2, ARC-3, ARC-6): the sweeper's and the holds' queries --------------


async def expired_candidates(
    session: AsyncSession, now: datetime, *, limit: int, after: tuple[datetime, int] | None = None
) -> list[IndexedSegment]:
    """Rows whose retain-until has passed, in (retain_until, id) order, after a keyset cursor.

    The cursor moves past rows the sweeper keeps (held, or refused by storage), so they never starve
    the rows behind them; `retain_until >= cursor` keeps the scan an index range on SQLite too.
    """
    t = segments_table.c
    query = select(*SEGMENT_COLUMNS).where(t.retain_until <= now)
    if after is not None:
        after_until, after_id = after
        query = query.where(t.retain_until >= after_until, or_(t.retain_until > after_until, t.id > after_id))
    rows = (await session.execute(query.order_by(t.retain_until, t.id).limit(limit))).all()
    return [_row(r) for r in rows]


async def present_rows(session: AsyncSession, row_ids: Sequence[int]) -> set[int]:
    """Which of the rows are still indexed, locked against a concurrent sweep where the database can."""
    if not row_ids:
        return set()
    t = segments_table.c
    query = select(t.id).where(t.id.in_(row_ids)).with_for_update()
    return {r for (r,) in (await session.execute(query)).all()}


async def covered_segments(
    session: AsyncSession,
    device_ids: Iterable[str],
    start: datetime,
    end: datetime,
    *,
    max_segment: timedelta = MAX_SEGMENT,
) -> list[IndexedSegment]:
    """Every indexed version of the devices whose time overlaps [start, end) (what a hold covers)."""
    out: list[IndexedSegment] = []
    for device_id in sorted(set(device_ids)):
        async for seg in stream_segments(session, device_id, start, end, max_segment=max_segment):
            out.append(seg)
    return out


async def active_holds_covering(
    session: AsyncSession, device_id: str, start: datetime, end: datetime
) -> list[Hold]:
    """Unreleased holds naming the device whose range overlaps [start, end)."""
    t = holds_table.c
    query = (
        select(holds_table)
        .join(hold_devices_table, hold_devices_table.c.hold_id == t.hold_id)
        .where(
            hold_devices_table.c.device_id == device_id,
            t.release_time.is_(None),
            t.start_time < end,
            t.end_time > start,
        )
        .order_by(t.hold_id)
    )
    rows = (await session.execute(query)).all()
    devices = await _devices_of(session, [r.hold_id for r in rows])
    return [_hold(r, devices[r.hold_id]) for r in rows]


async def set_legal_hold(session: AsyncSession, row_ids: Sequence[int], on: bool) -> None:
    """Record whether the archive's S3 legal hold is set on these versions."""
    t = segments_table.c
    for i in range(0, len(row_ids), 500):
        await session.execute(
            update(segments_table).where(t.id.in_(row_ids[i : i + 500])).values(legal_hold=on)
        )


async def extend_retention(session: AsyncSession, updates: Sequence[tuple[int, datetime]]) -> None:
    """Raise rows' retain-until (ARC-6); a date earlier than the recorded one is never written."""
    t = segments_table.c
    for row_id, until in updates:
        await session.execute(
            update(segments_table).where(t.id == row_id, t.retain_until < until).values(retain_until=until)
        )


async def hold_covered_counts(session: AsyncSession, hold_ids: Sequence[str]) -> dict[str, int]:
    if not hold_ids:
        return {}
    t = holds_table.c
    rows = (await session.execute(select(t.hold_id, t.covered_segments).where(t.hold_id.in_(hold_ids)))).all()
    return {r.hold_id: int(r.covered_segments) for r in rows}


# The expiry sweeper's hot path (ARC-3) works at the driver's level: SQLAlchemy's per-row result and
# parameter processing cost more than SQLite's own work on a million-row sweep. Time columns come back
# as the driver gives them — 'YYYY-MM-DD HH:MM:SS.ffffff' strings (naive UTC) on SQLite, datetimes on
# PostgreSQL — and vigil_archive.sweeper.utc_naive reads both.
EXPIRED_PAGE_COLUMNS = (
    "id, device_id, sequence, start_time, end_time, day, bucket, key, version_id, size, sha256, "
    "retain_until, owner_unit_id, codec, container, legal_hold"
)
_EXPIRED_PAGE = text(
    f"SELECT {EXPIRED_PAGE_COLUMNS} FROM archive_segments WHERE retain_until <= :now "
    "ORDER BY retain_until, id LIMIT :limit"
).bindparams(bindparam("now", type_=UTCDateTime))
# The cursor's retain-until goes back exactly as the driver gave it (no re-formatting to compare).
_EXPIRED_PAGE_AFTER = text(
    f"SELECT {EXPIRED_PAGE_COLUMNS} FROM archive_segments WHERE retain_until <= :now "
    "AND retain_until >= :after_until AND (retain_until > :after_until OR id > :after_id) "
    "ORDER BY retain_until, id LIMIT :limit"
).bindparams(bindparam("now", type_=UTCDateTime))


async def expired_page(
    session: AsyncSession, now: datetime, *, limit: int, after: tuple[Any, int] | None = None
) -> list[Any]:
    """expired_rows in the session's transaction."""
    return await session.run_sync(lambda sync: expired_rows(sync.connection(), now, limit=limit, after=after))


def expired_rows(
    conn: Connection, now: datetime, *, limit: int, after: tuple[Any, int] | None = None
) -> list[Any]:
    """expired_candidates' rows as the driver's tuples (EXPIRED_PAGE_COLUMNS), for the sweeper.

    `after` is (retain_until, id) of the previous page's last row, as this function returned them.
    """
    if after is None:
        result = conn.execute(_EXPIRED_PAGE, {"now": now, "limit": limit})
    else:
        params = {"now": now, "after_until": after[0], "after_id": after[1], "limit": limit}
        result = conn.execute(_EXPIRED_PAGE_AFTER, params)
    return list(result.all())


def delete_segment_rows(conn: Connection, row_ids: Sequence[int]) -> list[Any]:
    """Drop index rows; (id, device_id, day) of each row this statement removed.

    A row a concurrent transaction already removed is not returned (PostgreSQL's DELETE waits on the
    other's row lock, then skips the row; SQLite has one writer at a time), so whoever gets a row back
    is the one that reports its removal — exactly once.

    SQLite: the rows are read as one JSON value, then deleted in one statement. Every row a statement
    steps through hands Python's GIL back and forth (the driver releases it around each step), and on
    a million-row sweep those hand-offs, against the event loop's own work, cost more than the
    deletes. The transaction holds SQLite's write lock (BEGIN IMMEDIATE), so no one can remove a row
    between the read and the delete: the rows read are exactly the rows deleted.
    """
    out: list[Any] = []
    sqlite = conn.dialect.name == "sqlite"
    for i in range(0, len(row_ids), 1000):
        ids = list(row_ids[i : i + 1000])
        if sqlite:
            where = f"id IN ({_placeholders(conn.dialect, len(ids))})"
            found = conn.exec_driver_sql(
                f"SELECT json_group_array(json_array(id, device_id, day)) FROM archive_segments WHERE {where}",
                tuple(ids),
            ).scalar_one()
            conn.exec_driver_sql(f"DELETE FROM archive_segments WHERE {where}", tuple(ids))
            out.extend(tuple(r) for r in json.loads(found))
        else:  # PostgreSQL
            sql = "DELETE FROM archive_segments WHERE id = ANY($1) RETURNING id, device_id, day"
            out.extend(conn.exec_driver_sql(sql, (ids,)).all())
    return out


def _placeholders(dialect: Any, count: int) -> str:
    style = dialect.paramstyle
    if style == "qmark":
        return ", ".join("?" * count)
    if style == "numeric_dollar":
        return ", ".join(f"${i}" for i in range(1, count + 1))
    if style in ("format", "pyformat"):
        return ", ".join(["%s"] * count)
    if style == "numeric":
        return ", ".join(f":{i}" for i in range(1, count + 1))
    raise NotImplementedError(f"paramstyle {style}")


def driver_time(session: AsyncSession, t: datetime) -> Any:
    """A UTC time exactly as SQLAlchemy hands a UTCDateTime column's value to the driver (on SQLite
    the 'YYYY-MM-DD HH:MM:SS.ffffff' text it stores, microseconds always written)."""
    dialect = session.get_bind().dialect
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    return process(t) if process is not None else t


OUTBOX_COLUMNS = ("event_id", "topic", "key", "ce_type", "source", "subject", "payload", "created_at")


def insert_outbox_rows(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Outbox rows as the driver takes them — (event_id, topic, key, ce_type, source, subject, payload,
    created_at), created_at from driver_time — vigil_kit.outbox's table, written the way outbox.enqueue
    writes it, without its per-row cost (the relay reads them like any other).

    SQLite: multi-row INSERTs (vigil_kit.db.sqlite_insert_many), a step each rather than one per row.
    Elsewhere one executemany."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        sqlite_insert_many(conn.exec_driver_sql, "outbox", OUTBOX_COLUMNS, rows)
        return
    sql = f"INSERT INTO outbox ({', '.join(OUTBOX_COLUMNS)}) VALUES ({_placeholders(conn.dialect, 8)})"
    conn.exec_driver_sql(sql, list(rows))


# --- integrity (ARC-4): day roots, the scrubber's walk, reconciliation's index listing -------------


async def lock_day_root(session: AsyncSession, device_id: str, day: str) -> DayRootRow | None:
    """The day's root row, locked (PostgreSQL) so an indexer marking it dirty waits for the recompute.

    Without the lock a segment indexed between reading the day's leaves and writing its root would
    have its dirty flag cleared by a root that does not include it. SQLite serialises writers anyway.
    """
    t = day_roots_table.c
    row = (
        await session.execute(
            select(t.device_id, t.day, t.leaf_count, t.root, t.dirty)
            .where(t.device_id == device_id, t.day == day)
            .with_for_update()
        )
    ).first()
    return DayRootRow(*row) if row is not None else None


async def segment_id_bounds(session: AsyncSession) -> tuple[int, int] | None:
    """The lowest and highest row id in the index (None when it is empty)."""
    t = segments_table.c
    low, high = (await session.execute(select(func.min(t.id), func.max(t.id)))).one()
    return None if low is None else (int(low), int(high))


async def segments_after_id(session: AsyncSession, after: int | None, limit: int) -> list[IndexedSegment]:
    """The next `limit` rows in row-id order after `after` (from the first when None)."""
    t = segments_table.c
    query = select(*SEGMENT_COLUMNS)
    if after is not None:
        query = query.where(t.id > after)
    rows = (await session.execute(query.order_by(t.id).limit(limit))).all()
    return [_row(r) for r in rows]


async def segments_by_ids(session: AsyncSession, row_ids: Sequence[int]) -> list[IndexedSegment]:
    """The rows with these ids that still exist, in id order."""
    if not row_ids:
        return []
    t = segments_table.c
    rows = (await session.execute(select(*SEGMENT_COLUMNS).where(t.id.in_(row_ids)).order_by(t.id))).all()
    return [_row(r) for r in rows]


async def index_listing(
    session: AsyncSession, bucket: str, prefix: str, *, after: tuple[str, str] | None, limit: int
) -> list[IndexedSegment]:
    """Indexed versions of a bucket under a key prefix in (key, version id) order, after a cursor.

    The order is by code point (the C collation on PostgreSQL, SQLite's default binary one), the
    order Python compares strings in, so the reconciliation merge sees both listings sorted alike.
    """
    t = segments_table.c
    binary = session.get_bind().dialect.name == "postgresql"
    key = t.key.collate("C") if binary else t.key
    version = t.version_id.collate("C") if binary else t.version_id
    query = select(*SEGMENT_COLUMNS).where(t.bucket == bucket, t.key.startswith(prefix, autoescape=True))
    if after is not None:
        after_key, after_version = after
        query = query.where(or_(key > after_key, and_(key == after_key, version > after_version)))
    rows = (await session.execute(query.order_by(key, version).limit(limit))).all()
    return [_row(r) for r in rows]


async def mark_days_dirty(session: AsyncSession, days: Sequence[tuple[str, str]], now: datetime) -> None:
    """mark_days_dirty_on in the session's transaction."""
    await session.run_sync(lambda sync: mark_days_dirty_on(sync.connection(), days, now))


def mark_days_dirty_on(conn: Connection, days: Sequence[tuple[str, str]], now: datetime) -> None:
    """mark_day_dirty for many (device, day) pairs in three statements (a sweep batch spans many devices)."""
    if not days:
        return
    t = day_roots_table.c
    wanted = set(days)
    devices = sorted({d for d, _ in wanted})
    existing = {
        (r.device_id, r.day)
        for r in conn.execute(
            select(t.device_id, t.day).where(
                t.device_id.in_(devices), t.day.in_(sorted({d for _, d in wanted}))
            )
        ).all()
    }
    found = wanted & existing
    if found:
        conn.execute(
            update(day_roots_table)
            .where(t.device_id == bindparam("b_device"), t.day == bindparam("b_day"))
            .values(dirty=True, update_time=now),
            [{"b_device": d, "b_day": day} for d, day in sorted(found)],
        )
    missing = sorted(wanted - existing)
    if missing:
        conn.execute(
            day_roots_table.insert(),
            [
                {"device_id": d, "day": day, "leaf_count": 0, "root": b"", "dirty": True, "update_time": now}
                for d, day in missing
            ],
        )


# --- read paths in one transaction (FindSegments pages, playback manifests) ------------------------
# Synchronous, on a Connection: they run inside the read's own audit transaction, in one worker-thread
# hand-off on SQLite (vigil_kit.db.ThreadedTransactions) or through AsyncConnection.run_sync elsewhere.
# Rows come back as the driver gives them (times as SQLite's text or PostgreSQL's datetimes; codec
# reads both), without SQLAlchemy's per-row type processing: a page is built straight into protobuf.
PAGE_COLUMNS = (
    "id, device_id, sequence, start_time, end_time, bucket, key, version_id, size, sha256, "
    "retain_until, owner_unit_id, codec, container, legal_hold"
)
_PAGE_WHERE = "device_id = :device AND start_time >= :low AND start_time < :end AND end_time > :start"
_PAGE_TIMES = (
    bindparam("low", type_=UTCDateTime),
    bindparam("end", type_=UTCDateTime),
    bindparam("start", type_=UTCDateTime),
)
_PAGE = text(
    f"SELECT {PAGE_COLUMNS} FROM archive_segments WHERE {_PAGE_WHERE} ORDER BY start_time, id LIMIT :limit"
).bindparams(*_PAGE_TIMES)
# After a cursor the index range starts at the cursor's start time (page_rows passes the later of the two
# lower bounds as :low), so a page seeks to its position instead of walking the window's earlier rows.
_PAGE_AFTER = text(
    f"SELECT {PAGE_COLUMNS} FROM archive_segments WHERE {_PAGE_WHERE} "
    "AND (start_time > :after_start OR id > :after_id) "
    "ORDER BY start_time, id LIMIT :limit"
).bindparams(*_PAGE_TIMES, bindparam("after_start", type_=UTCDateTime))
_HOLD_SPANS = text(
    "SELECT h.hold_id, h.start_time, h.end_time FROM archive_holds h "
    "JOIN archive_hold_devices d ON d.hold_id = h.hold_id "
    "WHERE d.device_id = :device AND h.release_time IS NULL AND h.start_time < :end AND h.end_time > :start "
    "ORDER BY h.hold_id"
).bindparams(bindparam("start", type_=UTCDateTime), bindparam("end", type_=UTCDateTime))


def page_rows(
    conn: Connection,
    device_id: str,
    start: datetime,
    end: datetime,
    *,
    limit: int,
    after: tuple[datetime, int] | None = None,
    max_segment: timedelta = MAX_SEGMENT,
) -> list[Any]:
    """find_rows' rows (PAGE_COLUMNS, driver values), on a synchronous connection."""
    params: dict[str, Any] = {"device": device_id, "low": start - max_segment, "end": end, "start": start}
    params["limit"] = limit
    if after is None:
        return list(conn.execute(_PAGE, params).all())
    params["after_start"], params["after_id"] = after
    params["low"] = max(params["low"], after[0])
    return list(conn.execute(_PAGE_AFTER, params).all())


def hold_spans(conn: Connection, device_id: str, start: datetime, end: datetime) -> list[Any]:
    """(hold_id, start_time, end_time) of the unreleased holds naming the device that overlap [start, end)
    (active_holds_covering's holds, driver values), on a synchronous connection."""
    return list(conn.execute(_HOLD_SPANS, {"device": device_id, "start": start, "end": end}).all())
