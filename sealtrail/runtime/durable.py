"""Making file-system changes durable: the one helper every writer of files shares."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["fsync_dir", "private_opener", "write_private_bytes"]


def fsync_dir(directory: Path) -> None:
    """fsync ``directory``, so that files created, renamed or removed in it stay so after
    a crash (fsync of a file does not make its directory entry durable)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_opener(path: str | os.PathLike[str], flags: int) -> int:
    """An ``opener`` for :func:`open` creating the file with mode 0600 (and tightening an
    existing file to it): what sealtrail's tools write holds audit data (replays, exports,
    reports, the search index) and is for the operator who ran them, not for every local
    user."""
    fd = os.open(path, flags, 0o600)
    with contextlib.suppress(OSError):  # not ours to change: its owner decided its mode
        os.fchmod(fd, 0o600)
    return fd


def write_private_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, created with mode 0600 (see :func:`private_opener`)."""
    with open(path, "wb", opener=private_opener) as out:
        out.write(data)
