"""Every metric of the registry service, named vigil_registry_*."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import Gauge

BUILD_INFO = Gauge(
    "vigil_registry_build_info",
    "Always 1 while the registry service runs; the label names its version.",
    ["version"],
)


def publish_build_info() -> None:
    BUILD_INFO.labels(version=version("vigil-registry")).set(1)
