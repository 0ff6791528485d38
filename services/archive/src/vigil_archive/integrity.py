"""Integrity (ARC-4): VerifySegments, GetSegmentProof, device-day roots, the scrubber, reconciliation."""

from __future__ import annotations

from vigil_archive.api import ArchiveBase


class Integrity(ArchiveBase):
    """The servicer's integrity part."""
