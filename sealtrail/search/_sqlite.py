"""SQLite search index with FTS5: one file, the embedded default."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sealtrail.durable import private_opener
from sealtrail.errors import ConfigError
from sealtrail.search import COLUMNS, Coverage, IndexRow, SearchQuery

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    chain_id TEXT NOT NULL, seq INTEGER NOT NULL, segment INTEGER,
    occurred_at INTEGER NOT NULL, ingested_at INTEGER NOT NULL,
    event_id TEXT NOT NULL, event_type TEXT NOT NULL, action TEXT NOT NULL,
    actor TEXT NOT NULL, resource_type TEXT NOT NULL, resource_id TEXT NOT NULL,
    outcome TEXT NOT NULL, service TEXT NOT NULL, tenant TEXT, trace_id TEXT,
    request_id TEXT, body TEXT NOT NULL,
    UNIQUE (chain_id, seq)
);
CREATE INDEX IF NOT EXISTS events_time ON events (occurred_at);
CREATE INDEX IF NOT EXISTS events_actor ON events (actor, occurred_at);
CREATE INDEX IF NOT EXISTS events_action ON events (action, occurred_at);
CREATE INDEX IF NOT EXISTS events_type ON events (event_type, occurred_at);
CREATE INDEX IF NOT EXISTS events_service ON events (service, occurred_at);
CREATE INDEX IF NOT EXISTS events_tenant ON events (tenant, occurred_at);
CREATE INDEX IF NOT EXISTS events_resource ON events (resource_id);
CREATE INDEX IF NOT EXISTS events_trace ON events (trace_id);
CREATE INDEX IF NOT EXISTS events_request ON events (request_id);
CREATE INDEX IF NOT EXISTS events_event ON events (event_id);
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5 (
    body, content='events', content_rowid='rowid', tokenize='unicode61 tokenchars ''-_.@|'''
);
CREATE TRIGGER IF NOT EXISTS events_ai AFTER INSERT ON events BEGIN
    INSERT INTO events_fts (rowid, body) VALUES (new.rowid, new.body);
END;
"""

_INSERT = (f"INSERT OR IGNORE INTO events ({', '.join(COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in COLUMNS)})")
_FILL_SEGMENT = ("UPDATE events SET segment = ? WHERE chain_id = ? AND seq = ? "
                 "AND segment IS NULL")


#: Filters that leave few rows: with one of them, free text is checked row by row.
_SELECTIVE = frozenset({"actor", "resource_id", "trace_id", "request_id", "event_id"})


def _fts_phrase(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


class SqliteIndex:
    """The index in one SQLite file (WAL mode; readers do not block the indexer)."""

    def __init__(self, path: str) -> None:
        self.url = f"sqlite://{path}"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # 0600 before SQLite opens it: the index holds audit data, and SQLite gives
            # its -wal and -shm files the database file's mode.
            with contextlib.suppress(OSError):
                os.close(private_opener(path, os.O_RDWR | os.O_CREAT))
        try:
            self._db = sqlite3.connect(path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the SQLite index {path}: {exc}") from None

    def add(self, rows: Iterable[IndexRow]) -> int:
        rows = list(rows)
        with self._db:
            # rowcount of executemany: rows inserted (trigger changes not counted)
            added = self._db.executemany(
                _INSERT, [tuple(getattr(r, c) for c in COLUMNS) for r in rows]).rowcount
            known = [(r.segment, r.chain_id, r.seq) for r in rows if r.segment is not None]
            if known and added < len(rows):
                self._db.executemany(_FILL_SEGMENT, known)
        return max(added, 0)

    def search(self, query: SearchQuery) -> list[IndexRow]:
        where: list[str] = []
        params: list[Any] = []
        for column, values in query.filters:
            where.append(f"{column} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        if query.since is not None:
            where.append("occurred_at >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("occurred_at < ?")
            params.append(query.until)
        if query.words:
            if any(column in _SELECTIVE for column, _ in query.filters):
                # few candidate rows: check each against the full-text index
                where.append("EXISTS (SELECT 1 FROM events_fts WHERE events_fts MATCH ? "
                             "AND events_fts.rowid = events.rowid)")
            else:  # the words select: take their rows from the full-text index
                where.append("rowid IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)")
            params.append(" ".join(_fts_phrase(w) for w in query.words))
        sql = (f"SELECT {', '.join(COLUMNS)} FROM events"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY occurred_at, chain_id, seq LIMIT ?")
        params.append(query.limit)
        return [IndexRow(*row) for row in self._db.execute(sql, params)]

    def coverage(self) -> Coverage:
        count, first, last = self._db.execute(
            "SELECT count(*), min(occurred_at), max(occurred_at) FROM events").fetchone()
        chains = self._db.execute(
            "SELECT count(*) FROM (SELECT DISTINCT chain_id FROM events)").fetchone()[0]
        return Coverage(count, first, last, chains)

    def clear(self) -> None:
        with self._db:
            self._db.execute("DELETE FROM events")
            self._db.execute("INSERT INTO events_fts (events_fts) VALUES ('delete-all')")

    def bulk(self) -> SqliteBulk:
        """A faster way to load many rows at once (used by benchmarks and rebuilds)."""
        return SqliteBulk(self._db)

    def close(self) -> None:
        self._db.close()


class SqliteBulk:
    """Context manager: one transaction, synchronous off, for loading many rows."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> SqliteBulk:
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("BEGIN")
        return self

    def add(self, rows: Iterable[IndexRow]) -> None:
        self._db.executemany(_INSERT, [tuple(getattr(r, c) for c in COLUMNS) for r in rows])

    def __exit__(self, *exc: object) -> None:
        self._db.execute("COMMIT" if exc[0] is None else "ROLLBACK")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("ANALYZE")
