"""Counts in words, for the summaries search, index and export print."""

from __future__ import annotations

__all__ = ["counted"]


def counted(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun agreeing with it: ``1 event``, ``0 events``, ``2 events``
    (``plural`` for nouns that do not just take an ``s``)."""
    return f"{n} {singular if n == 1 else plural or singular + 's'}"
