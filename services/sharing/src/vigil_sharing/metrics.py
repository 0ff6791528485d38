"""Every metric of the sharing service, named vigil_sharing_*."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import Gauge

BUILD_INFO = Gauge(
    "vigil_sharing_build_info",
    "Always 1 while the sharing service runs; the label names its version.",
    ["version"],
)


def publish_build_info() -> None:
    BUILD_INFO.labels(version=version("vigil-sharing")).set(1)
