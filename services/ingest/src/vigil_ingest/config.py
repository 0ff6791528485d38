"""The ingest service's settings: every INGEST_* environment variable, validated at start."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from vigil_ingest.domain.upload import MiB, UploadLimits
from vigil_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Ingest settings; `INGEST_GRPC_PORT` sets grpc_port, and so on for every field."""

    model_config = SettingsConfigDict(env_prefix="INGEST_")

    service_name: str = "ingest"
    grpc_port: int = Field(default=50052, ge=0, le=65535)
    metrics_port: int = Field(default=9462, ge=0, le=65535, description="0 disables /metrics")
    database_url: str = "sqlite+aiosqlite:///vigil-ingest.db"

    # --- what one upload may be, and how it is stored (UploadLimits) ---
    max_segment_bytes: int = Field(default=256 * MiB, gt=0, description="Largest segment accepted (bytes)")
    single_put_max_bytes: int = Field(
        default=8 * MiB,
        gt=0,
        description="Segments up to this size are held whole and stored with one PUT; larger ones stream "
        "up as a multipart upload",
    )
    part_bytes: int = Field(default=8 * MiB, description="Multipart part size (S3: 5 MiB..5 GiB)")
    max_segment_seconds: float = Field(default=600.0, gt=0, description="Longest segment duration accepted")
    max_clock_skew_s: float = Field(
        default=300.0, ge=0, description="How far a segment's start may lie ahead of the service's clock"
    )
    min_lock_s: float = Field(
        default=3600.0,
        gt=0,
        description="ARC-2: footage uploaded late is locked at least this long from now, even when its "
        "retention has already run out",
    )

    # --- backpressure ---
    max_uploads_per_device: int = Field(
        default=2, ge=1, description="Concurrent uploads one device may have in progress"
    )
    max_bytes_in_flight: int = Field(
        default=512 * MiB,
        gt=0,
        description="Bytes all uploads of this process may buffer at once; beyond, RESOURCE_EXHAUSTED",
    )
    retry_after_s: float = Field(
        default=1.0, gt=0, description="The retry delay RESOURCE_EXHAUSTED answers carry (RetryInfo)"
    )
    s3_threads: int = Field(default=16, ge=1, le=256, description="Threads making blocking S3 calls")

    # --- device facts ---
    registry_timeout_s: float = Field(
        default=3.0, gt=0, description="Deadline of a GetDevice call to the registry on a cache miss"
    )

    # --- alarms ---
    max_snapshot_bytes: int = Field(default=4 * MiB, gt=0, description="Largest alarm snapshot (JPEG)")

    @model_validator(mode="after")
    def _limits_are_valid(self) -> Settings:
        # A bad knob stops the service with one line instead of failing the first upload.
        self.limits()
        return self

    def limits(self) -> UploadLimits:
        return UploadLimits(
            max_segment_bytes=self.max_segment_bytes,
            single_put_max_bytes=self.single_put_max_bytes,
            part_bytes=self.part_bytes,
            max_duration=timedelta(seconds=self.max_segment_seconds),
            max_clock_skew=timedelta(seconds=self.max_clock_skew_s),
        )
