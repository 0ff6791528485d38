"""Mapping between vigil.registry.v1 messages and the registry's domain dataclasses, in one place."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from vigil.common.v1 import identity_pb2
from vigil.registry.v1 import registry_service_pb2 as pb
from vigil_kit.errors import InvalidArgument
from vigil_registry.domain import keepalive
from vigil_registry.domain.model import (
    AreaType,
    Device,
    DeviceState,
    Filing,
    FilingFacts,
    FilingState,
    Funding,
    PlaceCategory,
    Point,
    PrivacyMask,
    Site,
    Unit,
    UnitKind,
)
from vigil_registry.store import PAGE_COLUMNS, DevicePage, DeviceRecord, Stamped

T = TypeVar("T")

# Fields a client sets; every other Device/Site/Unit field of the proto is output only.
UNIT_INPUT_FIELDS = ("unit_id", "name", "kind")
SITE_INPUT_FIELDS = tuple(f.name for f in fields(Site))
DEVICE_INPUT_FIELDS = (
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
    "keepalive_interval_s",
    "keepalive_timeout_count",
)


# --- plain values ---------------------------------------------------------------------------------


def ts(t: datetime | None) -> Timestamp | None:
    if t is None:
        return None
    out = Timestamp()
    out.FromDatetime(t.astimezone(UTC))
    return out


def duration(d: timedelta) -> Duration:
    out = Duration()
    out.FromTimedelta(d)
    return out


def _set_ts(msg: Any, name: str, t: datetime | None) -> None:
    if t is not None:
        getattr(msg, name).CopyFrom(ts(t))


def _opt(msg: Any, name: str) -> float | None:
    return getattr(msg, name) if msg.HasField(name) else None


def parse_date(text: str, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument(f"{field} {text!r} is not an ISO 8601 date (YYYY-MM-DD)", field=field) from None


def _iso(d: date | None) -> str:
    return d.isoformat() if d is not None else ""


def _enum(cls: type[T], name: str, field: str) -> T:
    try:
        return cls(name)  # type: ignore[call-arg]
    except ValueError:
        raise InvalidArgument(f"{field}: unknown value {name!r}", field=field) from None


def place_category(value: int) -> PlaceCategory:
    return PlaceCategory(pb.PlaceCategory.Name(value))


def device_state(value: int) -> DeviceState:
    return DeviceState(pb.DeviceState.Name(value))


def filing_state(value: int) -> FilingState:
    return FilingState(pb.FilingState.Name(value))


def unit_kind(value: int) -> UnitKind:
    return UnitKind(identity_pb2.UnitKind.Name(value))


# --- units ------------------------------------------------------------------------------------------


def unit_from_pb(msg: pb.Unit) -> Unit:
    return Unit(unit_id=msg.unit_id.strip(), name=msg.name, kind=unit_kind(msg.kind))


def unit_to_pb(unit: Unit, stamped: Stamped | None = None) -> pb.Unit:
    out = pb.Unit(unit_id=unit.unit_id, name=unit.name, kind=identity_pb2.UnitKind.Value(unit.kind.value))
    if stamped is not None:
        _set_ts(out, "create_time", stamped.created_at)
        _set_ts(out, "update_time", stamped.updated_at)
    return out


# --- sites ------------------------------------------------------------------------------------------


def site_from_pb(msg: pb.Site) -> Site:
    return Site(
        site_id=msg.site_id.strip(),
        name=msg.name,
        division_code=msg.division_code.strip(),
        place_category=place_category(msg.place_category),
        managing_unit_id=msg.managing_unit_id.strip(),
        funding=Funding(pb.Funding.Name(msg.funding)),
        address=msg.address,
        latitude=_opt(msg, "latitude"),
        longitude=_opt(msg, "longitude"),
        key_public_area=msg.key_public_area,
        near_military_zone=msg.near_military_zone,
        military_opinion_ref=msg.military_opinion_ref,
        secret_related=msg.secret_related,
        designed_on=parse_date(msg.designed_on, "site.designed_on"),
        built_on=parse_date(msg.built_on, "site.built_on"),
        in_use_on=parse_date(msg.in_use_on, "site.in_use_on"),
    )


def site_to_pb(site: Site, stamped: Stamped | None = None) -> pb.Site:
    out = pb.Site(
        site_id=site.site_id,
        name=site.name,
        division_code=site.division_code,
        address=site.address,
        latitude=site.latitude,
        longitude=site.longitude,
        place_category=pb.PlaceCategory.Value(site.place_category.value),
        key_public_area=site.key_public_area,
        managing_unit_id=site.managing_unit_id,
        funding=pb.Funding.Value(site.funding.value),
        near_military_zone=site.near_military_zone,
        military_opinion_ref=site.military_opinion_ref,
        secret_related=site.secret_related,
        designed_on=_iso(site.designed_on),
        built_on=_iso(site.built_on),
        in_use_on=_iso(site.in_use_on),
    )
    if stamped is not None:
        _set_ts(out, "create_time", stamped.created_at)
        _set_ts(out, "update_time", stamped.updated_at)
    return out


def site_facts(site: Site) -> pb.SiteFacts:
    return pb.SiteFacts(
        site_id=site.site_id,
        name=site.name,
        division_code=site.division_code,
        place_category=pb.PlaceCategory.Value(site.place_category.value),
        mandatory=site.place_category.mandatory,
        key_public_area=site.key_public_area,
        managing_unit_id=site.managing_unit_id,
        funding=pb.Funding.Value(site.funding.value),
        near_military_zone=site.near_military_zone,
        secret_related=site.secret_related,
    )


# --- devices ----------------------------------------------------------------------------------------


def masks_from_pb(masks: Iterable[pb.PrivacyMask]) -> tuple[PrivacyMask, ...]:
    return tuple(PrivacyMask(tuple(Point(p.x, p.y) for p in m.points)) for m in masks)


def device_from_pb(msg: pb.Device) -> Device:
    """The client-settable part of a Device; output-only fields are ignored."""
    keepalive_interval = msg.keepalive_interval_s
    if not math.isfinite(keepalive_interval):
        raise InvalidArgument("keepalive_interval_s must be finite", field="device.keepalive_interval_s")
    return Device(
        device_id=msg.device_id.strip(),
        site_id=msg.site_id.strip(),
        owner_unit_id=msg.owner_unit_id.strip(),
        name=msg.name,
        area_type=AreaType(pb.AreaType.Name(msg.area_type)),
        latitude=_opt(msg, "latitude"),
        longitude=_opt(msg, "longitude"),
        direction_deg=_opt(msg, "direction_deg"),
        capture_range_m=_opt(msg, "capture_range_m"),
        notice_sign_confirmed=msg.notice_sign_confirmed,
        privacy_masks=masks_from_pb(msg.privacy_masks),
        privacy_measures=msg.privacy_measures,
        vendor=msg.vendor,
        model=msg.model,
        public_key=msg.public_key.strip(),
        retention_profile=msg.retention_profile.strip(),
        keepalive_interval_s=keepalive_interval,
        keepalive_timeout_count=msg.keepalive_timeout_count,
    )


def device_to_pb(record: DeviceRecord, *, memo: dict[Any, Any] | None = None) -> pb.Device:
    """The API's Device. `memo` (a dict the caller keeps for a batch of devices) reuses the owner, site
    and timestamp messages devices of the batch share instead of building each again."""
    d = record.device
    if memo is None:
        owner, site = unit_to_pb(record.owner), site_facts(record.site)
    else:
        owner = memo.get(("unit", record.owner.unit_id))
        if owner is None:
            owner = memo[("unit", record.owner.unit_id)] = unit_to_pb(record.owner)
        site = memo.get(("site", record.site.site_id))
        if site is None:
            site = memo[("site", record.site.site_id)] = site_facts(record.site)
    out = pb.Device(
        device_id=d.device_id,
        site_id=d.site_id,
        owner_unit_id=d.owner_unit_id,
        name=d.name,
        area_type=pb.AreaType.Value(d.area_type.value),
        latitude=d.latitude,
        longitude=d.longitude,
        direction_deg=d.direction_deg,
        capture_range_m=d.capture_range_m,
        notice_sign_confirmed=d.notice_sign_confirmed,
        privacy_masks=[
            pb.PrivacyMask(points=[pb.Point(x=p.x, y=p.y) for p in m.points]) for m in d.privacy_masks
        ],
        privacy_measures=d.privacy_measures,
        vendor=d.vendor,
        model=d.model,
        public_key=d.public_key,
        retention_profile=d.retention_profile,
        keepalive_interval_s=d.keepalive_interval_s,
        keepalive_timeout_count=d.keepalive_timeout_count,
        state=pb.DeviceState.Value(d.state.value),
        retention_days=d.retention_days or 0.0,
        owner=owner,
        site=site,
    )
    for name, t in (
        ("last_keepalive_time", d.last_keepalive_time),
        ("activate_time", d.activated_at),
        ("offline_time", d.offline_since),
        ("register_time", d.registered_at),
        ("update_time", record.updated_at),
        ("offline_deadline", keepalive.offline_deadline(d)),
    ):
        if t is None:
            continue
        if memo is None:
            getattr(out, name).CopyFrom(ts(t))
            continue
        stamp = memo.get(t)
        if stamp is None:
            stamp = memo[t] = ts(t)
        getattr(out, name).CopyFrom(stamp)
    return out


# --- ListDevices pages (the hot read path) -------------------------------------------------------------

_AREA_TYPES = dict(pb.AreaType.items())
_DEVICE_STATES = dict(pb.DeviceState.items())
_ACTIVE = pb.DEVICE_STATE_ACTIVE
_EPOCH = datetime(1970, 1, 1)
_DAY = timedelta(days=1)
_C = {name: i for i, name in enumerate(PAGE_COLUMNS)}


def _page_time(value: Any) -> datetime | None:
    """A time column read untyped: SQLite's text (naive UTC, as vigil_kit.db.UTCDateTime stores it) or
    a driver's datetime; returned naive UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _page_ts(value: datetime | None) -> dict[str, int] | None:
    # Timestamp.FromDatetime's arithmetic, as constructor fields (a page sets hundreds of timestamps;
    # building each Timestamp object first costs more than the rest of the row).
    if value is None:
        return None
    delta = value - _EPOCH
    return {"seconds": delta.days * 86400 + delta.seconds, "nanos": delta.microseconds * 1000}


(
    _ID,
    _SITE,
    _OWNER,
    _NAME,
    _AREA,
    _LAT,
    _LON,
    _DIR,
    _RANGE,
    _SIGN,
    _MASKS,
    _MEASURES,
    _VENDOR,
    _MODEL,
    _KEY,
    _PROFILE,
    _RETENTION,
    _INTERVAL,
    _COUNT,
    _STATE,
    _LAST,
    _ACTIVATED,
    _OFFLINE,
    _REGISTERED,
    _UPDATED,
) = (_C[name] for name in PAGE_COLUMNS)


# Decoded privacy masks by their stored JSON text: a city's cameras repeat a few mask layouts, and
# parsing the text and building the nested values costs a page row more than the rest of it.
_MASKS_BY_TEXT: dict[str, list[dict[str, Any]]] = {}
MASKS_CACHE_MAX = 10_000


def _page_masks(value: Any) -> list[dict[str, Any]]:
    """A row's privacy_masks (JSON text, or a driver's decoded list) as constructor values: dicts, which
    the constructor builds nested messages from faster than from objects. Cached by text; the cached
    lists are only read (the constructor copies them)."""
    if not isinstance(value, str):
        return [{"points": [{"x": float(x), "y": float(y)} for x, y in m]} for m in value or ()]
    out = _MASKS_BY_TEXT.get(value)
    if out is None:
        out = [{"points": [{"x": float(x), "y": float(y)} for x, y in m]} for m in json.loads(value) or ()]
        if len(_MASKS_BY_TEXT) >= MASKS_CACHE_MAX:
            _MASKS_BY_TEXT.clear()
        _MASKS_BY_TEXT[value] = out
    return out


def page_to_pb(page: DevicePage) -> list[pb.Device]:
    """ListDevices rows straight to messages: the same message device_to_pb gives for the device's
    record (tests hold the two paths equal), without building domain objects in between."""
    response = pb.ListDevicesResponse()
    page_into(page, response.devices)
    return list(response.devices)


def page_into(page: DevicePage, out: Any) -> None:
    """page_to_pb's messages built in place in `out` (a response's repeated Device field): a Device
    built apart and then added to a response is copied once more, which costs a page about a third."""
    owners = {unit_id: unit_to_pb(unit) for unit_id, unit in page.units.items()}
    facts = {site_id: site_facts(site) for site_id, site in page.sites.items()}
    for r in page.rows:
        retention_s = r[_RETENTION]
        activated = _page_time(r[_ACTIVATED])
        last = _page_time(r[_LAST])
        state = _DEVICE_STATES[r[_STATE]]
        deadline = None
        if state == _ACTIVE:
            # REG-11 (keepalive.offline_deadline): interval × count from the later of activation and
            # the last keepalive.
            since = activated if last is None else last if activated is None else max(activated, last)
            if since is not None:
                deadline = since + timedelta(seconds=r[_INTERVAL] * r[_COUNT])
        out.add(
            device_id=r[_ID],
            site_id=r[_SITE],
            owner_unit_id=r[_OWNER],
            name=r[_NAME],
            area_type=_AREA_TYPES[r[_AREA]],
            latitude=r[_LAT],
            longitude=r[_LON],
            direction_deg=r[_DIR],
            capture_range_m=r[_RANGE],
            notice_sign_confirmed=r[_SIGN],
            privacy_masks=_page_masks(r[_MASKS]),
            privacy_measures=r[_MEASURES],
            vendor=r[_VENDOR],
            model=r[_MODEL],
            public_key=r[_KEY],
            retention_profile=r[_PROFILE],
            keepalive_interval_s=r[_INTERVAL],
            keepalive_timeout_count=r[_COUNT],
            state=state,
            retention_days=(timedelta(seconds=retention_s) / _DAY) if retention_s is not None else 0.0,
            owner=owners[r[_OWNER]],
            site=facts[r[_SITE]],
            last_keepalive_time=_page_ts(last),
            activate_time=_page_ts(activated),
            offline_time=_page_ts(_page_time(r[_OFFLINE])),
            register_time=_page_ts(_page_time(r[_REGISTERED])),
            update_time=_page_ts(_page_time(r[_UPDATED])),
            offline_deadline=_page_ts(deadline),
        )


def apply_mask(before: T, patch: T, paths: Iterable[str], allowed: Iterable[str], what: str) -> T:
    """`before` with the masked fields taken from `patch` (AIP-134). An empty mask, an unknown path or an
    output-only path is refused: a partial update must say what it changes."""
    allowed = tuple(allowed)
    paths = [p.strip() for p in paths]
    if not paths:
        raise InvalidArgument(
            f"update_mask is required: name the {what} fields to change (e.g. 'name')", field="update_mask"
        )
    changes: dict[str, Any] = {}
    for path in paths:
        if path not in allowed:
            raise InvalidArgument(
                f"update_mask path {path!r} is not a settable {what} field (one of {', '.join(allowed)})",
                field="update_mask",
            )
        changes[path] = getattr(patch, path)
    return replace(before, **changes)  # type: ignore[type-var]


# --- filings ----------------------------------------------------------------------------------------


def facts_to_pb(facts: FilingFacts | None) -> pb.FilingFacts | None:
    if facts is None:
        return None
    return pb.FilingFacts(
        device_count=facts.device_count,
        device_types=dict(facts.device_types),
        division_code=facts.location[0],
        address=facts.location[1],
        retention_days=list(facts.retention_days),
    )


def filing_to_pb(filing: Filing, current: FilingFacts | None = None) -> pb.Filing:
    return pb.Filing(
        unit_id=filing.unit_id,
        site_id=filing.site_id,
        state=pb.FilingState.Value(filing.state.value),
        in_use_on=_iso(filing.in_use_on),
        due_on=_iso(filing.due_on),
        filing_number=filing.filing_number,
        filed_on=_iso(filing.filed_on),
        changes=list(filing.changes),
        filed_facts=facts_to_pb(filing.filed_facts),
        current_facts=facts_to_pb(current),
    )


def enum_or_none(cls: type[T], value: int, names: Any) -> T | None:
    """A filter enum: None for *_UNSPECIFIED (no filter)."""
    return None if value == 0 else _enum(cls, names.Name(value), "filter")
