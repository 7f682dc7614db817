"""The producer client services import: ``from sealtrail.producers import AuditClient``.

See docs/producer.md ("Instrument your service")."""

from sealtrail.producers.aio import AsyncAuditClient
from sealtrail.producers.client import AuditClient
from sealtrail.producers.context import bind, set_actor
from sealtrail.producers.errors import ClientClosedError, EmitBackpressureError, SpoolFullError
from sealtrail.producers.instrument import EventBuilder, audited
from sealtrail.producers.logging_handler import AuditLogHandler
from sealtrail.producers.middleware import ASGIAuditMiddleware, WSGIAuditMiddleware

__all__ = [
    "ASGIAuditMiddleware",
    "AsyncAuditClient",
    "AuditClient",
    "AuditLogHandler",
    "ClientClosedError",
    "EmitBackpressureError",
    "EventBuilder",
    "SpoolFullError",
    "WSGIAuditMiddleware",
    "audited",
    "bind",
    "set_actor",
]
