"""The archive service's settings: every ARCHIVE_* environment variable, validated at start."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from vigil_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Archive settings; `ARCHIVE_GRPC_PORT` sets grpc_port, and so on for every field."""

    model_config = SettingsConfigDict(env_prefix="ARCHIVE_")

    service_name: str = "archive"
    grpc_port: int = Field(default=50053, ge=0, le=65535)
    metrics_port: int = Field(default=9463, ge=0, le=65535, description="0 disables /metrics")
    database_url: str = "sqlite+aiosqlite:///vigil-archive.db"
    max_segment_seconds: float = Field(
        default=600.0,
        gt=0,
        description="Longest segment indexed; at least ingest's INGEST_MAX_SEGMENT_SECONDS",
    )
    sharing_timeout_s: float = Field(default=2.0, gt=0, description="Deadline of a grant check at sharing")
    max_coverage_gaps: int = Field(default=10_000, ge=0, description="Gaps a coverage answer lists at most")
    root_interval_s: float = Field(
        default=5.0, gt=0, description="How often device-day Merkle roots of changed days are recomputed"
    )
