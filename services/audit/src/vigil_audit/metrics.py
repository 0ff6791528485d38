"""Every metric of the audit service, named vigil_audit_*."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import Gauge

BUILD_INFO = Gauge(
    "vigil_audit_build_info",
    "Always 1 while the audit service runs; the label names its version.",
    ["version"],
)


def publish_build_info() -> None:
    BUILD_INFO.labels(version=version("vigil-audit")).set(1)
