"""The audit service's settings: every AUDIT_* environment variable, validated at start."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from vigil_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    """Audit settings; `AUDIT_GRPC_PORT` sets grpc_port, and so on for every field."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_")

    service_name: str = "audit"
    grpc_port: int = Field(default=50055, ge=0, le=65535)
    metrics_port: int = Field(default=9465, ge=0, le=65535, description="0 disables /metrics")
    database_url: str = "sqlite+aiosqlite:///vigil-audit.db"
    signing_key_file: str | None = Field(
        default=None,
        description=(
            "Ed25519 private key (PKCS#8 PEM) that signs tree heads; unset: one is generated at first "
            "start and kept in the database"
        ),
    )
    writer_lease_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds the log writer's lease lasts without renewal (a crashed writer's successor waits this long)",
    )
    sth_interval_s: float = Field(
        default=0.5, gt=0, le=1.0, description="Seconds between signed tree heads while the log grows"
    )
    append_batch_max: int = Field(
        default=5000, ge=1, le=50_000, description="Most records appended in one transaction"
    )
    encode_workers: int = Field(
        default=0,
        ge=0,
        le=16,
        description=(
            "Processes that decode, encode and hash fetched records beside the event loop "
            "(0: on the event loop)"
        ),
    )
