"""Every metric of the audit service, named vigil_audit_*."""

from __future__ import annotations

import time
from importlib.metadata import version

from prometheus_client import Counter, Gauge, Histogram

BUILD_INFO = Gauge(
    "vigil_audit_build_info",
    "Always 1 while the audit service runs; the label names its version.",
    ["version"],
)
LEAVES_APPENDED = Counter("vigil_audit_leaves_appended_total", "Records appended to the log as leaves.")
DUPLICATES = Counter(
    "vigil_audit_duplicates_total", "Deliveries skipped because their record id is already in the log."
)
REJECTED = Counter(
    "vigil_audit_records_rejected_total",
    "Records on the topic that cannot become leaves (not an AuditRecord, no record id, no canonical encoding).",
    ["reason"],
)
TREE_SIZE = Gauge("vigil_audit_tree_size", "Leaves in the log, as this writer last committed it.")
SIGNED_TREE_SIZE = Gauge("vigil_audit_signed_tree_size", "Size of the latest signed tree head.")
APPEND_BATCH_SECONDS = Histogram(
    "vigil_audit_append_batch_seconds",
    "Time to append one batch (encode, hash, one database transaction).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
WRITER_LEASE_HELD = Gauge(
    "vigil_audit_writer_lease_held", "1 while this process holds the log writer's lease."
)

_last_sth_unix = [0.0]
STH_AGE = Gauge(
    "vigil_audit_sth_age_seconds",
    "Seconds since this writer last signed a tree head (0 before it has signed one).",
)
STH_AGE.set_function(lambda: time.time() - _last_sth_unix[0] if _last_sth_unix[0] else 0.0)


def note_tree_head_signed(size: int, when_unix: float) -> None:
    _last_sth_unix[0] = when_unix
    SIGNED_TREE_SIZE.set(size)


def publish_build_info() -> None:
    BUILD_INFO.labels(version=version("vigil-audit")).set(1)
