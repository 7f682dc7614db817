"""A file named on the command line, read whole only when it is small enough."""

from __future__ import annotations

from pathlib import Path

from sealtrail.errors import ConfigError, MalformedInputError


def read_file(path: str | Path, *, what: str, max_bytes: int) -> bytes:
    """The bytes of ``path``: ConfigError (exit 2) when it cannot be read, with the reason;
    MalformedInputError when it is larger than ``max_bytes`` (checked before reading)."""
    target = Path(path)
    try:
        size = target.stat().st_size
        if not target.is_file():
            raise ConfigError(f"cannot read {what} {path}: not a regular file")
        if size > max_bytes:
            raise MalformedInputError(f"{what} {path} is {size} bytes, more than any {what} "
                                      f"can be ({max_bytes} bytes)")
        with target.open("rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:  # it grew while we looked
        raise MalformedInputError(f"{what} {path} is more than {max_bytes} bytes")
    return data
