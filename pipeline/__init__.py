"""The sealer stage: raw topic -> validate, dedupe, redact, seal -> sealed topic."""

from sealtrail.pipeline.sealer import Sealer

__all__ = ["Sealer"]
