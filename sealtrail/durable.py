"""Making file-system changes durable: the one helper every writer of files shares."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir"]


def fsync_dir(directory: Path) -> None:
    """fsync ``directory``, so that files created, renamed or removed in it stay so after
    a crash (fsync of a file does not make its directory entry durable)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
