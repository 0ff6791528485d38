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
