"""The sharing service's settings: every SHARING_* environment variable, validated at start."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from vigil_kit.settings import ServiceSettings
from vigil_sharing.domain.model import SharingPolicy

# The demo principals' facts (libs/cli data/principals.json ids): the officer may see unmasked video
# and is cleared for secret-related devices; everyone else keeps the defaults (masked, not cleared).
DEMO_PRINCIPAL_FACTS: dict[str, dict[str, object]] = {
    "user:officer": {"unmask_right": True, "secret_clearance": True},
}


class Settings(ServiceSettings):
    """Sharing settings; `SHARING_GRPC_PORT` sets grpc_port, and so on for every field."""

    model_config = SettingsConfigDict(env_prefix="SHARING_")

    service_name: str = "sharing"
    grpc_port: int = Field(default=50054, ge=0, le=65535)
    metrics_port: int = Field(default=9464, ge=0, le=65535, description="0 disables /metrics")
    database_url: str = "sqlite+aiosqlite:///vigil-sharing.db"

    # --- the rules' per-city knobs (SharingPolicy) ---
    max_validity_days: float = Field(default=90, gt=0, description="ACC-3: the longest a grant may be valid")
    external_retrieval_rule: bool = Field(
        default=True, description="ACC-4: an export by a non-owning unit needs a document and officers"
    )
    external_retrieval_min_officers: int = Field(
        default=2, ge=0, description="ACC-4: officers (with work ids) an external retrieval needs"
    )
    auto_approve_officer_live_view: bool = Field(
        default=True, description="Public security officers' live view of public places is auto-approved"
    )
    auto_approve_max_hours: float = Field(
        default=24, gt=0, description="The longest validity an automatic approval gives"
    )
    sensitive_categories: list[str] = Field(
        default_factory=lambda: sorted(SharingPolicy().sensitive_categories),
        description="Place categories whose exports need sensitive_export_approvals approvers (JSON list)",
    )
    sensitive_export_approvals: int = Field(default=2, ge=1, description="Approvers a sensitive export needs")
    police_default_actions: list[str] = Field(
        default_factory=list,
        description="ACC-7: actions officers get without a grant on government-funded devices (JSON list)",
    )

    # --- principals' facts seeded at start where none are recorded yet ---
    principal_facts: dict[str, dict[str, object]] = Field(
        default_factory=lambda: dict(DEMO_PRINCIPAL_FACTS),
        description="Seed: principal id → {unmask_right, secret_clearance} (JSON object); existing records win",
    )

    # --- timing ---
    registry_timeout_s: float = Field(
        default=2.0, gt=0, description="Deadline of a registry GetDevice call on a device-cache miss"
    )
    authorize_commit_thread: bool = Field(
        default=True,
        description="On a SQLite file, commit Authorize's audit batches whole in one worker thread (cheaper "
        "than the async driver's per-statement hand-offs); false uses the async engine",
    )
    authorize_publish_direct: bool = Field(
        default=True,
        description="Publish Authorize's audit records straight to the broker, the acknowledgement being their "
        "commit (the outbox takes them when the broker does not answer in time); false: always the outbox",
    )
    authorize_publish_timeout_s: float = Field(
        default=0.5,
        gt=0,
        le=10,
        description="How long Authorize waits for the broker to acknowledge its audit records before it "
        "commits them to the outbox instead",
    )
    unknown_device_ttl_s: float = Field(
        default=1.0,
        ge=0,
        description="How long a device the registry does not know stays unknown without asking again (0: ask "
        "every time); its registry event ends it sooner",
    )
    expiry_interval_s: float = Field(
        default=0.5, gt=0, le=60, description="How often the expiry worker looks for lapsed grants"
    )
    index_refresh_s: float = Field(
        default=30.0,
        gt=0,
        description="Check of the in-memory grant index against the database (changed requests only)",
    )
    authorize_batch_max: int = Field(
        default=500, ge=1, description="Authorize decisions whose audit records commit together at most"
    )

    # --- partner subscriptions ---
    partner_refresh_s: float = Field(
        default=1.0, gt=0, description="How often the fan-out re-reads subscriptions other replicas created"
    )
    partner_poll_s: float = Field(
        default=0.2, gt=0, le=1, description="Subscribe's poll: a revoked grant ends a stream within this"
    )
    partner_session_timeout_s: float = Field(
        default=6.0,
        gt=0,
        description="The fan-out group's session timeout: a dead member is replaced after it",
    )

    @model_validator(mode="after")
    def _policy_is_valid(self) -> Settings:
        # A bad knob stops the service with one line rather than silently weakening a rule.
        self.policy()
        return self

    def policy(self) -> SharingPolicy:
        """The domain policy these settings describe (ValueError naming the bad knob)."""
        return SharingPolicy(
            max_validity=timedelta(days=self.max_validity_days),
            external_retrieval_rule=self.external_retrieval_rule,
            external_retrieval_min_officers=self.external_retrieval_min_officers,
            auto_approve_officer_live_view=self.auto_approve_officer_live_view,
            auto_approve_max_validity=timedelta(hours=self.auto_approve_max_hours),
            sensitive_categories=frozenset(self.sensitive_categories),
            sensitive_export_approvals=self.sensitive_export_approvals,
            police_default_actions=frozenset(self.police_default_actions),  # type: ignore[arg-type]
        )
