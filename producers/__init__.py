"""The producer client services import: ``from sealtrail.producers import AuditClient``."""

from sealtrail.producers.client import AuditClient, EmitBackpressureError

__all__ = ["AuditClient", "EmitBackpressureError"]
