"""Every Kafka topic name Vigil uses, in one place (ARCHITECTURE "Services")."""

from __future__ import annotations

REGISTRY_EVENTS = "vigil.registry.events.v1"
DEVICE_STATUS = "vigil.device.status.v1"
INGEST_SEGMENTS = "vigil.ingest.segments.v1"
INGEST_ALARMS = "vigil.ingest.alarms.v1"
ARCHIVE_EVENTS = "vigil.archive.events.v1"
SHARING_EVENTS = "vigil.sharing.events.v1"
# Single partition: the audit log has a single writer and appends in topic order.
AUDIT_RECORDS = "vigil.audit.records.v1"

ALL = (
    REGISTRY_EVENTS,
    DEVICE_STATUS,
    INGEST_SEGMENTS,
    INGEST_ALARMS,
    ARCHIVE_EVENTS,
    SHARING_EVENTS,
    AUDIT_RECORDS,
)

# Partitions per topic when Vigil creates them (the cluster chart sets its own).
PARTITIONS = {name: 1 if name == AUDIT_RECORDS else 3 for name in ALL}


def partner_topic(partner_unit_id: str) -> str:
    """The topic a partner unit reads its subscribed events from."""
    return f"vigil.partner.{partner_unit_id}.v1"
