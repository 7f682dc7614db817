"""The search index: who did what, when, where, on what, and where the evidence lives.

One row per sealed event (rejections are not indexed): time (occurred_at, ingested_at),
event type, actor, action, resource, outcome, service, tenant, trace and request ids,
free text, and the event's place in the archive (chain, seq, segment index).

Two backends implement :class:`IndexBackend`: SQLite with FTS5 (the embedded default, a
file) and PostgreSQL (production; ``postgresql://...``), chosen by :func:`open_index`.
The index is a convenience, not evidence: export proves every event it returns against
the archive's signed checkpoints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from sealtrail.search._query import FIELDS, SearchQuery, parse_query
from sealtrail.search._words import counted

__all__ = [
    "FIELDS",
    "Coverage",
    "IndexBackend",
    "IndexRow",
    "SearchQuery",
    "counted",
    "open_index",
    "parse_query",
    "row_from_record",
    "row_values",
]


class IndexRow(NamedTuple):
    """What the index keeps of one sealed event (a tuple in :data:`COLUMNS` order, which
    is what the backends insert)."""

    chain_id: str
    seq: int
    segment: int | None
    occurred_at: int
    ingested_at: int
    event_id: str
    event_type: str
    action: str
    actor: str
    resource_type: str
    resource_id: str
    outcome: str
    service: str
    tenant: str | None
    trace_id: str | None
    request_id: str | None
    body: str

    def to_json(self) -> dict[str, Any]:
        doc = self._asdict()
        del doc["body"]
        return doc


COLUMNS = IndexRow._fields


def row_from_record(record: Mapping[str, Any], segment: int | None = None) -> IndexRow | None:
    """The index row of a sealed record; None for a rejection."""
    values = row_values(record, segment)
    return None if values is None else IndexRow(*values)


def row_values(record: Mapping[str, Any], segment: int | None = None
               ) -> tuple[Any, ...] | None:
    """:func:`row_from_record` as a plain tuple in :data:`COLUMNS` order (what a bulk load
    inserts, without building an IndexRow); None for a rejection."""
    event = record.get("event")
    if event is None:
        return None
    origin, actor, resource = event["origin"], event["actor"], event["resource"]
    words = [event["event_type"], event["action"], actor["id"], actor.get("principal") or "",
             resource["type"], resource["id"], event["outcome"], event.get("reason") or "",
             origin["service"], origin.get("instance") or "", event.get("tenant") or ""]
    attributes = event.get("attributes")
    if attributes:
        words += [f"{k} {v}" for k, v in sorted(attributes.items())]
    auth = event.get("authorization")
    if auth:
        words += [auth.get("decision") or "", auth.get("policy") or "",
                  *auth.get("permissions", [])]
    return (record["chain_id"], record["seq"], segment, event["occurred_at"],
            record["ingested_at"], event["event_id"], event["event_type"], event["action"],
            actor["id"], resource["type"], resource["id"], event["outcome"], origin["service"],
            event.get("tenant"), origin.get("trace_id"), origin.get("request_id"),
            " ".join(w for w in words if w))


@dataclass(frozen=True)
class Coverage:
    """What the index holds: how many events and the occurred_at range they span."""

    events: int
    first: int | None
    last: int | None
    chains: int

    def describe(self, since: int | None, until: int | None) -> str:
        """Which part of [since, until) the index covers, in words."""
        from sealtrail.core.times import format_time

        if not self.events or self.first is None or self.last is None:
            return "the index is empty: run `sealtrail index rebuild` or the indexer"
        held = (f"the index holds {counted(self.events, 'event')} of "
                f"{counted(self.chains, 'chain')}, occurred "
                f"{format_time(self.first)} .. {format_time(self.last)}")
        lo = self.first if since is None else max(since, self.first)
        hi = self.last if until is None else min(until, self.last)
        if (since is not None and since > self.last) or (until is not None and until <= self.first):
            return held + "; none of the asked range is covered"
        missing = []
        if since is not None and since < self.first:
            missing.append(f"before {format_time(self.first)}")
        if until is not None and until > self.last:
            missing.append(f"after {format_time(self.last)}")
        covered = f"; asked range covered {format_time(lo)} .. {format_time(hi)}"
        if missing:
            covered += " (not covered: " + ", ".join(missing) + ")"
        return held + covered


class IndexBackend(Protocol):
    """A search index store. Adding a row that is already there (same chain and seq) is a
    no-op, except that a known segment fills one that was unknown."""

    url: str

    def add(self, rows: Iterable[IndexRow]) -> int:
        """Index ``rows``; returns how many were new."""
        ...

    def search(self, query: SearchQuery) -> list[IndexRow]:
        """Matching rows, ordered by occurred_at, chain, seq; at most ``query.limit``."""
        ...

    def coverage(self) -> Coverage: ...

    def clear(self) -> None:
        """Remove every row (before a rebuild)."""
        ...

    def close(self) -> None: ...


def open_index(url: str) -> IndexBackend:
    """``postgresql://...`` (or ``postgres://``) for PostgreSQL, anything else is the path
    of a SQLite file (``sqlite:///path`` accepted)."""
    if url.startswith(("postgresql://", "postgres://")):
        from sealtrail.search._postgres import PostgresIndex

        return PostgresIndex(url)
    from sealtrail.search._sqlite import SqliteIndex

    return SqliteIndex(url.removeprefix("sqlite://"))
