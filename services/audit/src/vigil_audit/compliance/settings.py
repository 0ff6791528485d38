"""The compliance report's thresholds: every AUDIT_COMPLIANCE_* environment variable, validated at start."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from vigil_audit.compliance.rules import Thresholds


class ComplianceSettings(BaseSettings):
    """AUD-3 thresholds (several are one city's choices, so none is hard-coded)."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_COMPLIANCE_")

    night_start_hour: int = Field(default=22, ge=0, le=23, description="Local hour night-time access starts")
    night_end_hour: int = Field(default=6, ge=0, le=23, description="Local hour night-time access ends")
    utc_offset_hours: float = Field(default=8.0, ge=-14, le=14, description="The city's offset from UTC")
    bulk_export_segments: int = Field(
        default=900, ge=1, description="An export of this many segments is bulk"
    )
    bulk_export_footage_s: float = Field(
        default=1800.0, gt=0, description="An export covering this many seconds of footage is bulk"
    )
    many_devices: int = Field(
        default=50, ge=1, description="A principal viewing more distinct devices than this is a finding"
    )
    outage_limit_s: float = Field(
        default=3 * 86400.0, gt=0, description="REG-11: an outage longer than this is non-compliant"
    )
    expiry_grace_s: float = Field(
        default=86400.0,
        ge=0,
        description="ARC-3: footage this long past its retention counts as kept too long",
    )
    max_evidence: int = Field(default=20, ge=1, le=1000, description="Evidence record ids cited per finding")
    max_items: int = Field(
        default=1000, ge=1, le=10000, description="Items asked of the registry's summary per section"
    )
    coverage_concurrency: int = Field(default=16, ge=1, le=256, description="GetCoverage calls at once")
    access_buckets: int = Field(default=24, ge=1, le=366, description="Time buckets of the access chart")
    call_timeout_s: float = Field(default=30.0, gt=0, description="Deadline of each registry/archive call")

    @model_validator(mode="after")
    def _night_is_a_window(self) -> ComplianceSettings:
        if self.night_start_hour == self.night_end_hour:
            raise ValueError("night_start_hour and night_end_hour must differ")
        return self

    def thresholds(self) -> Thresholds:
        return Thresholds(
            night_start_hour=self.night_start_hour,
            night_end_hour=self.night_end_hour,
            utc_offset_s=int(self.utc_offset_hours * 3600),
            bulk_export_segments=self.bulk_export_segments,
            bulk_export_footage_us=int(self.bulk_export_footage_s * 1_000_000),
            many_devices=self.many_devices,
            outage_limit_us=int(self.outage_limit_s * 1_000_000),
            expiry_grace_us=int(self.expiry_grace_s * 1_000_000),
            max_evidence=self.max_evidence,
            access_buckets=self.access_buckets,
        )
