"""Retention and legal holds (ARC-2, ARC-3, ARC-6): DeleteSegment, PlaceHold, ReleaseHold, ListHolds."""

from __future__ import annotations

from vigil_archive.api import ArchiveBase


class Holds(ArchiveBase):
    """The servicer's retention part."""
