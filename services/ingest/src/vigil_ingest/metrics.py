"""Every metric of the ingest service, named vigil_ingest_*."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import Gauge

BUILD_INFO = Gauge(
    "vigil_ingest_build_info",
    "Always 1 while the ingest service runs; the label names its version.",
    ["version"],
)


def publish_build_info() -> None:
    BUILD_INFO.labels(version=version("vigil-ingest")).set(1)
