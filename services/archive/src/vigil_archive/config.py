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
    # Playback and live view (ACC-1, REG-5).
    presign_ttl_s: int = Field(
        default=300, ge=1, le=3600, description="Lifetime of a playlist's presigned segment URLs (seconds)"
    )
    max_playback_window_s: float = Field(
        default=86_400, gt=0, description="Longest footage window one playback manifest may cover"
    )
    live_window_segments: int = Field(default=6, ge=1, le=100, description="Segments in a live playlist")

    # --- retention and holds (ARC-2, ARC-3, ARC-6) ---
    sweep_interval_s: float = Field(
        default=60.0, gt=0, description="Seconds between expiry sweeps (ARC-3); the first runs at start"
    )
    sweep_batch_size: int = Field(
        default=1000, ge=1, le=1000, description="Object versions per S3 multi-object delete and index batch"
    )
    object_lock_probe_s: float = Field(
        default=3.0, gt=0, le=3600, description="Retention of the start-up object-lock probe object, seconds"
    )
    object_lock_clean_interval_s: float = Field(
        default=300.0, gt=0, description="Seconds between removals of expired object-lock probes"
    )
    hold_storage_concurrency: int = Field(
        default=8, ge=1, le=64, description="Parallel S3 legal-hold / retention calls while placing a hold"
    )

    # --- integrity (ARC-4): verification, the scrubber, reconciliation ---
    verify_max_segments: int = Field(
        default=5000,
        ge=1,
        description="Segments one VerifySegments call re-hashes at most (a larger range is refused)",
    )
    verify_max_bytes: int = Field(
        default=4 * 1024**3, ge=1, description="Bytes one VerifySegments call re-hashes at most"
    )
    scrub_interval_s: float = Field(default=30.0, gt=0, description="Seconds between scrubber ticks")
    scrub_per_tick: int = Field(default=50, ge=1, description="Segments one scrubber tick re-checks at most")
    scrub_random_share: float = Field(
        default=0.2, ge=0, le=1, description="Share of a scrubber tick drawn at random from the whole index"
    )
    scrub_max_bytes: int = Field(
        default=64 * 1024**2,
        ge=1,
        description="Bytes one scrubber tick re-hashes at most (one segment always)",
    )
    reconcile_interval_s: float = Field(
        default=600.0, gt=0, description="Seconds between reconciliations of storage with the index"
    )
    reconcile_settle_s: float = Field(
        default=300.0,
        ge=0,
        description="Objects younger than this are not called orphans yet (their SegmentIngested may be in flight)",
    )
    reconcile_max_discrepancies: int = Field(
        default=1000, ge=1, description="Orphans and missing objects one reconciliation run handles at most"
    )
    registry_timeout_s: float = Field(
        default=3.0, gt=0, description="Deadline of a GetDevice call when re-indexing an orphan"
    )

    # --- export and masked renditions (ACC-5, REG-5, ARC-4) ---
    signing_key_file: str | None = Field(
        default=None,
        description=(
            "Ed25519 private key (PKCS#8 PEM) that signs evidence manifests; unset: one is generated at "
            "start and its public key logged (and served by GetExportKey)"
        ),
    )
    export_retention_days: int = Field(
        default=730,
        ge=1,
        description="COMPLIANCE retention of exported clips and manifests (ARC-6's long profile: 2 years)",
    )
    max_export_window_s: float = Field(
        default=3600.0, gt=0, description="Longest footage window one export covers"
    )
    max_export_segments: int = Field(default=2000, ge=1, description="Segments one export joins at most")
    x264_preset: str = Field(
        default="veryfast", description="libx264 preset of masked renditions and re-encoded exports"
    )
    x264_crf: int = Field(default=20, ge=0, le=51, description="libx264 CRF of masked renditions and exports")
    rendition_concurrency: int = Field(
        default=2, ge=1, le=32, description="Masked renditions encoded at once (CPU-bound)"
    )
