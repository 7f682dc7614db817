"""Bytes written as lowercase hex in the JSON documents sealtrail checks (proofs, the
archive index, a witness's record): one reader, so that every document refuses the same
things (not a string, not hex, upper case, the wrong length). Pure."""

from __future__ import annotations

from typing import Any

from sealtrail.errors import IntegrityError

__all__ = ["hex_bytes"]


def hex_bytes(value: Any, what: str, size: int) -> bytes:
    """``value`` as ``size`` bytes, when it is exactly their lowercase hex; IntegrityError
    naming ``what`` otherwise."""
    if not isinstance(value, str):
        raise IntegrityError(f"{what} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise IntegrityError(f"{what} is not hex") from None
    if raw.hex() != value or len(raw) != size:
        raise IntegrityError(f"{what} must be {size} bytes of lowercase hex")
    return raw
