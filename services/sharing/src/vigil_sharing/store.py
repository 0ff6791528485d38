"""The sharing database: access requests (= grants), principals' facts, the device cache, subscriptions.

A request is stored as its vigil.sharing.v1.AccessRequest message (the record) plus the columns it is
looked up by; the message is the one truth, the columns are its index. SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.sharing.v1 import sharing_service_pb2 as pb
from vigil_kit.db import UTCDateTime
from vigil_sharing import codec
from vigil_sharing.domain.model import DeviceFacts, RequestState

METADATA = MetaData()

requests_table = Table(
    "sharing_requests",
    METADATA,
    Column("request_id", String(64), primary_key=True),
    Column("requester_id", String(255), nullable=False),
    Column("requester_unit", String(64), nullable=False),
    Column("state", String(32), nullable=False),
    Column("valid_until", UTCDateTime, nullable=False),
    Column("create_time", UTCDateTime, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Index("ix_sharing_requests_requester", "requester_id"),
    Index("ix_sharing_requests_unit", "requester_unit"),
    Index("ix_sharing_requests_state_until", "state", "valid_until"),
)

principal_facts_table = Table(
    "sharing_principal_facts",
    METADATA,
    Column("principal_id", String(255), primary_key=True),
    Column("payload", LargeBinary, nullable=False),
    Column("update_time", UTCDateTime, nullable=False),
)

devices_table = Table(
    "sharing_devices",
    METADATA,
    Column("device_id", String(32), primary_key=True),
    Column("owner_unit", String(64), nullable=False),
    Column("site_id", String(128), nullable=False),
    Column("division_code", String(12), nullable=False),
    Column("place_category", String(64), nullable=False),
    Column("funding", String(32), nullable=False),
    Column("secret_related", Boolean, nullable=False),
    Column("owner_unit_kind", String(64), nullable=False),
    Column("update_time", UTCDateTime, nullable=False),
    # What the facts are as of, in the registry's time (DeviceFacts.device_time and site_time).
    Column("device_time", UTCDateTime, nullable=True),
    Column("site_time", UTCDateTime, nullable=True),
    Index("ix_sharing_devices_site", "site_id"),
)

subscriptions_table = Table(
    "sharing_subscriptions",
    METADATA,
    Column("subscription_id", String(64), primary_key=True),
    Column("partner_unit_id", String(64), nullable=False),
    Column("grant_id", String(64), nullable=False),
    Column("create_time", UTCDateTime, nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Index("ix_sharing_subscriptions_unit", "partner_unit_id"),
    Index("ix_sharing_subscriptions_grant", "grant_id"),
)

OPEN_STATES = (RequestState.PENDING.value, RequestState.APPROVED.value)


# ------------------------------------------------------------------ requests


async def insert_request(session: AsyncSession, message: pb.AccessRequest) -> None:
    await session.execute(requests_table.insert().values(**_request_row(message)))


async def update_request(session: AsyncSession, message: pb.AccessRequest) -> None:
    row = _request_row(message)
    await session.execute(
        update(requests_table).where(requests_table.c.request_id == message.request_id).values(**row)
    )


def _request_row(message: pb.AccessRequest) -> dict[str, object]:
    return {
        "request_id": message.request_id,
        "requester_id": message.requester.id,
        "requester_unit": message.requester.unit,
        "state": pb.RequestState.Name(message.state),
        "valid_until": message.valid_until.ToDatetime(tzinfo=codec.UTC),
        "create_time": message.create_time.ToDatetime(tzinfo=codec.UTC),
        "payload": message.SerializeToString(),
    }


async def get_request(
    session: AsyncSession, request_id: str, *, for_update: bool = False
) -> pb.AccessRequest | None:
    stmt = select(requests_table.c.payload).where(requests_table.c.request_id == request_id)
    if for_update:
        stmt = stmt.with_for_update()
    payload = await session.scalar(stmt)
    return pb.AccessRequest.FromString(payload) if payload is not None else None


async def list_requests(
    session: AsyncSession,
    *,
    after: str,
    limit: int,
    state: str | None,
    requester_id: str | None,
    unit: str | None,
) -> list[pb.AccessRequest]:
    t = requests_table
    stmt = select(t.c.payload).where(t.c.request_id > after).order_by(t.c.request_id).limit(limit)
    if state:
        stmt = stmt.where(t.c.state == state)
    if requester_id:
        stmt = stmt.where(t.c.requester_id == requester_id)
    if unit is not None:
        stmt = stmt.where(t.c.requester_unit == unit)
    return [pb.AccessRequest.FromString(p) for p in await session.scalars(stmt)]


async def approved_payloads(session: AsyncSession) -> list[tuple[str, bytes]]:
    """(request id, stored message bytes) of every APPROVED request, undecoded: the grant book compares the
    bytes with what it last loaded and decodes only the requests that changed."""
    t = requests_table
    rows = await session.execute(
        select(t.c.request_id, t.c.payload).where(t.c.state == RequestState.APPROVED.value)
    )
    return [(request_id, bytes(payload)) for request_id, payload in rows]


async def lapsed_request_ids(session: AsyncSession, now: datetime, limit: int = 500) -> list[str]:
    """Open (pending or approved) requests whose validity ended at or before `now`."""
    t = requests_table
    stmt = (
        select(t.c.request_id)
        .where(t.c.state.in_(OPEN_STATES), t.c.valid_until <= now)
        .order_by(t.c.valid_until)
        .limit(limit)
    )
    return list(await session.scalars(stmt))


# ------------------------------------------------------------------ principals' facts


async def get_principal_facts(session: AsyncSession, principal_id: str) -> pb.PrincipalFacts | None:
    payload = await session.scalar(
        select(principal_facts_table.c.payload).where(principal_facts_table.c.principal_id == principal_id)
    )
    return pb.PrincipalFacts.FromString(payload) if payload is not None else None


async def all_principal_facts(session: AsyncSession) -> list[pb.PrincipalFacts]:
    return [
        pb.PrincipalFacts.FromString(p)
        for p in await session.scalars(select(principal_facts_table.c.payload))
    ]


async def put_principal_facts(session: AsyncSession, facts: pb.PrincipalFacts, now: datetime) -> None:
    t = principal_facts_table
    row = {"payload": facts.SerializeToString(), "update_time": now}
    result = await session.execute(update(t).where(t.c.principal_id == facts.principal_id).values(**row))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        await session.execute(t.insert().values(principal_id=facts.principal_id, **row))


# ------------------------------------------------------------------ device cache


def _device_row(d: DeviceFacts, now: datetime) -> dict[str, object]:
    return {
        "owner_unit": d.owner_unit,
        "site_id": d.site_id,
        "division_code": d.division_code,
        "place_category": d.place_category,
        "funding": d.funding,
        "secret_related": d.secret_related,
        "owner_unit_kind": d.owner_unit_kind,
        "update_time": now,
        "device_time": d.device_time,
        "site_time": d.site_time,
    }


async def put_device(session: AsyncSession, d: DeviceFacts, now: datetime) -> None:
    t = devices_table
    row = _device_row(d, now)
    result = await session.execute(update(t).where(t.c.device_id == d.device_id).values(**row))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        await session.execute(t.insert().values(device_id=d.device_id, **row))


async def get_device(session: AsyncSession, device_id: str) -> DeviceFacts | None:
    t = devices_table
    row = (await session.execute(select(t).where(t.c.device_id == device_id))).first()
    return _device(row) if row is not None else None


async def all_devices(session: AsyncSession) -> list[DeviceFacts]:
    """Every cached device (loaded into memory at start)."""
    return [_device(r) for r in (await session.execute(select(devices_table))).all()]


async def get_devices(session: AsyncSession, device_ids: Iterable[str]) -> dict[str, DeviceFacts]:
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    t = devices_table
    rows = (await session.execute(select(t).where(t.c.device_id.in_(ids)))).all()
    return {r.device_id: _device(r) for r in rows}


async def devices_at_site(session: AsyncSession, site_id: str) -> list[DeviceFacts]:
    t = devices_table
    return [_device(r) for r in (await session.execute(select(t).where(t.c.site_id == site_id))).all()]


def _device(r: object) -> DeviceFacts:
    return DeviceFacts(
        device_id=r.device_id,  # type: ignore[attr-defined]
        owner_unit=r.owner_unit,  # type: ignore[attr-defined]
        site_id=r.site_id,  # type: ignore[attr-defined]
        division_code=r.division_code,  # type: ignore[attr-defined]
        place_category=r.place_category,  # type: ignore[attr-defined]
        funding=r.funding,  # type: ignore[attr-defined]
        secret_related=bool(r.secret_related),  # type: ignore[attr-defined]
        owner_unit_kind=r.owner_unit_kind,  # type: ignore[attr-defined]
        device_time=r.device_time,  # type: ignore[attr-defined]
        site_time=r.site_time,  # type: ignore[attr-defined]
    )


# ------------------------------------------------------------------ subscriptions


async def insert_subscription(session: AsyncSession, sub: pb.Subscription) -> None:
    await session.execute(
        subscriptions_table.insert().values(
            subscription_id=sub.subscription_id,
            partner_unit_id=sub.partner_unit_id,
            grant_id=sub.grant_id,
            create_time=sub.create_time.ToDatetime(tzinfo=codec.UTC),
            payload=sub.SerializeToString(),
        )
    )


async def list_subscriptions(
    session: AsyncSession, unit: str | None, *, after: str, limit: int
) -> Sequence[pb.Subscription]:
    t = subscriptions_table
    stmt = select(t.c.payload).where(t.c.subscription_id > after).order_by(t.c.subscription_id).limit(limit)
    if unit is not None:
        stmt = stmt.where(t.c.partner_unit_id == unit)
    return [pb.Subscription.FromString(p) for p in await session.scalars(stmt)]
