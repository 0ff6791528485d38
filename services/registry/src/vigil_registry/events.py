"""What the registry publishes: its domain events, status events and audit records, via the outbox.

Every write goes into the caller's session, so an event and its audit record commit (or vanish) with
the change they describe. The registry consumes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from vigil.registry.v1 import events_pb2
from vigil_kit import audit, outbox, topics
from vigil_kit.auth import Principal
from vigil_kit.migrations import outbox_table
from vigil_registry.codec import duration, ts
from vigil_registry.domain.model import Device

SOURCE = "registry"

# The actor of what the registry does on its own (the offline detector).
SYSTEM_ACTOR = Principal(
    id="service:registry",
    name="registry",
    unit="",
    unit_kind="UNIT_KIND_UNSPECIFIED",
    roles=frozenset({"ROLE_SERVICE"}),
)


class Publisher:
    """Enqueues registry events and audit records in a session; wakes the relay after commit."""

    def __init__(self, notifier: Callable[[], None] | None = None, source: str = SOURCE) -> None:
        self.notifier = notifier
        self.source = source

    def registry_event(self, session: object, key: str, message: Message) -> str:
        """A vigil.registry.events.v1 event keyed by the entity id (unit, site or device)."""
        return outbox.enqueue(
            session,  # type: ignore[arg-type]
            topic=topics.REGISTRY_EVENTS,
            key=key,
            message=message,
            source_service=self.source,
            notifier=self.notifier,
        )

    async def registry_events(self, session: AsyncSession, items: Sequence[tuple[str, Message]]) -> list[str]:
        """Many vigil.registry.events.v1 events (key, message) in one executemany INSERT; their event ids.

        The rows are exactly those outbox.enqueue adds (and the relay publishes), written through Core
        rather than one ORM object each: a bulk import's thousand events cost a tenth as much. The relay
        is woken by the caller's audit record, written with the notifier in the same transaction.
        """
        if not items:
            return []
        now = datetime.now(UTC)
        rows = [
            outbox.event_row(
                topic=topics.REGISTRY_EVENTS,
                key=key,
                message=message,
                source_service=self.source,
                created_at=now,
            )
            for key, message in items
        ]
        await session.execute(outbox_table.insert(), rows)
        return [r["event_id"] for r in rows]

    def status_event(self, session: object, key: str, message: Message) -> str:
        """A vigil.device.status.v1 event keyed by device id."""
        return outbox.enqueue(
            session,  # type: ignore[arg-type]
            topic=topics.DEVICE_STATUS,
            key=key,
            message=message,
            source_service=self.source,
            notifier=self.notifier,
        )

    def audit(
        self,
        session: object,
        *,
        actor: Principal,
        action: str,
        decision: str = audit.ALLOWED,
        resources: Mapping[str, Iterable[str]] | None = None,
        reason: str = "",
        rule_id: str = "",
        attributes: Mapping[str, str] | None = None,
        now: datetime | None = None,
    ) -> str:
        record = audit.build_record(
            actor=actor,
            action=action,
            source_service=self.source,
            decision=decision,
            resources=resources,
            reason=reason,
            rule_id=rule_id,
            attributes=attributes,
            now=now,
        )
        return audit.write_audit(session, record, notifier=self.notifier)  # type: ignore[arg-type]


def went_offline(device: Device, division_code: str, detected: datetime) -> events_pb2.DeviceWentOffline:
    return events_pb2.DeviceWentOffline(
        device_id=device.device_id,
        site_id=device.site_id,
        owner_unit_id=device.owner_unit_id,
        division_code=division_code,
        offline_time=ts(device.offline_since),
        last_keepalive_time=ts(device.last_keepalive_time),
        detect_time=ts(detected),
    )


def went_online(
    device: Device, division_code: str, *, offline_since: datetime | None, now: datetime
) -> events_pb2.DeviceWentOnline:
    msg = events_pb2.DeviceWentOnline(
        device_id=device.device_id,
        site_id=device.site_id,
        owner_unit_id=device.owner_unit_id,
        division_code=division_code,
        online_time=ts(now),
        offline_time=ts(offline_since),
    )
    if offline_since is not None:
        msg.outage.CopyFrom(duration(max(now - offline_since, now - now)))
    return msg
