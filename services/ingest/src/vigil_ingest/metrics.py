"""Every metric of the ingest service, named vigil_ingest_*; labels are bounded (never a device id)."""

from __future__ import annotations

from importlib.metadata import version

from prometheus_client import Counter, Gauge, Histogram

BUILD_INFO = Gauge(
    "vigil_ingest_build_info",
    "Always 1 while the ingest service runs; the label names its version.",
    ["version"],
)

# outcome: stored, replayed, or the gRPC status name of the refusal (a closed set), or cancelled.
UPLOADS = Counter(
    "vigil_ingest_uploads_total",
    "Segment uploads by outcome: stored, replayed, cancelled, or the refusal's status code.",
    ["outcome"],
)
UPLOADED_BYTES = Counter(
    "vigil_ingest_uploaded_bytes_total", "Bytes of segments stored (replays and refusals excluded)."
)
UPLOAD_SECONDS = Histogram(
    "vigil_ingest_upload_seconds",
    "Time from an upload's header to its answer, by outcome class (stored, replayed, refused).",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
IN_FLIGHT_BYTES = Gauge(
    "vigil_ingest_in_flight_bytes", "Bytes reserved for uploads in progress (the backpressure budget)."
)
IN_FLIGHT_UPLOADS = Gauge("vigil_ingest_in_flight_uploads", "Uploads in progress.")
ALARMS = Counter(
    "vigil_ingest_alarms_total", "Device alarms by outcome (raised, or the refusal's code).", ["outcome"]
)
DEVICE_LOOKUPS = Counter(
    "vigil_ingest_device_lookups_total",
    "Device fact lookups: cache hit, or registry asked (found, not_found, error).",
    ["source"],
)
CACHE_EVENTS = Counter(
    "vigil_ingest_device_cache_events_total", "Registry events applied to the device cache.", ["type"]
)


def publish_build_info() -> None:
    BUILD_INFO.labels(version=version("vigil-ingest")).set(1)
