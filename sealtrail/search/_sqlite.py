"""SQLite search index with FTS5: one file, the embedded default."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sealtrail.errors import ConfigError
from sealtrail.runtime.durable import private_opener
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
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5 (
    body, content='events', content_rowid='rowid', tokenize='unicode61 tokenchars ''-_.@|'''
);
"""
# Filters match regardless of case (COLLATE NOCASE: ASCII letters), so the indexes that
# serve them compare the same way. Index files made before had them case-sensitive: those
# are made again when the file is opened.
_FILTER_INDEXES = {
    "events_actor": "actor COLLATE NOCASE, occurred_at",
    "events_action": "action COLLATE NOCASE, occurred_at",
    "events_type": "event_type COLLATE NOCASE, occurred_at",
    "events_service": "service COLLATE NOCASE, occurred_at",
    "events_tenant": "tenant COLLATE NOCASE, occurred_at",
    "events_resource": "resource_id COLLATE NOCASE",
    "events_trace": "trace_id COLLATE NOCASE",
    "events_request": "request_id COLLATE NOCASE",
    "events_event": "event_id COLLATE NOCASE",
}


def _filter_indexes(db: sqlite3.Connection) -> None:
    """Create the filter indexes, or make again those an older version made
    case-sensitive."""
    found = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                            "AND tbl_name = 'events'").fetchall())
    for name, columns in _FILTER_INDEXES.items():
        if name in found and "NOCASE" not in (found[name] or ""):
            db.execute(f"DROP INDEX {name}")
        db.execute(f"CREATE INDEX IF NOT EXISTS {name} ON events ({columns})")


# The full-text index is filled once per transaction, for every row it added (rowids grow),
# not by a trigger per row: the trigger cost about 75 us a row, three quarters of an add.
# Index files made before had the trigger; it would index those rows twice.
_NO_TRIGGER = "DROP TRIGGER IF EXISTS events_ai"
_LAST_ROWID = "SELECT coalesce(max(rowid), 0) FROM events"
_FTS_AFTER = "INSERT INTO events_fts (rowid, body) SELECT rowid, body FROM events WHERE rowid > ?"
_FTS_ALL = "INSERT INTO events_fts (events_fts) VALUES ('rebuild')"

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
            _filter_indexes(self._db)
            self._db.execute(_NO_TRIGGER)
            # index pages stay in memory between batches (a random insert in each of ten
            # indexes per row otherwise goes to the file system cache)
            self._db.execute("PRAGMA cache_size=-65536")
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the SQLite index {path}: {exc}") from None

    def add(self, rows: Iterable[IndexRow]) -> int:
        rows = list(rows)
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # no other writer between reading the last rowid and
        try:                            # indexing the rows after it
            db.execute(_NO_TRIGGER)  # (an older version writing the file may have made it)
            last = db.execute(_LAST_ROWID).fetchone()[0]
            added = db.executemany(_INSERT, rows).rowcount
            if added > 0:
                db.execute(_FTS_AFTER, (last,))
            known = [(r.segment, r.chain_id, r.seq) for r in rows if r.segment is not None]
            if known and added < len(rows):
                db.executemany(_FILL_SEGMENT, known)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return max(added, 0)

    def search(self, query: SearchQuery) -> list[IndexRow]:
        where: list[str] = []
        params: list[Any] = []
        for column, values in query.filters:
            where.append(f"{column} COLLATE NOCASE IN ({', '.join('?' for _ in values)})")
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
    """Context manager for loading many rows at once (a rebuild, the benchmark): one
    transaction, synchronous off. Loading into an empty index, the secondary indexes and
    the full-text index are built once at the end instead of row by row (about 6 + 5 us a
    row against about 100); loading into a non-empty one, rows go in as
    :meth:`SqliteIndex.add` puts them. On an error nothing of the load stays (SQLite's DDL
    is transactional)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._indexes: list[str] = []
        self._last = 0

    def __enter__(self) -> SqliteBulk:
        db = self._db
        db.execute("PRAGMA synchronous=OFF")
        db.execute("BEGIN IMMEDIATE")
        db.execute(_NO_TRIGGER)
        self._last = db.execute(_LAST_ROWID).fetchone()[0]
        if self._last == 0:  # empty: index everything once at the end
            found = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                               "AND tbl_name = 'events' AND sql IS NOT NULL").fetchall()
            for name, sql in found:
                db.execute(f'DROP INDEX "{name}"')
                self._indexes.append(sql)
        return self

    def add(self, rows: Iterable[IndexRow]) -> None:
        self.add_values(list(rows))

    def add_values(self, values: list[tuple[Any, ...]]) -> None:
        """Rows as tuples of :data:`COLUMNS` values (see :func:`sealtrail.search.row_values`)."""
        self._db.executemany(_INSERT, values)

    def __exit__(self, *exc: object) -> None:
        db = self._db
        try:
            if exc[0] is None:
                for sql in self._indexes:
                    db.execute(sql)
                if self._last == 0:
                    db.execute(_FTS_ALL)
                else:
                    db.execute(_FTS_AFTER, (self._last,))
                db.execute("COMMIT")
            else:
                db.execute("ROLLBACK")
        finally:
            db.execute("PRAGMA synchronous=NORMAL")
        if exc[0] is None:
            db.execute("ANALYZE")
