"""The registry service's settings: every REGISTRY_* environment variable, validated at start."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from vigil_kit.settings import ServiceSettings
from vigil_registry.domain.model import ForbiddenPlace, RegistryPolicy


class Settings(ServiceSettings):
    """Registry settings; `REGISTRY_GRPC_PORT` sets grpc_port, and so on for every field."""

    model_config = SettingsConfigDict(env_prefix="REGISTRY_")

    service_name: str = "registry"
    grpc_port: int = Field(default=50051, ge=0, le=65535)
    metrics_port: int = Field(default=9461, ge=0, le=65535, description="0 disables /metrics")
    database_url: str = "sqlite+aiosqlite:///vigil-registry.db"

    # --- the rules' per-city knobs (RegistryPolicy) ---
    jurisdiction_prefixes: list[str] = Field(
        default_factory=lambda: ["3202"],
        description="REG-10: administrative division-code prefixes of the platform's jurisdiction (JSON list)",
    )
    extra_forbidden_places: list[str] = Field(
        default_factory=list,
        description="REG-1: the city's additions to the forbidden list, 'AREA_TYPE_X' or "
        "'AREA_TYPE_X@PLACE_CATEGORY_Y' (JSON list)",
    )
    retention_profiles_days: dict[str, float] = Field(
        default_factory=lambda: {"standard": 30, "extended": 90, "important": 730, "short": 7},
        description="ARC-1: retention profiles, name → days (fractions allowed; under 30 only outside "
        "mandatory places) (JSON object)",
    )
    default_retention_profile: str = Field(
        default="standard", description="ARC-1: the profile of a device that names none"
    )
    keepalive_interval_s: float = Field(default=60.0, description="REG-11: default keepalive interval")
    keepalive_timeout_count: int = Field(
        default=3, description="REG-11: default missed keepalives to OFFLINE"
    )
    outage_limit_days: float = Field(
        default=3.0, gt=0, description="REG-11: an outage longer than this is non-compliant"
    )
    position_tolerance_m: float = Field(
        default=5.0, ge=0, description="REG-12: reported position drift that is not a move"
    )
    direction_tolerance_deg: float = Field(
        default=2.0, ge=0, description="REG-12: reported direction drift that is not a re-aim"
    )

    # --- keepalive throughput and offline detection ---
    keepalive_batch_window_s: float = Field(
        default=0.1,
        gt=0,
        le=5,
        description="StreamKeepalives group-commits what arrived within this window (a crash loses at most "
        "the open window, which no gateway has been told was accepted)",
    )
    keepalive_batch_max: int = Field(
        default=2000, ge=1, description="StreamKeepalives commits at once when this many are waiting"
    )
    offline_check_max_sleep_s: float = Field(
        default=0.2, gt=0, le=1, description="REG-11: longest sleep of the offline detector between checks"
    )

    @model_validator(mode="after")
    def _policy_is_valid(self) -> Settings:
        # A bad knob stops the service with one line rather than silently weakening a rule.
        self.policy()
        return self

    def policy(self) -> RegistryPolicy:
        """The domain policy these settings describe (ValueError naming the bad knob)."""
        return RegistryPolicy(
            jurisdiction_prefixes=tuple(self.jurisdiction_prefixes),
            extra_forbidden=tuple(ForbiddenPlace.parse(p) for p in self.extra_forbidden_places),
            retention_profiles={
                name: timedelta(days=days) for name, days in self.retention_profiles_days.items()
            },
            default_retention_profile=self.default_retention_profile,
            keepalive_interval_s=self.keepalive_interval_s,
            keepalive_timeout_count=self.keepalive_timeout_count,
            outage_limit=timedelta(days=self.outage_limit_days),
            position_tolerance_m=self.position_tolerance_m,
            direction_tolerance_deg=self.direction_tolerance_deg,
        )
