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

# --- retention and holds (ARC-3) ---
SWEEP_STORAGE_FAILURES = Counter(
    "vigil_archive_sweep_storage_failures_total",
    "Expired segment versions storage refused (or failed) to delete; they stay indexed for the next sweep.",
)
SWEEP_LAST_RUN = Gauge(
    "vigil_archive_sweep_last_run_timestamp_seconds",
    "When the last expiry sweep finished (Unix time).",
)

# --- integrity (ARC-4) ---
INTEGRITY_CHECKED = Counter(
    "vigil_archive_integrity_checked_total",
    "Segment versions re-checked against storage (ARC-4), by what checked them.",
    ["detected_by"],
)
INTEGRITY_BYTES_HASHED = Counter(
    "vigil_archive_integrity_bytes_hashed_total",
    "Bytes read back from storage and re-hashed (ARC-4), by what read them.",
    ["detected_by"],
)
ORPHANS_REINDEXED = Counter(
    "vigil_archive_orphans_reindexed_total",
    "Stored object versions the index lacked, re-indexed after their signed header verified.",
)
ORPHANS_SKIPPED = Counter(
    "vigil_archive_orphans_skipped_total",
    "Orphan object versions not re-indexed, by why (retried next run unless they cannot verify).",
    ["reason"],
)
DAY_ROOTS_COMPUTED = Counter(
    "vigil_archive_day_roots_computed_total",
    "Device-day Merkle roots (re)computed (ARC-4).",
)
