"""Chain of custody (G8): every read of audit data by the tools is itself an audit event.

:func:`record_access` emits one AuditEvent (``event_type`` ``audit.access``, action the
tool's name: replay, search, export, report, dlq) naming the operator and the count
returned, through :class:`sealtrail.producers.AuditClient`. When no stack is configured or
the broker does not take the event, it says so plainly; it never raises.

The query itself is not recorded: an auditor's query often names the data subject
(``actor:ada@example.com``), and a custody event is sealed into WORM storage, where a
later ``forget`` could not reach it. The event holds a random **query id** (printed to
the operator, who can keep it with the case), a **keyed hash** of the query (HMAC-SHA-256
under the pseudonymisation key, ``hmac:<key id>:<hex>``: whoever holds the key and the
query text can show that this was the query, nobody else can guess it) and the **names**
of the query's terms (``actor,since,text``), never their values.

With the setting ``custody_required``, :func:`require_access` raises
:class:`CustodyNotRecordedError` when the event cannot be recorded, and the tools call it
*before* they hand anything out (print, write a file): no custody, no data.
"""

from __future__ import annotations

import getpass
import re
import uuid
from dataclasses import dataclass

from sealtrail.config import Settings
from sealtrail.core.disclosure import mask_urls_in
from sealtrail.errors import ConfigError

__all__ = ["CustodyNotRecordedError", "CustodyResult", "operator_name", "query_digest",
           "query_terms", "record_access", "require_access"]

SERVICE = "sealtrail-tools"
_TERM = re.compile(r"^([A-Za-z_]+)[:=]")


class CustodyNotRecordedError(ConfigError):
    """``custody_required`` is set and the chain-of-custody event could not be recorded;
    the tool handed nothing out."""


def operator_name(settings: Settings, explicit: str | None = None) -> str:
    """Who runs a tool, the one name every tool records (custody events, hold manifests and
    their audit events, export manifests, reports, erasure receipts): ``--operator``, else
    the ``operator`` setting (``SEALTRAIL_OPERATOR``), else the login name."""
    if explicit:
        return explicit
    if settings.operator:
        return settings.operator
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"


@dataclass(frozen=True)
class CustodyResult:
    recorded: bool
    message: str
    event_id: str | None = None
    query_id: str = ""


def query_terms(query: str) -> str:
    """The names of a query's terms, sorted and deduplicated, ``text`` for free words:
    ``actor:ada since:2026-01-01 login`` -> ``actor,since,text``. No values."""
    names = set()
    for token in query.split():
        m = _TERM.match(token)
        names.add(m.group(1).lower() if m else "text")
    return ",".join(sorted(names))


def query_digest(settings: Settings, query: str) -> str:
    """``hmac:<key id>:<hex>`` of ``query`` under the pseudonymisation key, or ``""`` when
    this process cannot read that key (then the event holds only the query id and terms:
    an unkeyed hash of a query naming a person could be reversed by guessing)."""
    from sealtrail.core.redaction import HmacPseudonymizer
    from sealtrail.errors import SealtrailError
    from sealtrail.keys import load_hmac_key

    try:
        secret, key_id = load_hmac_key(settings.keys)
    except (SealtrailError, OSError):
        return ""
    return HmacPseudonymizer(secret, key_id).pseudonym(query)


def record_access(
    settings: Settings, *, tool: str, operator: str, query: str, count: int | None,
    outcome: str = "SUCCESS", timeout: float = 10.0,
) -> CustodyResult:
    """Emit the access event; a result saying whether it was delivered and, if not, why.
    ``count`` None means not known yet (recorded before the tool starts)."""
    from sealtrail.errors import SealtrailError
    from sealtrail.producers import AuditClient

    query_id = uuid.uuid4().hex[:16]
    attributes = {"tool": tool, "count": "pending" if count is None else str(count),
                  "query_id": query_id, "query_terms": query_terms(query)}
    digest = query_digest(settings, query)
    if digest:
        attributes["query_hmac"] = digest
    returned = "not yet counted" if count is None else f"{count} returned"
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
                                 "is sent by the next tool run" if spool else ""),
                                 query_id=query_id)
        return CustodyResult(True, f"chain of custody: {tool} by {operator} recorded as event "
                             f"{event_id} (query id {query_id})", event_id, query_id)
    except SealtrailError as exc:
        return CustodyResult(False, f"chain of custody NOT recorded ({tool} by {operator}, "
                             f"{returned}): {mask_urls_in(str(exc))}", query_id=query_id)
    except Exception as exc:  # the tool's result stands; say why custody failed
        return CustodyResult(False, "chain of custody NOT recorded: "
                             f"{type(exc).__name__}: {mask_urls_in(str(exc))}",
                             query_id=query_id)


def require_access(
    settings: Settings, *, tool: str, operator: str, query: str, count: int | None,
    outcome: str = "SUCCESS", timeout: float = 10.0,
) -> CustodyResult:
    """:func:`record_access`, raising :class:`CustodyNotRecordedError` when the event was
    not recorded and ``settings.custody_required`` is set. Call it before output."""
    result = record_access(settings, tool=tool, operator=operator, query=query, count=count,
                           outcome=outcome, timeout=timeout)
    if settings.custody_required and not result.recorded:
        raise CustodyNotRecordedError(
            f"{result.message}; custody_required is set, so nothing was handed out. Make "
            "the broker reachable (or unset custody_required) and run the command again")
    return result
