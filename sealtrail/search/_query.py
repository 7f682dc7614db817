"""The search query language: ``key:value`` filters and free-text words.

    actor:u-123 action:delete since:2026-03-01 until:2026-06-01 "card declined"

Keys: actor, action, type (event type), resource (``type/id`` or an id), resource_type,
outcome, service, tenant, trace (trace id), request (request id), event (event id),
chain, since (occurred at or after), until (occurred before). Everything else is free
text, matched as words against the reason, principal, attributes and the other fields.
Values with spaces are quoted. The same key twice means either value (OR). Values match
regardless of case (``actor:Alice`` finds ``alice``; on SQLite for ASCII letters, on
PostgreSQL as its ``lower()`` folds); ``outcome:`` values are the schema's upper-case
symbols.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from sealtrail.errors import ConfigError

__all__ = ["FIELDS", "SearchQuery", "parse_query"]

#: query key -> index column
FIELDS = {
    "actor": "actor", "action": "action", "type": "event_type", "event_type": "event_type",
    "resource_type": "resource_type", "outcome": "outcome", "service": "service",
    "tenant": "tenant", "trace": "trace_id", "trace_id": "trace_id",
    "request": "request_id", "request_id": "request_id", "event": "event_id",
    "event_id": "event_id", "chain": "chain_id",
}


@dataclass(frozen=True)
class SearchQuery:
    """A parsed query: exact filters (column -> accepted values), a time range on
    ``occurred_at`` (since inclusive, until exclusive) and free-text words."""

    text: str
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()
    since: int | None = None
    until: int | None = None
    words: tuple[str, ...] = field(default=())
    limit: int = 1000


def parse_query(text: str, *, limit: int = 1000) -> SearchQuery:
    """Parse ``text``; ConfigError naming what cannot be read."""
    from sealtrail.core.times import parse_time

    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise ConfigError(f"cannot read the query {text!r}: {exc}") from None
    filters: dict[str, list[str]] = {}
    since = until = None
    words: list[str] = []
    for token in tokens:
        key, sep, value = token.partition(":")
        key = key.lower()
        if not sep or (key not in FIELDS and key not in ("since", "until", "resource")):
            words.append(token)
            continue
        if not value:
            raise ConfigError(f"query term {token!r} has no value")
        if key == "since":
            since = parse_time(value)
        elif key == "until":
            until = parse_time(value)
        elif key == "resource":
            rtype, slash, rid = value.partition("/")
            if slash:
                filters.setdefault("resource_type", []).append(rtype)
                filters.setdefault("resource_id", []).append(rid)
            else:
                filters.setdefault("resource_id", []).append(value)
        else:
            column = FIELDS[key]
            filters.setdefault(column, []).append(value.upper() if column == "outcome" else value)
    if since is not None and until is not None and until <= since:
        raise ConfigError("until: must be later than since:")
    if limit < 1:
        raise ConfigError("--limit must be at least 1")
    return SearchQuery(text, tuple((k, tuple(v)) for k, v in sorted(filters.items())),
                       since, until, tuple(words), limit)
