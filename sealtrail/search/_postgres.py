"""PostgreSQL search index (production): the same rows, a GIN index over a tsvector."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sealtrail.core.disclosure import mask_url, mask_urls_in
from sealtrail.errors import ConfigError, TransportError
from sealtrail.search import COLUMNS, Coverage, IndexRow, SearchQuery

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sealtrail_events (
    chain_id TEXT NOT NULL, seq BIGINT NOT NULL, segment BIGINT,
    occurred_at BIGINT NOT NULL, ingested_at BIGINT NOT NULL,
    event_id TEXT NOT NULL, event_type TEXT NOT NULL, action TEXT NOT NULL,
    actor TEXT NOT NULL, resource_type TEXT NOT NULL, resource_id TEXT NOT NULL,
    outcome TEXT NOT NULL, service TEXT NOT NULL, tenant TEXT, trace_id TEXT,
    request_id TEXT, body TEXT NOT NULL,
    tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,
    PRIMARY KEY (chain_id, seq)
);
CREATE INDEX IF NOT EXISTS sealtrail_events_time ON sealtrail_events (occurred_at);
CREATE INDEX IF NOT EXISTS sealtrail_events_tsv ON sealtrail_events USING GIN (tsv);
"""
# Filters match regardless of case (lower() on both sides), served by indexes on lower(...);
# the case-sensitive indexes of earlier versions (the same names without _ci) are dropped.
_FILTER_INDEXES = {
    "actor": "lower(actor), occurred_at", "action": "lower(action), occurred_at",
    "type": "lower(event_type), occurred_at", "service": "lower(service), occurred_at",
    "tenant": "lower(tenant), occurred_at", "resource": "lower(resource_id)",
    "trace": "lower(trace_id)", "request": "lower(request_id)", "event": "lower(event_id)",
}
_SCHEMA += "".join(
    f"DROP INDEX IF EXISTS sealtrail_events_{name};\n"
    f"CREATE INDEX IF NOT EXISTS sealtrail_events_{name}_ci ON sealtrail_events ({columns});\n"
    for name, columns in _FILTER_INDEXES.items())
_MATCH = "lower({column}) = ANY(ARRAY(SELECT lower(v) FROM unnest(%s::text[]) v))"

_INSERT = (f"INSERT INTO sealtrail_events ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('%s' for _ in COLUMNS)}) "
           "ON CONFLICT (chain_id, seq) DO UPDATE SET segment = "
           "COALESCE(sealtrail_events.segment, EXCLUDED.segment) "
           "WHERE sealtrail_events.segment IS NULL AND EXCLUDED.segment IS NOT NULL "
           "RETURNING (xmax = 0)")


class PostgresIndex:
    """The index in a PostgreSQL database (table ``sealtrail_events``)."""

    def __init__(self, url: str) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError("the PostgreSQL index needs psycopg: pip install "
                              "'psycopg[binary]'") from None
        self.url = mask_url(url)  # never show a password (userinfo or ?password=)
        try:
            self._db = psycopg.connect(url, autocommit=True)
        except psycopg.OperationalError as exc:
            raise TransportError(f"cannot connect to the PostgreSQL index {self.url}: "
                                 f"{mask_urls_in(str(exc).splitlines()[0])}") from None
        with self._db.transaction():
            self._db.execute(_SCHEMA)

    def add(self, rows: Iterable[IndexRow]) -> int:
        added = 0
        with self._db.transaction(), self._db.cursor() as cur:
            cur.executemany(_INSERT, list(rows), returning=True)
            while True:
                row = cur.fetchone()
                if row is not None and row[0]:
                    added += 1
                if not cur.nextset():
                    break
        return added

    def search(self, query: SearchQuery) -> list[IndexRow]:
        where: list[str] = []
        params: list[Any] = []
        for column, values in query.filters:
            where.append(_MATCH.format(column=column))
            params.append(list(values))
        if query.since is not None:
            where.append("occurred_at >= %s")
            params.append(query.since)
        if query.until is not None:
            where.append("occurred_at < %s")
            params.append(query.until)
        for word in query.words:
            where.append("tsv @@ phraseto_tsquery('simple', %s)")
            params.append(word)
        sql = (f"SELECT {', '.join(COLUMNS)} FROM sealtrail_events"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY occurred_at, chain_id, seq LIMIT %s")
        params.append(query.limit)
        return [IndexRow(*row) for row in self._db.execute(sql, params)]

    def coverage(self) -> Coverage:
        found = self._db.execute(
            "SELECT count(*), min(occurred_at), max(occurred_at), count(DISTINCT chain_id) "
            "FROM sealtrail_events").fetchone()
        assert found is not None
        return Coverage(found[0], found[1], found[2], found[3])

    def clear(self) -> None:
        with self._db.transaction():
            self._db.execute("DELETE FROM sealtrail_events")

    def close(self) -> None:
        self._db.close()
