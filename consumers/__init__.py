"""Sink consumers of the sealed topic: the archiver."""

from sealtrail.consumers.archiver import Archiver

__all__ = ["Archiver"]
