"""Stub of the native canonical JSON encoder (_canonical_native.c); see canonical.py."""

from typing import Any

def canonical_json(value: Any) -> bytes: ...
