"""Ingest's tables (the device cache, accepted uploads) and the async repository over them.

Works on SQLite and PostgreSQL alike. An upload's sequence is a uint64 on the wire, which no SQL
integer type holds on both databases, so it is stored as its canonical decimal text: equality is
all the table needs (the primary key (device_id, sequence) is what makes a sequence stored once).
Start times are seconds + nanos: nanoseconds since 1970 overflow a BIGINT after 2262.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, String, Table, Text, select, tuple_
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from vigil_kit.db import UTCDateTime

METADATA = MetaData()

device_cache = Table(
    "device_cache",
    METADATA,
    Column("device_id", String(20), primary_key=True),
    Column("state", String(40), nullable=False),  # vigil.registry.v1.DeviceState value name
    Column("public_key", Text, nullable=False),  # base64 of the raw 32-byte Ed25519 key ("" if none)
    Column("retention_days", Float, nullable=False),
    Column("owner_unit_id", String(18), nullable=False),
    Column("site_id", String(64), nullable=False),
    Column("division_code", String(6), nullable=False),
    # The registry's update_time of these facts: an older event never overwrites newer facts.
    Column("source_time", UTCDateTime, nullable=True),
    Column("cached_at", UTCDateTime, nullable=False),
)

uploads = Table(
    "uploads",
    METADATA,
    Column("device_id", String(20), primary_key=True),
    Column("sequence", String(20), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("bucket", String(63), nullable=False),
    Column("object_key", Text, nullable=False),
    Column("version_id", String(255), nullable=False),
    Column("start_seconds", BigInteger, nullable=False),
    Column("start_nanos", Integer, nullable=False),
    Column("duration_ns", BigInteger, nullable=False),
    Column("container", String(16), nullable=False),
    Column("codec", String(32), nullable=False),
    Column("retain_until", UTCDateTime, nullable=False),
    Column("retention_days", Float, nullable=False),
    Column("ingest_time", UTCDateTime, nullable=False),
    Column("event_id", String(36), nullable=False),
)


@dataclass(frozen=True)
class DeviceFacts:
    """What ingest needs to know about a device: is it active, its key, its retention and owner."""

    device_id: str
    state: str
    public_key: str
    retention_days: float
    owner_unit_id: str
    site_id: str = ""
    division_code: str = ""
    source_time: datetime | None = None

    @property
    def active(self) -> bool:
        return self.state == "DEVICE_STATE_ACTIVE"


@dataclass(frozen=True)
class UploadRecord:
    """One accepted upload: the first result, returned again to an idempotent replay."""

    device_id: str
    sequence: int
    sha256: str
    size: int
    bucket: str
    object_key: str
    version_id: str
    start_ns: int
    duration_ns: int
    container: str
    codec: str
    retain_until: datetime
    retention_days: float
    ingest_time: datetime
    event_id: str


_NS = 1_000_000_000


async def get_device(session: AsyncSession, device_id: str) -> DeviceFacts | None:
    row = (await session.execute(select(device_cache).where(device_cache.c.device_id == device_id))).first()
    return None if row is None else _device(row)


async def get_devices(session: AsyncSession, device_ids: Iterable[str]) -> dict[str, DeviceFacts]:
    """The cached facts of these devices (one query), by id; unknown ids are absent."""
    rows = (await session.execute(_devices_query(device_ids))).all()
    return {row.device_id: _device(row) for row in rows}


def _devices_query(device_ids: Iterable[str]) -> Any:
    return select(device_cache).where(device_cache.c.device_id.in_(sorted(set(device_ids))))


def _device(row: Any) -> DeviceFacts:
    return DeviceFacts(
        device_id=row.device_id,
        state=row.state,
        public_key=row.public_key,
        retention_days=row.retention_days,
        owner_unit_id=row.owner_unit_id,
        site_id=row.site_id,
        division_code=row.division_code,
        source_time=row.source_time,
    )


async def put_device(session: AsyncSession, facts: DeviceFacts, *, now: datetime) -> bool:
    """Insert or replace a device's facts unless the cache already holds newer ones; True if written."""
    current = (
        await session.execute(
            select(device_cache.c.source_time).where(device_cache.c.device_id == facts.device_id)
        )
    ).first()
    values = {
        "state": facts.state,
        "public_key": facts.public_key,
        "retention_days": facts.retention_days,
        "owner_unit_id": facts.owner_unit_id,
        "site_id": facts.site_id,
        "division_code": facts.division_code,
        "source_time": facts.source_time,
        "cached_at": now,
    }
    if current is None:
        await session.execute(device_cache.insert().values(device_id=facts.device_id, **values))
        return True
    stored = current.source_time
    if stored is not None and facts.source_time is not None and facts.source_time < stored:
        return False  # a stale event (or a registry answer overtaken by a later event)
    await session.execute(
        device_cache.update().where(device_cache.c.device_id == facts.device_id).values(**values)
    )
    return True


async def get_upload(session: AsyncSession, device_id: str, sequence: int) -> UploadRecord | None:
    row = (
        await session.execute(
            select(uploads).where(uploads.c.device_id == device_id, uploads.c.sequence == str(sequence))
        )
    ).first()
    return None if row is None else _upload(row)


async def get_uploads(
    session: AsyncSession, keys: Iterable[tuple[str, int]]
) -> dict[tuple[str, int], UploadRecord]:
    """The stored uploads of these (device, sequence) pairs (one query), by pair; absent when not stored."""
    rows = (await session.execute(_uploads_query(keys))).all()
    return {(r.device_id, int(r.sequence)): _upload(r) for r in rows}


def _uploads_query(keys: Iterable[tuple[str, int]]) -> Any:
    pairs = sorted({(device_id, str(sequence)) for device_id, sequence in keys})
    return select(uploads).where(tuple_(uploads.c.device_id, uploads.c.sequence).in_(pairs))


def _upload(row: Any) -> UploadRecord:
    return UploadRecord(
        device_id=row.device_id,
        sequence=int(row.sequence),
        sha256=row.sha256,
        size=row.size,
        bucket=row.bucket,
        object_key=row.object_key,
        version_id=row.version_id,
        start_ns=row.start_seconds * _NS + row.start_nanos,
        duration_ns=row.duration_ns,
        container=row.container,
        codec=row.codec,
        retain_until=row.retain_until,
        retention_days=row.retention_days,
        ingest_time=row.ingest_time,
        event_id=row.event_id,
    )


async def add_upload(session: AsyncSession, record: UploadRecord) -> None:
    await add_uploads(session, [record])


async def add_uploads(session: AsyncSession, records: Sequence[UploadRecord]) -> None:
    """The records' rows in one executemany INSERT (a group commit's uploads)."""
    await session.execute(uploads.insert(), [_upload_values(r) for r in records])


# --- the upload path's group commit, at the driver's level -----------------------------------------
#
# The look-ups and records of a group commit run on a synchronous connection (in one hand-off to the
# kit's transaction thread on SQLite). They are written as plain SQL with the driver's own parameters:
# through SQLAlchemy's statement construction, caching and result processing the same two-statement
# transaction cost about fifty times what SQLite spent on it. Times go through UTCDateTime's own bind
# and result processors, so the rows are exactly the ones the ORM paths above read and write.

_DEVICE_COLUMNS = (
    "device_id, state, public_key, retention_days, owner_unit_id, site_id, division_code, source_time"
)
_UPLOAD_COLUMNS = tuple(c.name for c in uploads.columns)
_OUTBOX_COLUMNS = ("event_id", "topic", "key", "ce_type", "source", "subject", "payload", "created_at")


@dataclass(frozen=True)
class _Driver:
    """A dialect's parameter markers and UTCDateTime's value conversions to and from its driver."""

    paramstyle: str
    time_in: Callable[[datetime], Any]
    time_out: Callable[[Any], datetime | None]

    def marks(self, count: int, start: int = 1) -> str:
        if self.paramstyle == "qmark":
            return ", ".join("?" * count)
        if self.paramstyle == "numeric_dollar":
            return ", ".join(f"${i}" for i in range(start, start + count))
        if self.paramstyle in ("format", "pyformat"):
            return ", ".join(["%s"] * count)
        raise NotImplementedError(f"paramstyle {self.paramstyle}")


_drivers: dict[str, _Driver] = {}


def _driver(dialect: Dialect) -> _Driver:
    found = _drivers.get(dialect.name)
    if found is None:
        impl = UTCDateTime().dialect_impl(dialect)
        bind = impl.bind_processor(dialect)
        result = impl.result_processor(dialect, None)
        found = _Driver(
            paramstyle=dialect.paramstyle,
            time_in=bind or (lambda t: t),
            time_out=result or (lambda v: v),
        )
        _drivers[dialect.name] = found
    return found


def lookup(
    conn: Connection, keys: Sequence[tuple[str, int]]
) -> tuple[dict[str, DeviceFacts], dict[tuple[str, int], UploadRecord]]:
    """get_devices and get_uploads of these (device, sequence) pairs on a synchronous connection: a group
    commit's look-ups, two statements in the caller's transaction."""
    d = _driver(conn.dialect)
    ids = sorted({device_id for device_id, _ in keys})
    devices: dict[str, DeviceFacts] = {}
    sql = f"SELECT {_DEVICE_COLUMNS} FROM device_cache WHERE device_id IN ({d.marks(len(ids))})"
    for row in conn.exec_driver_sql(sql, tuple(ids)):
        devices[row[0]] = DeviceFacts(*row[:7], source_time=d.time_out(row[7]))
    pairs = sorted({(device_id, str(sequence)) for device_id, sequence in keys})
    params = tuple(v for pair in pairs for v in pair)
    rows = ", ".join(f"({d.marks(2, 2 * i + 1)})" for i in range(len(pairs)))
    sql = f"SELECT {', '.join(_UPLOAD_COLUMNS)} FROM uploads WHERE (device_id, sequence) IN ({rows})"
    stored: dict[tuple[str, int], UploadRecord] = {}
    for row in conn.exec_driver_sql(sql, params):
        values = dict(zip(_UPLOAD_COLUMNS, row, strict=True))
        for name in ("retain_until", "ingest_time"):
            values[name] = d.time_out(values[name])
        record = _upload(_Row(values))
        stored[(record.device_id, record.sequence)] = record
    return devices, stored


class _Row:
    """Attribute access over a column → value mapping (what _upload reads from a result row)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def record_uploads(
    conn: Connection, records: Sequence[UploadRecord], outbox_rows: Sequence[dict[str, Any]]
) -> None:
    """add_uploads plus the outbox rows that go with them, on a synchronous connection, in the caller's
    transaction: one executemany each, so a group commit costs two statements whatever its size.

    `outbox_rows` are vigil_kit.outbox's rows as outbox.enqueue writes them (events.outbox_row builds
    them); the relay reads them like any other."""
    d = _driver(conn.dialect)
    values = []
    for record in records:
        row = _upload_values(record)
        row["retain_until"] = d.time_in(row["retain_until"])
        row["ingest_time"] = d.time_in(row["ingest_time"])
        values.append(tuple(row[c] for c in _UPLOAD_COLUMNS))
    conn.exec_driver_sql(
        f"INSERT INTO uploads ({', '.join(_UPLOAD_COLUMNS)}) VALUES ({d.marks(len(_UPLOAD_COLUMNS))})", values
    )
    if outbox_rows:
        rows = [(*(r[c] for c in _OUTBOX_COLUMNS[:-1]), d.time_in(r["created_at"])) for r in outbox_rows]
        conn.exec_driver_sql(
            f"INSERT INTO outbox ({', '.join(_OUTBOX_COLUMNS)}) VALUES ({d.marks(len(_OUTBOX_COLUMNS))})",
            rows,
        )


def _upload_values(record: UploadRecord) -> dict[str, Any]:
    seconds, nanos = divmod(record.start_ns, _NS)
    return dict(
        device_id=record.device_id,
        sequence=str(record.sequence),
        sha256=record.sha256,
        size=record.size,
        bucket=record.bucket,
        object_key=record.object_key,
        version_id=record.version_id,
        start_seconds=seconds,
        start_nanos=nanos,
        duration_ns=record.duration_ns,
        container=record.container,
        codec=record.codec,
        retain_until=record.retain_until,
        retention_days=record.retention_days,
        ingest_time=record.ingest_time,
        event_id=record.event_id,
    )
