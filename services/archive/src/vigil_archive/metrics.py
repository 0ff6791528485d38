"""Every metric of the archive service, named vigil_archive_*."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import Counter, Gauge

BUILD_INFO = Gauge(
    "vigil_archive_build_info",
    "Always 1 while the archive service runs; the label names its version.",
    ["version"],
)


def publish_build_info() -> None:
    BUILD_INFO.labels(version=version("vigil-archive")).set(1)


REFUSALS = Counter(
    "vigil_archive_refusals_total",
    "Archive calls refused, by the rule (or status code) that refused them.",
    ["rule"],
)
SEGMENTS_INDEXED = Counter(
    "vigil_archive_segments_indexed_total",
    "Object versions entered into the segment index, by where they came from.",
    ["source"],
)
SEGMENTS_EXPIRED = Counter(
    "vigil_archive_segments_expired_total",
    "Segment versions removed from storage and the index after their retention (ARC-3).",
)
INTEGRITY_VIOLATIONS = Counter(
    "vigil_archive_integrity_violations_total",
    "Integrity findings (ARC-4), by kind and by what found them.",
    ["kind", "detected_by"],
)
OBJECT_LOCK_ENFORCED = Gauge(
    "vigil_archive_object_lock_enforced",
    "1 when the start-up check saw object storage refuse a versioned delete of a locked object (ARC-2); "
    "0 when it did not, so only the application enforces retention.",
)
