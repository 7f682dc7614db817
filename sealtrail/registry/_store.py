"""Durable registry state (SQLite) and the registry operations behind the REST API (the
request bodies and path segments they take are read in ``_requests``).

Every operation runs under one process-wide lock on one SQLite connection; writes additionally run
in a ``BEGIN IMMEDIATE`` transaction, so concurrent registrations of a schema get a single id and a
compatibility check cannot race a concurrent registration.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sealtrail.registry import _compat
from sealtrail.registry._requests import (
    RegistryError,
    parse_payload,
    parse_version,
    subject_not_found,
)

MODES: tuple[str, ...] = ("READWRITE", "READONLY", "READONLY_OVERRIDE")
_GLOBAL = ""  # settings scope of the global config/mode; subject names are never empty

_DDL = """
CREATE TABLE IF NOT EXISTS schemas (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    canonical TEXT NOT NULL UNIQUE,
    schema TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS subject_versions (
    subject TEXT NOT NULL,
    version INTEGER NOT NULL,
    schema_id INTEGER NOT NULL REFERENCES schemas(id),
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS subject_versions_by_id ON subject_versions (schema_id);
CREATE TABLE IF NOT EXISTS settings (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
"""


class Registry:
    """Schema registry state and operations, backed by SQLite (a file or ``:memory:``)."""

    def __init__(self, db_path: str | Path | None = None) -> None:
        path = ":memory:" if db_path in (None, ":memory:") else str(db_path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._parsed: dict[int, _compat.ParsedSchema] = {}
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 5000")
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
        with self._lock:
            self._db.executescript(_DDL)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    # -- plumbing -------------------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot (deferred transaction) under the lock."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._db.execute("ROLLBACK")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction under the lock: committed on success, rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _schema(self, db: sqlite3.Connection, schema_id: int) -> _compat.ParsedSchema:
        parsed = self._parsed.get(schema_id)
        if parsed is None:
            row = db.execute("SELECT schema FROM schemas WHERE id = ?", (schema_id,)).fetchone()
            if row is None:
                raise RegistryError(404, 40403, f"Schema {schema_id} not found")
            parsed = self._parsed[schema_id] = _compat.parse_schema(row[0])
        return parsed

    @staticmethod
    def _rows(
        db: sqlite3.Connection, subject: str, deleted: bool = False
    ) -> list[tuple[int, int, bool]]:
        """``(version, schema_id, deleted)`` for a subject, oldest first."""
        sql = "SELECT version, schema_id, deleted FROM subject_versions WHERE subject = ?"
        if not deleted:
            sql += " AND deleted = 0"
        return [(v, i, bool(d)) for v, i, d in db.execute(sql + " ORDER BY version", (subject,))]

    def _setting(self, db: sqlite3.Connection, scope: str, key: str) -> str | None:
        row = db.execute(
            "SELECT value FROM settings WHERE scope = ? AND key = ?", (scope, key)
        ).fetchone()
        return None if row is None else str(row[0])

    def _level(self, db: sqlite3.Connection, subject: str) -> str:
        return (
            self._setting(db, subject, "compatibility")
            or self._setting(db, _GLOBAL, "compatibility")
            or _compat.DEFAULT_LEVEL
        )

    def _require_writable(self, db: sqlite3.Connection, subject: str) -> None:
        top = self._setting(db, _GLOBAL, "mode")
        mode = top if top == "READONLY_OVERRIDE" else self._setting(db, subject, "mode") or top
        if mode in ("READONLY", "READONLY_OVERRIDE"):
            raise RegistryError(422, 42205, f"Subject {subject} is in read-only mode")

    def _entry(
        self, db: sqlite3.Connection, subject: str, version: int, sid: int
    ) -> dict[str, Any]:
        return {
            "subject": subject,
            "version": version,
            "id": sid,
            "schema": self._schema(db, sid).text,
        }

    # -- schemas and subjects -------------------------------------------------------------------

    def register(self, subject: str, body: Any) -> dict[str, Any]:
        """Register a schema under ``subject``; same schema again returns the same id.

        The compatibility check runs outside the lock; the write then only proceeds if the subject
        (versions and level) is unchanged, else the whole step is retried.
        """
        if isinstance(body, dict) and (body.get("id") is not None or body.get("version")):
            raise RegistryError(
                422, 42205, "Registering with an explicit id/version (IMPORT mode) is not supported"
            )
        new = parse_payload(body)
        while True:
            with self._read() as db:
                self._require_writable(db, subject)
                live, level = self._rows(db, subject), self._level(db, subject)
                for _version, sid, _ in live:
                    if self._schema(db, sid).canonical == new.canonical:
                        return {"id": sid}
                existing = [(v, self._schema(db, sid).schema) for v, sid, _ in live]
            problems = _compat.check(level, new.schema, existing)
            with self._write() as db:
                if self._rows(db, subject) != live or self._level(db, subject) != level:
                    continue  # a concurrent change: look again
                self._require_writable(db, subject)
                if problems:
                    raise RegistryError(
                        409,
                        409,
                        "Schema being registered is incompatible with an earlier schema for "
                        f'subject "{subject}", details: ' + "; ".join(problems),
                    )
                return {"id": self._insert(db, subject, new)}

    @staticmethod
    def _insert(db: sqlite3.Connection, subject: str, new: _compat.ParsedSchema) -> int:
        """Add ``new`` as the next version of ``subject``; reuses the id of a known schema."""
        found = db.execute(
            "SELECT id FROM schemas WHERE canonical = ?", (new.canonical,)
        ).fetchone()
        if found is None:
            cur = db.execute(
                "INSERT INTO schemas (canonical, schema) VALUES (?, ?)", (new.canonical, new.text)
            )
            sid = int(cur.lastrowid or 0)
        else:
            sid = int(found[0])
        (top,) = db.execute(
            "SELECT COALESCE(MAX(version), 0) FROM subject_versions WHERE subject = ?", (subject,)
        ).fetchone()
        db.execute(
            "INSERT INTO subject_versions (subject, version, schema_id) VALUES (?, ?, ?)",
            (subject, int(top) + 1, sid),
        )
        return sid

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """``GET /schemas/ids/{id}``: the schema text (404/40403 if unknown or hard-deleted)."""
        with self._read() as db:
            self._require_referenced(db, schema_id)
            return {"schema": self._schema(db, schema_id).text}

    def _require_referenced(self, db: sqlite3.Connection, schema_id: int) -> None:
        row = db.execute("SELECT 1 FROM subject_versions WHERE schema_id = ?", (schema_id,))
        if row.fetchone() is None:
            raise RegistryError(404, 40403, f"Schema {schema_id} not found")

    def schema_usages(self, schema_id: int, deleted: bool) -> list[tuple[str, int]]:
        """``(subject, version)`` pairs that use ``schema_id``."""
        with self._read() as db:
            self._require_referenced(db, schema_id)
            sql = "SELECT subject, version FROM subject_versions WHERE schema_id = ?"
            if not deleted:
                sql += " AND deleted = 0"
            return [(s, v) for s, v in db.execute(sql + " ORDER BY subject, version", (schema_id,))]

    def subjects(self, prefix: str, deleted: bool, deleted_only: bool) -> list[str]:
        """Subject names; soft-deleted ones only when asked for."""
        with self._read() as db:
            rows = db.execute(
                "SELECT subject, MIN(deleted) FROM subject_versions "
                "GROUP BY subject ORDER BY subject"
            ).fetchall()
        out = []
        for subject, all_deleted in rows:
            if not subject.startswith(prefix):
                continue
            wanted = bool(all_deleted) if deleted_only else (deleted or not all_deleted)
            if wanted:
                out.append(subject)
        return out

    def versions(self, subject: str, deleted: bool, deleted_only: bool) -> list[int]:
        """Version numbers of a subject (40401 if it has none)."""
        with self._read() as db:
            rows = self._rows(db, subject, deleted=deleted or deleted_only)
        if deleted_only:
            rows = [r for r in rows if r[2]]
        if not rows and not deleted_only:
            raise subject_not_found(subject)
        return [v for v, _, _ in rows]

    def get_version(self, subject: str, raw_version: str, deleted: bool) -> dict[str, Any]:
        """One subject version; ``latest`` is the newest live version."""
        version = parse_version(raw_version)
        with self._read() as db:
            rows = self._rows(db, subject, deleted=deleted)
            if not rows:
                raise subject_not_found(subject)
            if version is None:
                live = [r for r in rows if not r[2]] or rows
                v, sid, _ = live[-1]
                return self._entry(db, subject, v, sid)
            for v, sid, _ in rows:
                if v == version:
                    return self._entry(db, subject, v, sid)
        raise RegistryError(404, 40402, f"Version {version} not found.")

    def lookup(self, subject: str, body: Any, deleted: bool) -> dict[str, Any]:
        """``POST /subjects/{s}``: find the version of ``subject`` holding this schema."""
        new = parse_payload(body)
        with self._read() as db:
            rows = self._rows(db, subject, deleted=deleted)
            if not rows:
                raise subject_not_found(subject)
            for v, sid, _ in reversed(rows):
                if self._schema(db, sid).canonical == new.canonical:
                    return self._entry(db, subject, v, sid)
        raise RegistryError(404, 40403, "Schema not found")

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        """Soft-delete all live versions, or (``permanent``) purge an already soft-deleted one."""
        with self._write() as db:
            self._require_writable(db, subject)
            rows = self._rows(db, subject, deleted=True)
            if not rows:
                raise subject_not_found(subject)
            live = [v for v, _, d in rows if not d]
            if permanent:
                if live:
                    raise RegistryError(
                        404,
                        40405,
                        f"Subject '{subject}' was not deleted first before being permanently "
                        "deleted",
                    )
                db.execute("DELETE FROM subject_versions WHERE subject = ?", (subject,))
                db.execute("DELETE FROM settings WHERE scope = ?", (subject,))
                return [v for v, _, _ in rows]
            if not live:
                raise RegistryError(
                    404,
                    40404,
                    f"Subject '{subject}' was soft deleted. "
                    "Set permanent=true to delete permanently",
                )
            db.execute("UPDATE subject_versions SET deleted = 1 WHERE subject = ?", (subject,))
            return live

    def delete_version(self, subject: str, raw_version: str, permanent: bool) -> int:
        """Soft-delete one version, or (``permanent``) purge an already soft-deleted one."""
        version = parse_version(raw_version)
        with self._write() as db:
            self._require_writable(db, subject)
            rows = self._rows(db, subject, deleted=True)
            if not rows:
                raise subject_not_found(subject)
            if version is None:
                live = [r for r in rows if not r[2]]
                if not live:
                    raise RegistryError(404, 40402, "Version latest not found.")
                version = live[-1][0]
            match = [r for r in rows if r[0] == version]
            if not match:
                raise RegistryError(404, 40402, f"Version {version} not found.")
            is_deleted = match[0][2]
            key = (subject, version)
            if permanent:
                if not is_deleted:
                    raise RegistryError(
                        404,
                        40407,
                        f"Subject '{subject}' Version {version} was not deleted first before "
                        "being permanently deleted",
                    )
                db.execute("DELETE FROM subject_versions WHERE subject = ? AND version = ?", key)
            elif is_deleted:
                raise RegistryError(
                    404,
                    40406,
                    f"Subject '{subject}' Version {version} was soft deleted. "
                    "Set permanent=true to delete permanently",
                )
            else:
                db.execute(
                    "UPDATE subject_versions SET deleted = 1 WHERE subject = ? AND version = ?", key
                )
            return version

    def test_compatibility(
        self, subject: str, raw_version: str | None, body: Any, verbose: bool
    ) -> dict[str, Any]:
        """Check a schema against one version (or, with ``raw_version=None``, per the level)."""
        version = None if raw_version is None else parse_version(raw_version)
        new = parse_payload(body)
        with self._read() as db:
            rows = self._rows(db, subject)
            level = self._level(db, subject)
            if raw_version is not None:
                if version is not None:
                    if not self._rows(db, subject, deleted=True):
                        raise subject_not_found(subject)
                    rows = [r for r in rows if r[0] == version]
                    if not rows:
                        raise RegistryError(404, 40402, f"Version {version} not found.")
                rows = rows[-1:]
            existing = [(v, self._schema(db, sid).schema) for v, sid, _ in rows]
        problems = _compat.check(level, new.schema, existing)
        result: dict[str, Any] = {"is_compatible": not problems}
        if verbose:
            result["messages"] = problems
        return result

    # -- config and mode ------------------------------------------------------------------------

    def _get_setting(
        self, db: sqlite3.Connection, subject: str | None, key: str, default_to_global: bool
    ) -> str:
        if subject is not None:
            value = self._setting(db, subject, key)
            if value is not None:
                return value
            if not default_to_global:
                code = 40408 if key == "compatibility" else 40409
                raise RegistryError(
                    404, code, f"Subject '{subject}' does not have subject-level {key} configured"
                )
        fallback = _compat.DEFAULT_LEVEL if key == "compatibility" else "READWRITE"
        return self._setting(db, _GLOBAL, key) or fallback

    def get_setting(self, subject: str | None, key: str, default_to_global: bool) -> str:
        """Current ``compatibility`` or ``mode`` of a subject (or globally, ``subject=None``)."""
        with self._read() as db:
            return self._get_setting(db, subject, key, default_to_global)

    def set_setting(self, subject: str | None, key: str, raw: Any) -> str:
        """Set ``compatibility`` (42203 if invalid) or ``mode`` (42204 if invalid)."""
        if key == "compatibility":
            try:
                value = _compat.normalize_level(raw)
            except ValueError as exc:
                raise RegistryError(422, 42203, str(exc)) from None
        else:
            value = raw.strip().upper() if isinstance(raw, str) else ""
            if value not in MODES:
                raise RegistryError(
                    422, 42204, f"Invalid mode {raw!r}. Valid values are: {', '.join(MODES)}"
                )
        with self._write() as db:
            db.execute(
                "INSERT INTO settings (scope, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value",
                (subject or _GLOBAL, key, value),
            )
        return value

    def delete_setting(self, subject: str | None, key: str) -> str:
        """Remove a subject (or the global) setting; returns the value it had."""
        with self._write() as db:
            previous = self._get_setting(db, subject, key, default_to_global=subject is None)
            db.execute(
                "DELETE FROM settings WHERE scope = ? AND key = ?", (subject or _GLOBAL, key)
            )
        return previous
