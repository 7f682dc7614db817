"""Sink consumers of the sealed topic: the archiver."""

from sealtrail.consumers.archiver import Archiver, SegmentWriter

__all__ = ["Archiver", "SegmentWriter"]
