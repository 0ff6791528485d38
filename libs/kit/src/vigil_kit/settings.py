"""The typed settings base every Vigil service extends (one env prefix per service)."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings shared by every service. A service subclasses this and sets its env prefix:

    class Settings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="REGISTRY_")

    so that REGISTRY_GRPC_PORT, REGISTRY_DATABASE_URL, ... configure the registry.
    """

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str = Field(description="Short service name: registry, ingest, archive, sharing, audit")
    grpc_host: str = "0.0.0.0"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    metrics_port: int = Field(default=9464, ge=0, le=65535, description="0 disables /metrics")
    database_url: str = "sqlite+aiosqlite:///vigil.db"
    kafka_bootstrap: str = "127.0.0.1:9092"
    # How the service authenticates to the broker (vigil_kit.kafka.configure): PLAINTEXT for the embedded
    # broker; SASL_SSL with SCRAM for a cluster whose users the chart renders (Strimzi KafkaUser).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    # CA bundle (PEM file) the broker's certificate is checked against under SSL; empty: the system's.
    kafka_ca_file: str = ""
    s3_endpoint: str = "127.0.0.1:9000"
    s3_access_key: SecretStr = SecretStr("vigil")
    s3_secret_key: SecretStr = SecretStr("vigil-secret")
    s3_secure: bool = False
    s3_region: str = "us-east-1"
    # Kept-alive connections to S3. minio's own default (10) is below the worker threads a service runs
    # S3 calls on (ingest: 16), and every call beyond the pool opened and closed a connection of its own.
    s3_connections: int = Field(default=32, ge=1, le=1024)
    auth_issuer: str = "vigil"
    # PEM-encoded Ed25519 public keys of the token issuers this service trusts.
    auth_public_keys: list[str] = Field(default_factory=list)
    # Path to a file of concatenated PEM public keys (read at start), an alternative to the list.
    auth_public_keys_file: str | None = None
    # This service's own bearer token, used when it calls other services.
    service_token: SecretStr = SecretStr("")
    log_level: str = "INFO"
    # How often readiness probes its dependencies, and how long one probe may take.
    readiness_interval_s: float = Field(default=1.0, gt=0)
    readiness_timeout_s: float = Field(default=2.0, gt=0)
    # Other services' gRPC addresses (host:port), for calls and fallbacks.
    registry_addr: str = "127.0.0.1:50051"
    ingest_addr: str = "127.0.0.1:50052"
    archive_addr: str = "127.0.0.1:50053"
    sharing_addr: str = "127.0.0.1:50054"
    audit_addr: str = "127.0.0.1:50055"
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    # How long a thread runs Python before it must let a waiting one have the GIL (CPython's default is 5
    # ms). A call crosses threads several times (the gRPC poller hands each completion to the event loop,
    # the SQLite driver's thread hands back each result), and each crossing into a busy loop waited up to
    # that long: at 1,000 WhoAmI calls/s on one sharing process, p50 6.7 ms and p99 87 ms at 5 ms; 2.0 ms
    # and 22.6 ms at 1 ms (bench, same machine, back to back).
    gil_switch_interval_ms: float = Field(
        default=1.0,
        gt=0,
        le=100,
        description="The service process's GIL switch interval (sys.setswitchinterval), in milliseconds",
    )

    # The asyncio event loop the process runs on. uvloop (libuv's loop, in C) spends less CPU per wake-up,
    # socket read and timer than the standard library's loop, and a service is mostly those: on this
    # machine, at 1,000 Authorize/s over two sharing replicas, service CPU 103-109 % -> 91-93 % of a core
    # and p99 12.9/16.2 ms -> 7.6/7.5 ms; ingest 4.5 -> 4.0 ms of CPU per segment (bench, back to back).
    # "asyncio" keeps the standard library's loop.
    event_loop: Literal["uvloop", "asyncio"] = Field(
        default="uvloop",
        description="The event loop the service runs on: uvloop, or asyncio (the standard one)",
    )

    @model_validator(mode="after")
    def _kafka_credentials(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_username and self.kafka_password.get_secret_value()
        ):
            raise ValueError(
                f"kafka_username and kafka_password are required with kafka_security_protocol "
                f"{self.kafka_security_protocol}"
            )
        return self
