"""The archive's pure domain: the segment index's values, retention and holds, coverage, integrity, reconciliation.

No gRPC, protobuf, SQL, Kafka or object-store imports: the service reads the index and storage and
feeds these functions; refusals are vigil_kit errors carrying the rule id (ARC-1..ARC-6). Modules:
model (SegmentRef, Hold, Gap, Coverage, ObjectVersion), coverage (ARC-5, streaming), retention
(ARC-2 deletion refusals, ARC-3 expiry selection and delete batches, holds, ARC-6 extension),
integrity (ARC-4 findings, the scrubber's plan), reconcile (index vs storage merge).
"""

from .coverage import CoverageScan, check_range, coverage
from .integrity import (
    Observation,
    ScrubCursor,
    ScrubPolicy,
    ScrubTick,
    Violation,
    ViolationKind,
    advance,
    classify,
    plan_tick,
    within_budget,
)
from .model import Coverage, Gap, Hold, ObjectVersion, SegmentRef
from .reconcile import Discrepancy, DiscrepancyKind, MergeStats, Reconciliation, diff_listings, reconcile
from .retention import (
    IMPORTANT_RETENTION,
    S3_MAX_DELETE_KEYS,
    DeleteBatch,
    DeleteDecision,
    ExpirySelection,
    Extension,
    active_holds_covering,
    held_by,
    important_retain_until,
    may_delete,
    new_hold,
    plan_delete_batches,
    plan_extensions,
    release_hold,
    select_expired,
)

__all__ = [
    "IMPORTANT_RETENTION",
    "S3_MAX_DELETE_KEYS",
    "Coverage",
    "CoverageScan",
    "DeleteBatch",
    "DeleteDecision",
    "Discrepancy",
    "DiscrepancyKind",
    "ExpirySelection",
    "Extension",
    "Gap",
    "Hold",
    "MergeStats",
    "ObjectVersion",
    "Observation",
    "Reconciliation",
    "ScrubCursor",
    "ScrubPolicy",
    "ScrubTick",
    "SegmentRef",
    "Violation",
    "ViolationKind",
    "active_holds_covering",
    "advance",
    "check_range",
    "classify",
    "coverage",
    "diff_listings",
    "held_by",
    "important_retain_until",
    "may_delete",
    "new_hold",
    "plan_delete_batches",
    "plan_extensions",
    "plan_tick",
    "reconcile",
    "release_hold",
    "select_expired",
    "within_budget",
]
