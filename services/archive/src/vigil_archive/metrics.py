"""Every metric of the archive service, named vigil_archive_*."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import Gauge

BUILD_INFO = Gauge(
    "vigil_archive_build_info",
    "Always 1 while the archive service runs; the label names its version.",
    ["version"],
)


def publish_build_info() -> None:
    BUILD_INFO.labels(version=version("vigil-archive")).set(1)
