"""Every metric of the sharing service, named vigil_sharing_*."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import Counter, Gauge, Histogram

BUILD_INFO = Gauge(
    "vigil_sharing_build_info",
    "Always 1 while the sharing service runs; the label names its version.",
    ["version"],
)
DECISIONS = Counter(
    "vigil_sharing_decisions_total",
    "Authorize decisions answered, by outcome and the rule they rest on.",
    ["decision", "rule"],
)
AUDIT_FAILURES = Counter(
    "vigil_sharing_decision_audit_failures_total",
    "Authorize decisions turned into a deny because their audit record could not be written (ACC-1).",
)
AUDIT_BATCH = Histogram(
    "vigil_sharing_decision_audit_batch_size",
    "Decisions whose audit records committed in one transaction.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)
ACTIVE_GRANTS = Gauge("vigil_sharing_active_grants", "Grants in this process's in-memory index.")
REGISTRY_LOOKUPS = Counter(
    "vigil_sharing_registry_lookups_total", "Registry GetDevice calls made on a device-cache miss."
)
GRANTS_EXPIRED = Counter("vigil_sharing_grants_expired_total", "Requests and grants the expiry worker ended.")


def publish_build_info() -> None:
    BUILD_INFO.labels(version=version("vigil-sharing")).set(1)
