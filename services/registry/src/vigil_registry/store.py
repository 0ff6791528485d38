"""The registry's tables (units, sites, devices, filings) and the async repository over them.

Works on SQLite and PostgreSQL alike. Devices carry copies of their site's division code and place
category (kept in step by `update_site`) so that every ListDevices filter is an indexed column of one
table, and pages are keyset-paginated on the primary key: a page costs an index range scan of
page_size rows whatever the table's size.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    case,
    event,
    func,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from vigil_kit.db import UTCDateTime
from vigil_registry.domain.model import (
    AreaType,
    Device,
    DeviceState,
    FilingFacts,
    Funding,
    PlaceCategory,
    Point,
    PrivacyMask,
    Site,
    Unit,
    UnitKind,
)

METADATA = MetaData()

units = Table(
    "units",
    METADATA,
    Column("unit_id", String(18), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("kind", String(48), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_units_kind", "kind", "unit_id"),
)

sites = Table(
    "sites",
    METADATA,
    Column("site_id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("division_code", String(6), nullable=False),
    Column("address", Text, nullable=False),
    Column("latitude", Float, nullable=True),
    Column("longitude", Float, nullable=True),
    Column("place_category", String(64), nullable=False),
    Column("key_public_area", Boolean, nullable=False),
    Column("managing_unit_id", String(18), ForeignKey("units.unit_id"), nullable=False),
    Column("funding", String(32), nullable=False),
    Column("near_military_zone", Boolean, nullable=False),
    Column("military_opinion_ref", Text, nullable=False),
    Column("secret_related", Boolean, nullable=False),
    Column("designed_on", Date, nullable=True),
    Column("built_on", Date, nullable=True),
    Column("in_use_on", Date, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_sites_division", "division_code", "site_id"),
    Index("ix_sites_category", "place_category", "site_id"),
    Index("ix_sites_managing_unit", "managing_unit_id", "site_id"),
)

devices = Table(
    "devices",
    METADATA,
    Column("device_id", String(20), primary_key=True),
    Column("site_id", String(64), ForeignKey("sites.site_id"), nullable=False),
    Column("owner_unit_id", String(18), ForeignKey("units.unit_id"), nullable=False),
    # Copies of the site's facts, for indexed ListDevices filters (kept in step by update_site).
    Column("division_code", String(6), nullable=False),
    Column("place_category", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("area_type", String(64), nullable=False),
    Column("latitude", Float, nullable=True),
    Column("longitude", Float, nullable=True),
    Column("direction_deg", Float, nullable=True),
    Column("capture_range_m", Float, nullable=True),
    Column("notice_sign_confirmed", Boolean, nullable=False),
    # REG-5: [[[x, y], ...], ...] in normalised frame coordinates.
    Column("privacy_masks", JSON, nullable=False),
    Column("privacy_measures", Text, nullable=False),
    Column("vendor", String(255), nullable=False),
    Column("model", String(255), nullable=False),
    Column("public_key", String(64), nullable=False),
    Column("retention_profile", String(64), nullable=False),
    # ARC-1: the resolved retention in seconds (fractional days are allowed outside mandatory places).
    Column("retention_s", Float, nullable=True),
    Column("keepalive_interval_s", Float, nullable=False),
    Column("keepalive_timeout_count", Integer, nullable=False),
    Column("state", String(32), nullable=False),
    Column("last_keepalive_time", UTCDateTime, nullable=True),
    Column("activated_at", UTCDateTime, nullable=True),
    Column("offline_since", UTCDateTime, nullable=True),
    Column("registered_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # Each filter column leads an index that ends in the page key, so filter + keyset is one range scan.
    Index("ix_devices_state", "state", "device_id"),
    Index("ix_devices_owner", "owner_unit_id", "device_id"),
    Index("ix_devices_site", "site_id", "device_id"),
    Index("ix_devices_category", "place_category", "device_id"),
    Index("ix_devices_division", "division_code", "device_id"),
    # A division code with a second filter (migration 0003): each per-code branch is one exact range.
    Index("ix_devices_division_category", "division_code", "place_category", "device_id"),
    Index("ix_devices_division_state", "division_code", "state", "device_id"),
)

filings = Table(
    "filings",
    METADATA,
    Column("unit_id", String(18), ForeignKey("units.unit_id"), primary_key=True),
    Column("site_id", String(64), ForeignKey("sites.site_id"), primary_key=True),
    Column("filing_number", String(128), nullable=False),
    Column("filed_on", Date, nullable=False),
    # REG-7: the facts as filed (FilingFacts as JSON).
    Column("filed_facts", JSON, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)


# --- row <-> domain -----------------------------------------------------------------------------


def _unit(row: Any) -> Unit:
    return Unit(unit_id=row.unit_id, name=row.name, kind=UnitKind(row.kind))


def _site(row: Any) -> Site:
    return Site(
        site_id=row.site_id,
        name=row.name,
        division_code=row.division_code,
        place_category=PlaceCategory(row.place_category),
        managing_unit_id=row.managing_unit_id,
        funding=Funding(row.funding),
        address=row.address,
        latitude=row.latitude,
        longitude=row.longitude,
        key_public_area=row.key_public_area,
        near_military_zone=row.near_military_zone,
        military_opinion_ref=row.military_opinion_ref,
        secret_related=row.secret_related,
        designed_on=row.designed_on,
        built_on=row.built_on,
        in_use_on=row.in_use_on,
    )


def _site_values(site: Site) -> dict[str, Any]:
    return {
        "site_id": site.site_id,
        "name": site.name,
        "division_code": site.division_code,
        "address": site.address,
        "latitude": site.latitude,
        "longitude": site.longitude,
        "place_category": site.place_category.value,
        "key_public_area": site.key_public_area,
        "managing_unit_id": site.managing_unit_id,
        "funding": site.funding.value,
        "near_military_zone": site.near_military_zone,
        "military_opinion_ref": site.military_opinion_ref,
        "secret_related": site.secret_related,
        "designed_on": site.designed_on,
        "built_on": site.built_on,
        "in_use_on": site.in_use_on,
    }


def masks_to_json(masks: Iterable[PrivacyMask]) -> list[list[list[float]]]:
    return [[[p.x, p.y] for p in m.points] for m in masks]


def masks_from_json(data: Any) -> tuple[PrivacyMask, ...]:
    return tuple(PrivacyMask(tuple(Point(float(x), float(y)) for x, y in m)) for m in data or ())


def _device(row: Any) -> Device:
    return Device(
        device_id=row.device_id,
        site_id=row.site_id,
        owner_unit_id=row.owner_unit_id,
        name=row.name,
        area_type=AreaType(row.area_type),
        latitude=row.latitude,
        longitude=row.longitude,
        direction_deg=row.direction_deg,
        capture_range_m=row.capture_range_m,
        notice_sign_confirmed=row.notice_sign_confirmed,
        privacy_masks=masks_from_json(row.privacy_masks),
        privacy_measures=row.privacy_measures,
        vendor=row.vendor,
        model=row.model,
        public_key=row.public_key,
        retention_profile=row.retention_profile,
        keepalive_interval_s=row.keepalive_interval_s,
        keepalive_timeout_count=row.keepalive_timeout_count,
        state=DeviceState(row.state),
        retention=timedelta(seconds=row.retention_s) if row.retention_s is not None else None,
        last_keepalive_time=row.last_keepalive_time,
        activated_at=row.activated_at,
        offline_since=row.offline_since,
        registered_at=row.registered_at,
    )


def _device_values(device: Device, site: Site, now: datetime) -> dict[str, Any]:
    return {
        "device_id": device.device_id,
        "site_id": device.site_id,
        "owner_unit_id": device.owner_unit_id,
        "division_code": site.division_code,
        "place_category": site.place_category.value,
        "name": device.name,
        "area_type": device.area_type.value,
        "latitude": device.latitude,
        "longitude": device.longitude,
        "direction_deg": device.direction_deg,
        "capture_range_m": device.capture_range_m,
        "notice_sign_confirmed": device.notice_sign_confirmed,
        "privacy_masks": masks_to_json(device.privacy_masks),
        "privacy_measures": device.privacy_measures,
        "vendor": device.vendor,
        "model": device.model,
        "public_key": device.public_key,
        "retention_profile": device.retention_profile,
        "retention_s": device.retention.total_seconds() if device.retention is not None else None,
        "keepalive_interval_s": device.keepalive_interval_s,
        "keepalive_timeout_count": device.keepalive_timeout_count,
        "state": device.state.value,
        "last_keepalive_time": device.last_keepalive_time,
        "activated_at": device.activated_at,
        "offline_since": device.offline_since,
        "registered_at": device.registered_at or now,
        "updated_at": now,
    }


def facts_to_json(facts: FilingFacts) -> dict[str, Any]:
    return {
        "device_count": facts.device_count,
        "device_types": [[code, n] for code, n in facts.device_types],
        "location": list(facts.location),
        "retention_days": list(facts.retention_days),
    }


def facts_from_json(data: dict[str, Any]) -> FilingFacts:
    return FilingFacts(
        device_count=int(data["device_count"]),
        device_types=tuple((str(code), int(n)) for code, n in data["device_types"]),
        location=(str(data["location"][0]), str(data["location"][1])),
        retention_days=tuple(float(d) for d in data["retention_days"]),
    )


@dataclass(frozen=True)
class Stamped:
    """An entity with the store's own bookkeeping times (output-only fields of the API)."""

    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class DeviceRecord:
    """A device with its site and owner, as the API and events present it."""

    device: Device
    site: Site
    owner: Unit
    updated_at: datetime


@dataclass(frozen=True)
class FilingRecord:
    unit_id: str
    site_id: str
    filing_number: str
    filed_on: date
    filed_facts: FilingFacts


@dataclass(frozen=True)
class DeviceFilter:
    division_prefix: str = ""
    place_category: PlaceCategory | None = None
    state: DeviceState | None = None
    owner_unit_id: str = ""
    site_id: str = ""


# The columns of a ListDevices page row, in order. Times and masks are read untyped (the driver's own
# values: text on SQLite, datetimes on PostgreSQL; JSON text or objects) and converted by the codec.
PAGE_COLUMNS = (
    "device_id",
    "site_id",
    "owner_unit_id",
    "name",
    "area_type",
    "latitude",
    "longitude",
    "direction_deg",
    "capture_range_m",
    "notice_sign_confirmed",
    "privacy_masks",
    "privacy_measures",
    "vendor",
    "model",
    "public_key",
    "retention_profile",
    "retention_s",
    "keepalive_interval_s",
    "keepalive_timeout_count",
    "state",
    "last_keepalive_time",
    "activated_at",
    "offline_since",
    "registered_at",
    "updated_at",
)
_UNTYPED = {
    "privacy_masks",
    "last_keepalive_time",
    "activated_at",
    "offline_since",
    "registered_at",
    "updated_at",
}
_PAGE_SELECT = tuple(
    type_coerce(devices.c[name], Text).label(name) if name in _UNTYPED else devices.c[name]
    for name in PAGE_COLUMNS
)


@dataclass(frozen=True)
class DevicePage:
    """Rows of PAGE_COLUMNS (tuples), and the sites and units they name, by id."""

    rows: Sequence[Any]
    sites: dict[str, Site]
    units: dict[str, Unit]


@dataclass(frozen=True, slots=True)
class KeepaliveView:
    """What a keepalive needs of a device: a light row, so thousands a second stay cheap (the common
    keepalive reads these fields only; `device` builds the domain object when a rule needs it)."""

    device_id: str
    site_id: str
    owner_unit_id: str
    division_code: str
    state: DeviceState
    latitude: float | None
    longitude: float | None
    direction_deg: float | None
    keepalive_interval_s: float
    keepalive_timeout_count: int
    last_keepalive_time: datetime | None
    activated_at: datetime | None
    offline_since: datetime | None

    @property
    def device(self) -> Device:
        return Device(
            device_id=self.device_id,
            site_id=self.site_id,
            owner_unit_id=self.owner_unit_id,
            name="",
            area_type=AreaType.UNSPECIFIED,
            latitude=self.latitude,
            longitude=self.longitude,
            direction_deg=self.direction_deg,
            keepalive_interval_s=self.keepalive_interval_s,
            keepalive_timeout_count=self.keepalive_timeout_count,
            state=self.state,
            last_keepalive_time=self.last_keepalive_time,
            activated_at=self.activated_at,
            offline_since=self.offline_since,
        )


_STATES = {s.value: s for s in DeviceState}


def _keepalive_view(r: Sequence[Any]) -> KeepaliveView:
    """A row of RegistryStore._KEEPALIVE_SELECT (times read untyped) as a KeepaliveView."""
    return KeepaliveView(
        r[0], r[1], r[2], r[3], _STATES[r[4]], r[5], r[6], r[7], r[8], r[9], _utc(r[10]), _utc(r[11]), _utc(r[12])
    )  # fmt: skip


def _utc(value: Any) -> datetime | None:
    """A time column read untyped, as UTCDateTime would return it (aware UTC): SQLite's text is parsed by
    datetime.fromisoformat, far cheaper than the type's per-row processing on the keepalive path."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _prefix_range(column: Any, prefix: str) -> Any:
    """`column LIKE 'prefix%'` as a range both databases answer from a B-tree index (digits only); a
    whole 6-digit code is an equality, so the (division_code, device_id) index also yields page order."""
    if len(prefix) == 6:
        return column == prefix
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return and_(column >= prefix, column < upper)


# Session info key: (state, offline_since) of the devices keepalive_views read in the transaction.
_KEEPALIVE_READ = "vigil_registry.keepalive_read"
# Division codes under one ListDevices prefix merged branch by branch; past this, one range query.
MAX_PAGE_BRANCHES = 64
# Sites and units cached for ListDevices pages (a city has thousands, not millions); cleared when full.
NAMED_CACHE_MAX = 50_000


class _NamedCache:
    """Sites or units by id, read through by ListDevices so a page costs one query, not three.

    Correct for the single registry process that writes them: an update forgets the entry when it is
    written and again after its commit, and a reader stores what it read only if no update was forgotten
    meanwhile (`generation`), so an entry read before a commit cannot outlive it.
    """

    def __init__(self) -> None:
        self.entries: dict[str, Any] = {}
        self.generation = 0

    def forget_now_and_after_commit(self, s: AsyncSession, key: str | None = None) -> None:
        """Forget `key` (every entry when None) now and again once the caller's transaction commits."""

        def forget(*_: object) -> None:
            if key is None:
                self.entries.clear()
            else:
                self.entries.pop(key, None)
            self.generation += 1

        forget()
        event.listen(s.sync_session, "after_commit", forget, once=True)

    def store(self, generation: int, found: dict[str, Any]) -> None:
        if generation != self.generation:
            return
        if len(self.entries) + len(found) > NAMED_CACHE_MAX:
            self.entries.clear()
        self.entries.update(found)


def _known(cache: _NamedCache, keys: set[str]) -> tuple[dict[str, Any], list[str]]:
    """(the cached entries of `keys`, the keys not cached, sorted). Safe off the event loop: it only
    reads the dict, one key at a time."""
    found: dict[str, Any] = {}
    missing: list[str] = []
    for k in keys:
        v = cache.entries.get(k)
        if v is None:
            missing.append(k)
        else:
            found[k] = v
    return found, sorted(missing)


@dataclass(frozen=True)
class _PageRead:
    """What one page's read found: rows, the sites and units they name, and what came from the database
    rather than the caches (division codes, sites, units), for the event loop to cache."""

    rows: Sequence[Any]
    sites: dict[str, Site]
    units: dict[str, Unit]
    codes: list[str] | None
    new_sites: dict[str, Site]
    new_units: dict[str, Unit]


# Runs a synchronous read (given a Connection or Session) in one read-only transaction, asynchronously.
PageRunner = Callable[[Callable[[Any], "_PageRead"]], Awaitable["_PageRead"]]


class RegistryStore:
    """The repository: every read and write the registry makes, each inside the caller's session."""

    def __init__(self) -> None:
        self._sites = _NamedCache()
        self._units = _NamedCache()
        # Division prefix → the division codes under it that have sites (a new or changed site clears it).
        self._codes = _NamedCache()

    # --- units -------------------------------------------------------------------------------------

    async def get_unit(self, s: AsyncSession, unit_id: str) -> tuple[Unit, Stamped] | None:
        row = (await s.execute(select(units).where(units.c.unit_id == unit_id))).first()
        return None if row is None else (_unit(row), Stamped(row.created_at, row.updated_at))

    async def insert_unit(self, s: AsyncSession, unit: Unit, now: datetime) -> None:
        await s.execute(
            units.insert().values(
                unit_id=unit.unit_id, name=unit.name, kind=unit.kind.value, created_at=now, updated_at=now
            )
        )

    async def update_unit(self, s: AsyncSession, unit: Unit, now: datetime) -> None:
        self._units.forget_now_and_after_commit(s, unit.unit_id)
        await s.execute(
            update(units)
            .where(units.c.unit_id == unit.unit_id)
            .values(name=unit.name, kind=unit.kind.value, updated_at=now)
        )

    async def list_units(
        self, s: AsyncSession, *, kind: UnitKind | None, only: str | None, after: str, limit: int
    ) -> list[tuple[Unit, Stamped]]:
        q = select(units).order_by(units.c.unit_id).limit(limit)
        if kind is not None:
            q = q.where(units.c.kind == kind.value)
        if only is not None:
            q = q.where(units.c.unit_id == only)
        if after:
            q = q.where(units.c.unit_id > after)
        return [(_unit(r), Stamped(r.created_at, r.updated_at)) for r in (await s.execute(q)).all()]

    # --- sites -------------------------------------------------------------------------------------

    async def get_site(self, s: AsyncSession, site_id: str) -> tuple[Site, Stamped] | None:
        row = (await s.execute(select(sites).where(sites.c.site_id == site_id))).first()
        return None if row is None else (_site(row), Stamped(row.created_at, row.updated_at))

    async def insert_site(self, s: AsyncSession, site: Site, now: datetime) -> None:
        self._codes.forget_now_and_after_commit(s)
        await s.execute(sites.insert().values(**_site_values(site), created_at=now, updated_at=now))

    async def update_site(self, s: AsyncSession, site: Site, now: datetime) -> None:
        self._sites.forget_now_and_after_commit(s, site.site_id)
        self._codes.forget_now_and_after_commit(s)
        await s.execute(
            update(sites).where(sites.c.site_id == site.site_id).values(**_site_values(site), updated_at=now)
        )
        # Keep the devices' copies of the site's facts in step, in the same transaction.
        await s.execute(
            update(devices)
            .where(devices.c.site_id == site.site_id)
            .values(division_code=site.division_code, place_category=site.place_category.value)
        )

    async def list_sites(
        self,
        s: AsyncSession,
        *,
        division_prefix: str,
        place_category: PlaceCategory | None,
        managing_unit_id: str,
        after: str,
        limit: int,
    ) -> list[tuple[Site, Stamped]]:
        q = select(sites).order_by(sites.c.site_id).limit(limit)
        if division_prefix:
            q = q.where(_prefix_range(sites.c.division_code, division_prefix))
        if place_category is not None:
            q = q.where(sites.c.place_category == place_category.value)
        if managing_unit_id:
            q = q.where(sites.c.managing_unit_id == managing_unit_id)
        if after:
            q = q.where(sites.c.site_id > after)
        return [(_site(r), Stamped(r.created_at, r.updated_at)) for r in (await s.execute(q)).all()]

    async def unit_has_device_at(self, s: AsyncSession, unit_id: str, site_id: str) -> bool:
        q = (
            select(devices.c.device_id)
            .where(devices.c.owner_unit_id == unit_id, devices.c.site_id == site_id)
            .limit(1)
        )
        return (await s.execute(q)).first() is not None

    # --- devices -----------------------------------------------------------------------------------

    def _joined(self) -> Any:
        return (
            select(devices, sites, units)
            .select_from(devices)
            .join(sites, sites.c.site_id == devices.c.site_id)
            .join(units, units.c.unit_id == devices.c.owner_unit_id)
        )

    @staticmethod
    def _record(row: Any) -> DeviceRecord:
        m = row._mapping
        device = _device(_Cols(m, devices))
        return DeviceRecord(
            device=device,
            site=_site(_Cols(m, sites)),
            owner=_unit(_Cols(m, units)),
            updated_at=m[devices.c.updated_at],
        )

    async def device_exists(self, s: AsyncSession, device_id: str) -> bool:
        q = select(devices.c.device_id).where(devices.c.device_id == device_id)
        return (await s.execute(q)).first() is not None

    async def get_device(self, s: AsyncSession, device_id: str, *, for_update: bool = False) -> Device | None:
        q = select(devices).where(devices.c.device_id == device_id)
        if for_update:
            q = q.with_for_update()
        row = (await s.execute(q)).first()
        return None if row is None else _device(row)

    async def get_device_record(self, s: AsyncSession, device_id: str) -> DeviceRecord | None:
        row = (await s.execute(self._joined().where(devices.c.device_id == device_id))).first()
        return None if row is None else self._record(row)

    async def insert_device(self, s: AsyncSession, device: Device, site: Site, now: datetime) -> None:
        await s.execute(devices.insert().values(**_device_values(device, site, now)))

    async def existing_device_ids(self, s: AsyncSession, device_ids: Iterable[str]) -> set[str]:
        ids = sorted(set(device_ids))
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            q = select(devices.c.device_id).where(devices.c.device_id.in_(ids[i : i + 500]))
            out.update((await s.execute(q)).scalars())
        return out

    async def insert_devices(self, s: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        """Rows from `device_row` (one executemany INSERT)."""
        if rows:
            await s.execute(devices.insert(), list(rows))

    @staticmethod
    def device_row(
        device: Device, site: Site, owner: Unit, now: datetime
    ) -> tuple[dict[str, Any], DeviceRecord]:
        """The row a new device is inserted as, and the record reading it back would give."""
        values = _device_values(device, site, now)
        record = DeviceRecord(
            device=_device(SimpleNamespace(**values)), site=site, owner=owner, updated_at=now
        )
        return values, record

    async def update_device(self, s: AsyncSession, device: Device, site: Site, now: datetime) -> None:
        values = _device_values(device, site, now)
        del values["device_id"]
        await s.execute(update(devices).where(devices.c.device_id == device.device_id).values(**values))

    async def list_device_rows(
        self, run: PageRunner, f: DeviceFilter, *, after: str, limit: int
    ) -> DevicePage:
        """A ListDevices page as raw rows (PAGE_COLUMNS; see DevicePage) with its sites and owners.

        The hot read path: no per-row type processing or domain objects (codec.page_into turns the
        rows straight into messages), and sites and owners come from the in-process cache. `run` runs
        the page's reads (a synchronous function of a connection or session) in one read-only
        transaction: on SQLite in one hand-off to a worker thread (ThreadedTransactions.read), else a
        read session's run_sync. The caches are filled back here, on the event loop, after the read.
        """
        prefix = f.division_prefix
        codes = self._codes.entries.get(prefix) if 0 < len(prefix) < 6 else None
        generations = (self._codes.generation, self._sites.generation, self._units.generation)
        read = await run(functools.partial(self._read_page, f, after, limit, codes))
        if read.codes is not None and codes is None:
            self._codes.store(generations[0], {prefix: read.codes})
        if read.new_sites:
            self._sites.store(generations[1], read.new_sites)
        if read.new_units:
            self._units.store(generations[2], read.new_units)
        return DevicePage(read.rows, read.sites, read.units)

    def _read_page(
        self, f: DeviceFilter, after: str, limit: int, codes: list[str] | None, conn: Any
    ) -> _PageRead:
        """list_device_rows' reads, synchronous (on a worker thread or inside run_sync). Cache entries
        are only read here; what was loaded is returned for the event loop to store."""
        prefix = f.division_prefix
        if 0 < len(prefix) < 6 and codes is None:
            # The division codes under the prefix that have sites (devices copy their site's code).
            q = select(sites.c.division_code).where(_prefix_range(sites.c.division_code, prefix)).distinct()
            codes = sorted(conn.execute(q).scalars())
        if codes is not None and len(codes) == 0:
            rows: Sequence[Any] = []
        elif codes is not None and len(codes) <= MAX_PAGE_BRANCHES:
            # A prefix is a range of division codes, and a range cannot also give device_id order from
            # the (division_code, device_id) index: the database would sort every device in the range to
            # return one page. Each code alone is an equality that can: one ordered, limited branch per
            # code, merged (UNION ALL of at most MAX_PAGE_BRANCHES × limit rows) — a page at any size.
            # The branches read only the ids (from the index itself); the page's rows are then read by key.
            branches = [
                self._page_query(
                    select(devices.c.device_id), replace(f, division_prefix=code), after=after, limit=limit
                )
                .subquery()
                .select()
                for code in codes
            ]
            merged = union_all(*branches).subquery()
            ids = select(merged.c.device_id).order_by(merged.c.device_id).limit(limit)
            q = select(*_PAGE_SELECT).where(devices.c.device_id.in_(ids)).order_by(devices.c.device_id)
            rows = conn.execute(q).all()
        else:
            q = self._page_query(select(*_PAGE_SELECT), f, after=after, limit=limit)
            rows = conn.execute(q).all()
        site_map, new_sites = _known(self._sites, {r[1] for r in rows})
        for i in range(0, len(new_sites), 500):
            q = select(sites).where(sites.c.site_id.in_(new_sites[i : i + 500]))
            site_map.update({r.site_id: _site(r) for r in conn.execute(q).all()})
        unit_map, new_units = _known(self._units, {r[2] for r in rows})
        for i in range(0, len(new_units), 500):
            q = select(units).where(units.c.unit_id.in_(new_units[i : i + 500]))
            unit_map.update({r.unit_id: _unit(r) for r in conn.execute(q).all()})
        return _PageRead(
            rows=rows,
            sites=site_map,
            units=unit_map,
            codes=codes,
            new_sites={k: site_map[k] for k in new_sites if k in site_map},
            new_units={k: unit_map[k] for k in new_units if k in unit_map},
        )

    @staticmethod
    def _page_query(q: Any, f: DeviceFilter, *, after: str, limit: int) -> Any:
        # The page comes from the devices table alone (a join lets the planner start from sites and
        # sort the whole result); its few sites and owners are then looked up by primary key.
        q = q.order_by(devices.c.device_id).limit(limit)
        if f.division_prefix:
            q = q.where(_prefix_range(devices.c.division_code, f.division_prefix))
        if f.place_category is not None:
            q = q.where(devices.c.place_category == f.place_category.value)
        if f.state is not None:
            q = q.where(devices.c.state == f.state.value)
        if f.owner_unit_id:
            q = q.where(devices.c.owner_unit_id == f.owner_unit_id)
        if f.site_id:
            q = q.where(devices.c.site_id == f.site_id)
        if after:
            q = q.where(devices.c.device_id > after)
        return q

    # --- keepalives and status (REG-11) ------------------------------------------------------------

    _KEEPALIVE_COLUMNS = (
        devices.c.device_id,
        devices.c.site_id,
        devices.c.owner_unit_id,
        devices.c.division_code,
        devices.c.state,
        devices.c.latitude,
        devices.c.longitude,
        devices.c.direction_deg,
        devices.c.keepalive_interval_s,
        devices.c.keepalive_timeout_count,
        devices.c.last_keepalive_time,
        devices.c.activated_at,
        devices.c.offline_since,
    )
    # The same columns, times read untyped (see _utc).
    _KEEPALIVE_SELECT = tuple(
        type_coerce(c, Text).label(c.name) if c.name in _UNTYPED else c for c in _KEEPALIVE_COLUMNS
    )

    async def keepalive_views(
        self, s: AsyncSession, device_ids: Sequence[str], *, for_update: bool = True
    ) -> dict[str, KeepaliveView]:
        """Light views of these devices, locked for update (sorted, so concurrent batches cannot deadlock)."""
        out: dict[str, KeepaliveView] = {}
        ordered = sorted(set(device_ids))
        for i in range(0, len(ordered), 500):  # stay under SQLite's bound-parameter limit
            q = select(*self._KEEPALIVE_SELECT).where(devices.c.device_id.in_(ordered[i : i + 500]))
            if for_update:
                q = q.order_by(devices.c.device_id).with_for_update()
            for r in (await s.execute(q)).all():
                out[r[0]] = _keepalive_view(r)
        if for_update:
            # What write_keepalive_state compares against, in this transaction only.
            info = s.sync_session.info
            if _KEEPALIVE_READ not in info:
                info[_KEEPALIVE_READ] = {}
                event.listen(
                    s.sync_session,
                    "after_transaction_end",
                    lambda *_: info.pop(_KEEPALIVE_READ, None),
                    once=True,
                )
            read = info[_KEEPALIVE_READ]
            read.update({k: (v.state, v.offline_since) for k, v in out.items()})
        return out

    async def touch_keepalives(self, s: AsyncSession, heard: dict[str, datetime], now: datetime) -> None:
        """Only the last keepalive time of these devices (id → time), for keepalives that change nothing
        else (keepalive.TIME_ONLY_STATES, read and locked by keepalive_views in this transaction): one
        `UPDATE … WHERE device_id IN (…)` per time and 500 ids, leaving the state index alone."""
        by_time: dict[datetime, list[str]] = {}
        for device_id, t in heard.items():
            by_time.setdefault(t, []).append(device_id)
        for t, ids in by_time.items():
            for i in range(0, len(ids), 500):
                await s.execute(
                    update(devices)
                    .where(devices.c.device_id.in_(ids[i : i + 500]))
                    .values(last_keepalive_time=t, updated_at=now)
                )

    async def write_keepalive_state(self, s: AsyncSession, changed: Sequence[Device], now: datetime) -> None:
        """A batch's keepalive state: last keepalive, state and offline_since by device id.

        Most keepalives only move last_keepalive_time (an ACTIVE device stays ACTIVE): those devices,
        when this transaction read them with keepalive_views and they share the time (a batch's now),
        take one `UPDATE … WHERE device_id IN (…)` per 500; it leaves the state index alone and binds
        two values instead of four per row. Devices whose state changed get the executemany UPDATE.
        """
        if not changed:
            return
        read = s.sync_session.info.get(_KEEPALIVE_READ, {})
        light: dict[datetime, list[str]] = {}
        full: list[Device] = []
        for d in changed:
            before = read.get(d.device_id)
            if (
                before is not None
                and before == (d.state, d.offline_since)
                and d.last_keepalive_time is not None
            ):
                light.setdefault(d.last_keepalive_time, []).append(d.device_id)
            else:
                full.append(d)
        for last, ids in light.items():
            for i in range(0, len(ids), 500):
                await s.execute(
                    update(devices)
                    .where(devices.c.device_id.in_(ids[i : i + 500]))
                    .values(last_keepalive_time=last, updated_at=now)
                )
        if not full:
            return
        stmt = (
            update(devices)
            .where(devices.c.device_id == bindparam("b_id"))
            .values(
                last_keepalive_time=bindparam("b_last"),
                state=bindparam("b_state"),
                offline_since=bindparam("b_off"),
                updated_at=bindparam("b_now"),
            )
        )
        conn = await s.connection()
        await conn.execute(
            stmt,
            [
                {
                    "b_id": d.device_id,
                    "b_last": d.last_keepalive_time,
                    "b_state": d.state.value,
                    "b_off": d.offline_since,
                    "b_now": now,
                }
                for d in full
            ],
        )

    async def watched_devices(self, s: AsyncSession) -> list[Device]:
        """Every ACTIVE device's keepalive facts: the offline detector's starting heap."""
        q = select(*self._KEEPALIVE_SELECT).where(devices.c.state == DeviceState.ACTIVE.value)
        return [_keepalive_view(r).device for r in (await s.execute(q)).all()]

    # --- filings (REG-7) ---------------------------------------------------------------------------

    async def system_devices(self, s: AsyncSession, unit_id: str, site_id: str) -> list[Device]:
        q = select(devices).where(
            devices.c.owner_unit_id == unit_id,
            devices.c.site_id == site_id,
            devices.c.state != DeviceState.DECOMMISSIONED.value,
        )
        return [_device(r) for r in (await s.execute(q)).all()]

    async def systems(
        self, s: AsyncSession, *, unit_id: str = "", site_id: str = "", division_prefix: str = ""
    ) -> list[tuple[str, str, list[Device]]]:
        """Every (unit, site) system with its live devices (the facts filings need, light rows)."""
        q = select(
            devices.c.device_id,
            devices.c.owner_unit_id,
            devices.c.site_id,
            devices.c.state,
            devices.c.retention_s,
            devices.c.activated_at,
        ).where(devices.c.state != DeviceState.DECOMMISSIONED.value)
        if unit_id:
            q = q.where(devices.c.owner_unit_id == unit_id)
        if site_id:
            q = q.where(devices.c.site_id == site_id)
        if division_prefix:
            q = q.where(_prefix_range(devices.c.division_code, division_prefix))
        grouped: dict[tuple[str, str], list[Device]] = {}
        for r in (await s.execute(q)).all():
            grouped.setdefault((r.owner_unit_id, r.site_id), []).append(
                Device(
                    device_id=r.device_id,
                    site_id=r.site_id,
                    owner_unit_id=r.owner_unit_id,
                    name="",
                    area_type=AreaType.UNSPECIFIED,
                    state=DeviceState(r.state),
                    retention=timedelta(seconds=r.retention_s) if r.retention_s is not None else None,
                    activated_at=r.activated_at,
                )
            )
        return [(u, st, ds) for (u, st), ds in sorted(grouped.items())]

    async def sites_by_id(self, s: AsyncSession, site_ids: Iterable[str]) -> dict[str, Site]:
        ids = sorted(set(site_ids))
        out: dict[str, Site] = {}
        for i in range(0, len(ids), 500):
            q = select(sites).where(sites.c.site_id.in_(ids[i : i + 500]))
            out.update({r.site_id: _site(r) for r in (await s.execute(q)).all()})
        return out

    async def units_by_id(self, s: AsyncSession, unit_ids: Iterable[str]) -> dict[str, Unit]:
        ids = sorted(set(unit_ids))
        out: dict[str, Unit] = {}
        for i in range(0, len(ids), 500):
            q = select(units).where(units.c.unit_id.in_(ids[i : i + 500]))
            out.update({r.unit_id: _unit(r) for r in (await s.execute(q)).all()})
        return out

    async def get_filing(self, s: AsyncSession, unit_id: str, site_id: str) -> FilingRecord | None:
        q = select(filings).where(filings.c.unit_id == unit_id, filings.c.site_id == site_id)
        row = (await s.execute(q)).first()
        return None if row is None else self._filing(row)

    async def filing_records(self, s: AsyncSession) -> dict[tuple[str, str], FilingRecord]:
        return {(r.unit_id, r.site_id): self._filing(r) for r in (await s.execute(select(filings))).all()}

    @staticmethod
    def _filing(row: Any) -> FilingRecord:
        return FilingRecord(
            unit_id=row.unit_id,
            site_id=row.site_id,
            filing_number=row.filing_number,
            filed_on=row.filed_on,
            filed_facts=facts_from_json(row.filed_facts),
        )

    async def save_filing(self, s: AsyncSession, record: FilingRecord, now: datetime) -> None:
        values = {
            "filing_number": record.filing_number,
            "filed_on": record.filed_on,
            "filed_facts": facts_to_json(record.filed_facts),
            "recorded_at": now,
        }
        result = await s.execute(
            update(filings)
            .where(filings.c.unit_id == record.unit_id, filings.c.site_id == record.site_id)
            .values(**values)
        )
        if result.rowcount == 0:
            await s.execute(filings.insert().values(unit_id=record.unit_id, site_id=record.site_id, **values))

    # --- compliance ----------------------------------------------------------------------------------

    async def mandatory_sites_without_active_device(
        self, s: AsyncSession, categories: Iterable[PlaceCategory], division_prefix: str
    ) -> list[Site]:
        active = (
            select(devices.c.device_id)
            .where(devices.c.site_id == sites.c.site_id, devices.c.state == DeviceState.ACTIVE.value)
            .exists()
        )
        q = (
            select(sites)
            .where(sites.c.place_category.in_([c.value for c in categories]), ~active)
            .order_by(sites.c.site_id)
        )
        if division_prefix:
            q = q.where(_prefix_range(sites.c.division_code, division_prefix))
        return [_site(r) for r in (await s.execute(q)).all()]

    async def devices_where(
        self, s: AsyncSession, *conditions: Any, division_prefix: str = ""
    ) -> list[Device]:
        q = select(devices).where(*conditions).order_by(devices.c.device_id)
        if division_prefix:
            q = q.where(_prefix_range(devices.c.division_code, division_prefix))
        return [_device(r) for r in (await s.execute(q)).all()]

    async def counts(self, s: AsyncSession, division_prefix: str) -> tuple[int, int, int]:
        """(devices not decommissioned, active devices, sites) in scope."""
        dq = select(
            func.count(),
            func.coalesce(func.sum(_case_active()), 0),
        ).where(devices.c.state != DeviceState.DECOMMISSIONED.value)
        sq = select(func.count()).select_from(sites)
        if division_prefix:
            dq = dq.where(_prefix_range(devices.c.division_code, division_prefix))
            sq = sq.where(_prefix_range(sites.c.division_code, division_prefix))
        total, active = (await s.execute(dq)).one()
        site_count = (await s.execute(sq)).scalar_one()
        return int(total), int(active), int(site_count)


def _case_active() -> Any:
    return case((devices.c.state == DeviceState.ACTIVE.value, 1), else_=0)


class _Cols:
    """Attribute access to one table's columns of a joined row (the joined tables share column names)."""

    def __init__(self, mapping: Any, table: Table) -> None:
        self._m = mapping
        self._t = table

    def __getattr__(self, name: str) -> Any:
        return self._m[self._t.c[name]]
