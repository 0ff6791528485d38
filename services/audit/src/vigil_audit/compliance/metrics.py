"""The compliance findings as Prometheus gauges, so alerts (VigilComplianceFindings) fire on them."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Gauge

from vigil_audit.compliance.rules import RULES

FINDINGS = Gauge(
    "vigil_compliance_findings",
    "Findings of each kind in the latest compliance report (AUD-3); kinds are bounded, subjects never labels.",
    ["kind", "rule"],
)
REPORT_SECONDS = Gauge(
    "vigil_compliance_report_seconds", "Time the latest compliance report took to compose."
)


def publish(counts: Mapping[str, int], seconds: float) -> None:
    """Set every kind's gauge (0 for kinds the report did not find), so a cleared finding stops alerting."""
    for kind, rule in RULES.items():
        FINDINGS.labels(kind=kind, rule=rule).set(counts.get(kind, 0))
    REPORT_SECONDS.set(seconds)
