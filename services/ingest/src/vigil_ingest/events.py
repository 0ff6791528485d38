"""What ingest publishes: SegmentIngested and AlarmRaised events and its audit records, via the outbox.

Every write goes into the caller's session, so an event and its audit record commit (or vanish)
with the upload record they describe. The upload path's group commit writes the same outbox rows
itself (`Publisher.*_row`, from vigil_kit.outbox.event_row), in one statement with its upload rows. Ingest consumes the
registry's events (see devices.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from vigil.common.v1 import identity_pb2
from vigil.ingest.v1 import events_pb2
from vigil.ingest.v1 import ingest_service_pb2 as pb
from vigil_ingest import codec
from vigil_ingest.domain.container import Container
from vigil_ingest.domain.upload import UploadHeader
from vigil_ingest.store import UploadRecord
from vigil_kit import audit, outbox, topics
from vigil_kit.auth import Principal

SOURCE = "ingest"

ACTION_UPLOAD = "ingest.segment.upload"
ACTION_ALARM = "ingest.alarm.report"


def segment_ingested(
    record: UploadRecord,
    upload: UploadHeader,
    *,
    owner_unit_id: str,
    uploader: Principal | identity_pb2.Principal,
) -> events_pb2.SegmentIngested:
    return events_pb2.SegmentIngested(
        device_id=record.device_id,
        sequence=record.sequence,
        start_time=codec.ts_ns(record.start_ns),
        end_time=codec.ts_ns(record.start_ns + record.duration_ns),
        duration=codec.duration_ns(record.duration_ns),
        bucket=record.bucket,
        key=record.object_key,
        version_id=record.version_id,
        size=record.size,
        sha256=record.sha256,
        codec=record.codec,
        container=codec.CONTAINER_ENUMS[Container(record.container)],
        retain_until=codec.ts(record.retain_until),
        retention_days=record.retention_days,
        signature=upload.signature,
        owner_unit_id=owner_unit_id,
        ingest_time=codec.ts(record.ingest_time),
        uploader=uploader if isinstance(uploader, identity_pb2.Principal) else uploader.to_proto(),
    )


class Publisher:
    """Enqueues ingest events and audit records in a session; wakes the relay after commit."""

    def __init__(self, notifier: Callable[[], None] | None = None, source: str = SOURCE) -> None:
        self.notifier = notifier
        self.source = source

    def notify(self) -> None:
        """Rows written outside enqueue() were committed: wake the relay (what enqueue's hook does)."""
        if self.notifier is not None:
            self.notifier()

    def segment_ingested_row(self, message: events_pb2.SegmentIngested, *, event_id: str) -> dict[str, Any]:
        """The outbox row segment_ingested() would add (same topic, key, subject and event id)."""
        return outbox.event_row(
            topic=topics.INGEST_SEGMENTS,
            key=message.device_id,
            message=message,
            source_service=self.source,
            subject=message.key,
            event_id=event_id,
        )

    def audit_row(self, record: audit.AuditRecord) -> dict[str, Any]:
        """The outbox row audit.write_audit would add for `record` (topic, key and event id = record id)."""
        return audit.audit_row(record)

    def segment_ingested(self, session: object, message: events_pb2.SegmentIngested, *, event_id: str) -> str:
        row = self.segment_ingested_row(message, event_id=event_id)
        return outbox.add_row(session, row, notifier=self.notifier)  # type: ignore[arg-type]

    def alarm_raised(self, session: object, alarm: pb.Alarm, reporter: Principal) -> str:
        message = events_pb2.AlarmRaised(alarm=alarm, reporter=reporter.to_proto())
        return outbox.enqueue(
            session,  # type: ignore[arg-type]
            topic=topics.INGEST_ALARMS,
            key=alarm.device_id,
            message=message,
            source_service=self.source,
            subject=alarm.alarm_id,
            event_id=alarm.alarm_id,
            notifier=self.notifier,
        )

    def audit(
        self,
        session: object,
        *,
        actor: Principal | identity_pb2.Principal,
        action: str,
        decision: str = audit.ALLOWED,
        resources: Mapping[str, Iterable[str]] | None = None,
        reason: str = "",
        footage: tuple[datetime, datetime] | None = None,
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
            footage=footage,
            rule_id=rule_id,
            attributes=attributes,
            now=now,
        )
        return audit.write_audit(session, record, notifier=self.notifier)  # type: ignore[arg-type]
