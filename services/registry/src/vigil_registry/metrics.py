"""Every metric of the registry service, named vigil_registry_*."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import Counter, Gauge, Histogram

BUILD_INFO = Gauge(
    "vigil_registry_build_info",
    "Always 1 while the registry service runs; the label names its version.",
    ["version"],
)

KEEPALIVES = Counter(
    "vigil_registry_keepalives_total",
    "Keepalives handled (unary and streamed), by outcome: accepted or rejected.",
    ["outcome"],
)

WENT_OFFLINE = Counter(
    "vigil_registry_devices_went_offline_total",
    "Devices the offline detector marked OFFLINE (REG-11).",
)

OFFLINE_DETECTION_LAG = Histogram(
    "vigil_registry_offline_detection_lag_seconds",
    "How long after its offline deadline a device was marked OFFLINE (REG-11: within 1 s).",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0),
)

WATCHED_DEVICES = Gauge(
    "vigil_registry_watched_devices",
    "ACTIVE devices whose offline deadline the detector holds.",
)

REFUSALS = Counter(
    "vigil_registry_refusals_total",
    "Refused registry calls, by rule id (or status code when no rule applies).",
    ["rule"],
)


def publish_build_info() -> None:
    BUILD_INFO.labels(version=version("vigil-registry")).set(1)
