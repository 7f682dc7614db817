"""Local-directory archive: write-once files plus retention sidecars the OS does not enforce.

Layout under the root::

    <key>                      the object bytes, mode 0644, never overwritten
    _retention/<key>.json      {"mode", "retain_until", "legal_holds", "enforced": false, "note"}
    _retention/.lock           flock serialising sidecar updates between processes

Objects are written to a temporary file in the target directory, fsynced, then hard-linked
into place (``os.link`` fails if the target exists, so two writers cannot race) and the
directory is fsynced. Sidecars are replaced atomically and only ever lengthen retention.
"""

from __future__ import annotations

import builtins
import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sealtrail.archive import (
    TMP_PREFIX,
    Retention,
    RetentionMode,
    check_case_id,
    iso_z,
    parse_iso_z,
    utc_seconds,
    validate_key,
    validate_prefix,
)
from sealtrail.archive._errors import (
    ArchiveError,
    NoRetentionError,
    ObjectExistsError,
    ObjectMissingError,
    RetentionError,
)
from sealtrail.runtime.durable import fsync_dir

__all__ = ["NOT_ENFORCED_NOTE", "LocalStore"]

NOT_ENFORCED_NOTE = (
    "The local file system does not enforce this retention; it is recorded so that verify "
    "and retention tools apply the same rules as on S3 Object Lock."
)
_META_DIR = "_retention"
_FILE_MODE = 0o644


def _make_dirs(path: Path) -> None:
    """mkdir -p, fsyncing the parent of every directory it creates."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            d.mkdir()
        fsync_dir(d.parent)


def _write_temp(directory: Path, data: bytes) -> Path:
    """Write ``data`` durably to a new temporary file in ``directory`` (mode 0644)."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=TMP_PREFIX)
    try:
        os.fchmod(fd, _FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(name)
        raise
    os.close(fd)
    return Path(name)


class LocalStore:
    """Archive in a local directory. Retention is recorded, not enforced by the OS."""

    enforces_retention: bool = False

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    # -- paths -----------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _sidecar(self, key: str) -> Path:
        return self.root.joinpath(_META_DIR, *f"{key}.json".split("/"))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        meta = self.root / _META_DIR
        try:
            _make_dirs(meta)
            fd = os.open(meta / ".lock", os.O_RDWR | os.O_CREAT, _FILE_MODE)
        except OSError as exc:
            raise ArchiveError(f"cannot lock archive metadata in {meta}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    # -- sidecars --------------------------------------------------------------------------

    def _read_sidecar(self, key: str) -> Retention | None:
        path = self._sidecar(key)
        try:
            doc: dict[str, Any] = json.loads(path.read_bytes())
            return Retention(
                mode=doc["mode"],
                retain_until=parse_iso_z(doc["retain_until"]),
                legal_holds=tuple(doc.get("legal_holds", ())),
                retention_class=doc.get("class"),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"retention record {path} for {key!r} is unreadable: {exc}") from exc

    def _write_sidecar(self, key: str, retention: Retention) -> None:
        path = self._sidecar(key)
        doc = {
            "mode": retention.mode,
            "retain_until": iso_z(retention.retain_until),
            "legal_holds": list(retention.legal_holds),
            **({"class": retention.retention_class} if retention.retention_class else {}),
            "enforced": False,
            "note": NOT_ENFORCED_NOTE,
        }
        data = (json.dumps(doc, indent=2) + "\n").encode()
        try:
            _make_dirs(path.parent)
            tmp = _write_temp(path.parent, data)
            os.replace(tmp, path)
            fsync_dir(path.parent)
        except OSError as exc:
            raise ArchiveError(f"cannot write retention record {path} for {key!r}: {exc}") from exc

    def _current(self, key: str) -> Retention:
        if not self._path(key).is_file():
            raise ObjectMissingError(key, self.url)
        found = self._read_sidecar(key)
        if found is None:
            raise NoRetentionError(
                f"retention record for {key!r} is missing (expected {self._sidecar(key)}); "
                "the archive may have been altered outside sealtrail"
            )
        return found

    # -- ArchiveStore ----------------------------------------------------------------------

    def put(self, key: str, data: bytes, *, retention: Retention) -> None:
        """Write once; identical re-put is a no-op, different bytes raise ObjectExistsError."""
        path = self._path(key)
        if not isinstance(retention, Retention):
            raise TypeError("retention must be a sealtrail.archive.Retention")
        data = bytes(data)
        with self._locked():
            if self._same_as_existing(key, path, data):
                if self._read_sidecar(key) is None:  # repair a lost sidecar
                    self._write_sidecar(key, retention)
                return
            # Sidecar first: an object never exists without its retention record. A leftover
            # sidecar (crash before the link) is merged so that retention only ever grows.
            old = self._read_sidecar(key)
            self._write_sidecar(key, _merge(old, retention) if old else retention)
            try:
                _make_dirs(path.parent)
                tmp = _write_temp(path.parent, data)
            except OSError as exc:
                raise ArchiveError(f"cannot write {key!r} under {self.root}: {exc}") from exc
            try:
                os.link(tmp, path)
            except FileExistsError:
                if not self._same_as_existing(key, path, data):
                    raise ObjectExistsError(key, self.url) from None
                return
            except OSError as exc:
                raise ArchiveError(f"cannot link {key!r} into {self.root}: {exc}") from exc
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink()
            try:
                fsync_dir(path.parent)
            except OSError as exc:
                raise ArchiveError(f"cannot fsync directory of {key!r}: {exc}") from exc

    def _same_as_existing(self, key: str, path: Path, data: bytes) -> bool:
        """False if nothing is at ``path``; True if the same bytes; else ObjectExistsError."""
        try:
            existing = path.read_bytes()
        except FileNotFoundError:
            return False
        except IsADirectoryError:
            raise ObjectExistsError(key, self.url) from None
        except OSError as exc:
            raise ArchiveError(f"cannot read existing {key!r} under {self.root}: {exc}") from exc
        if existing != data:
            raise ObjectExistsError(key, self.url)
        return True

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectMissingError(key, self.url) from None
        except OSError as exc:
            raise ArchiveError(f"cannot read {key!r} under {self.root}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> builtins.list[str]:
        validate_prefix(prefix)
        start = self.root.joinpath(*prefix.split("/")[:-1])
        keys: list[str] = []
        if not start.is_dir():
            return keys
        for dirpath, dirnames, filenames in os.walk(start):
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            if rel_dir == ".":
                dirnames[:] = [d for d in dirnames if d != _META_DIR]
                rel_dir = ""
            for name in filenames:
                if name.startswith(TMP_PREFIX):
                    continue
                key = f"{rel_dir}/{name}" if rel_dir else name
                if key.startswith(prefix):
                    keys.append(key)
        keys.sort()
        return keys

    def retention(self, key: str) -> Retention:
        return self._current(key)

    def extend_retention(self, key: str, retain_until: datetime) -> None:
        new_until = utc_seconds(retain_until)
        with self._locked():
            current = self._current(key)
            if new_until < current.retain_until:
                raise RetentionError(
                    f"refusing to shorten retention of {key!r} from "
                    f"{iso_z(current.retain_until)} to {iso_z(new_until)}: retention only grows"
                )
            if new_until == current.retain_until:
                return
            self._write_sidecar(key, Retention(current.mode, new_until, current.legal_holds,
                                               current.retention_class))

    def set_legal_hold(self, key: str, case_id: str, on: bool) -> None:
        check_case_id(case_id)
        with self._locked():
            current = self._current(key)
            holds = set(current.legal_holds)
            if on:
                holds.add(case_id)
            else:
                holds.discard(case_id)
            if holds != set(current.legal_holds):
                self._write_sidecar(
                    key, Retention(current.mode, current.retain_until, tuple(holds),
                                   current.retention_class)
                )

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._locked():
            if not path.is_file():
                raise ObjectMissingError(key, self.url)
            current = self._read_sidecar(key)
            if current is None:
                raise RetentionError(
                    f"refusing to delete {key!r}: its retention record is missing, so "
                    "retention cannot be established"
                )
            reason = current.refusal(key, datetime.now(UTC))
            if reason:
                raise RetentionError(reason)
            sidecar = self._sidecar(key)
            try:
                path.unlink()
                fsync_dir(path.parent)
                sidecar.unlink(missing_ok=True)
                fsync_dir(sidecar.parent)
            except OSError as exc:
                raise ArchiveError(f"cannot delete {key!r} under {self.root}: {exc}") from exc


def _merge(old: Retention, new: Retention) -> Retention:
    """The stronger of two retentions: later date, COMPLIANCE over GOVERNANCE, all holds."""
    mode: RetentionMode = "COMPLIANCE" if "COMPLIANCE" in (old.mode, new.mode) else "GOVERNANCE"
    return Retention(
        mode,
        max(old.retain_until, new.retain_until),
        old.legal_holds + new.legal_holds,
        new.retention_class if new.retain_until >= old.retain_until else old.retention_class,
    )
