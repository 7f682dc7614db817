"""Chain of custody (G8): every read of audit data by the tools is itself an audit event.

:func:`record_access` emits one AuditEvent (``event_type`` ``audit.access``, action the
tool's name: replay, search, export, report) naming the operator, the query and the
count returned, through :class:`sealtrail.producers.AuditClient`. When no stack is
configured or the broker does not take the event, it says so plainly; it never raises.
"""

from __future__ import annotations

import getpass
import hashlib
import os
from dataclasses import dataclass

from sealtrail.config import Settings

__all__ = ["CustodyResult", "operator_name", "record_access"]

SERVICE = "sealtrail-tools"


def operator_name(explicit: str | None = None) -> str:
    """Who runs the tool: ``--operator``, ``SEALTRAIL_OPERATOR`` or the login name."""
    if explicit:
        return explicit
    try:
        return os.environ.get("SEALTRAIL_OPERATOR") or getpass.getuser()
    except Exception:
        return "unknown"


@dataclass(frozen=True)
class CustodyResult:
    recorded: bool
    message: str
    event_id: str | None = None


def record_access(
    settings: Settings, *, tool: str, operator: str, query: str, count: int,
    outcome: str = "SUCCESS", detail: dict[str, str] | None = None, timeout: float = 10.0,
) -> CustodyResult:
    """Emit the access event; a result saying whether it was delivered and, if not, why."""
    from sealtrail.errors import SealtrailError
    from sealtrail.producers import AuditClient

    query_id = hashlib.sha256(query.encode("utf-8")).hexdigest()[:16]
    attributes = {"query": query[:2000], "count": str(count), "tool": tool, **(detail or {})}
    try:
        with AuditClient.from_settings(
            settings, service=SERVICE,
            producer_config={"message.timeout.ms": int(timeout * 1000)},
        ) as client:
            event_id = client.emit(
                "audit.access", tool, actor_id=operator, actor_type="user",
                principal=operator, resource_type="audit-query", resource_id=query_id,
                outcome=outcome, attributes=attributes, classification="CONFIDENTIAL",
            )
            remaining = client.flush(timeout)
        if remaining:
            spool = getattr(client, "spool_dir", None)
            return CustodyResult(False, f"chain of custody NOT yet recorded: the broker did "
                                 f"not take the {tool} access event {event_id} within "
                                 f"{timeout:.0f} s" + (f"; it waits in the spool {spool} and "
                                 "is sent by the next tool run" if spool else ""))
        return CustodyResult(True, f"chain of custody: {tool} by {operator} recorded as event "
                             f"{event_id}", event_id)
    except SealtrailError as exc:
        return CustodyResult(False, f"chain of custody NOT recorded ({tool} by {operator}, "
                             f"{count} returned): {exc}")
    except Exception as exc:  # the tool's result stands; say why custody failed
        return CustodyResult(False, f"chain of custody NOT recorded: {type(exc).__name__}: {exc}")
