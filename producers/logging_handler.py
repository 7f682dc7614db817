"""A logging.Handler that turns audit log lines into audit events.

Only records that carry an ``audit`` mapping (``extra={"audit": {...}}``) become events;
other log records pass untouched. The mapping holds the keywords of
:meth:`AuditClient.emit` (``event_type`` and ``action`` included); the formatted log
message is kept as the ``message`` attribute.

    logger.addHandler(AuditLogHandler(client))
    logger.info("invoice %s voided", inv, extra={"audit": {
        "event_type": "invoice.void", "action": "void",
        "resource_type": "invoice", "resource_id": inv}})

A record that cannot be emitted (invalid fields, full spool) goes through
``Handler.handleError`` (logged to stderr by the logging module) and the client's
``rejected`` metric: never dropped without a trace.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sealtrail.producers.client import AuditClient

__all__ = ["AuditLogHandler"]

MAX_MESSAGE = 1000


class AuditLogHandler(logging.Handler):
    """Emit an audit event for each log record with an ``audit`` mapping."""

    def __init__(self, client: AuditClient, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.client = client

    def emit(self, record: logging.LogRecord) -> None:
        audit = getattr(record, "audit", None)
        if not isinstance(audit, Mapping):
            return
        try:
            fields: dict[str, Any] = dict(audit)
            event_type = fields.pop("event_type")
            action = fields.pop("action")
            attributes = dict(fields.pop("attributes", None) or {})
            attributes.setdefault("message", record.getMessage()[:MAX_MESSAGE])
            attributes.setdefault("logger", record.name)
            if record.levelno >= logging.ERROR and "outcome" not in fields:
                fields["outcome"] = "ERROR"
            self.client.emit(event_type, action, attributes=attributes, **fields)
        except Exception:
            self.handleError(record)
