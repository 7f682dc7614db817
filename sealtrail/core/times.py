"""Times as every tool takes and shows them: microseconds since the Unix epoch, UTC.

One rule for reading a time a person typed (``--since``, ``--until``, ``hold --from``,
``since:`` in a search query, ``report --since``), so that every command accepts the same
inputs:

* an ISO-8601 date (``2026-03-01``, midnight UTC) or date-time (``2026-03-01T10:00:00Z``,
  ``2026-03-01 10:00:00.250+02:00``); a time without an offset is UTC;
* an integer count of microseconds since the epoch (``1772359200000000``, may be negative).

The conversion is exact (integer arithmetic, no float rounding of the microseconds).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sealtrail.errors import ConfigError

__all__ = ["format_time", "optional_time", "parse_time"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_MICROSECONDS = re.compile(r"-?[0-9]+")


def parse_time(text: str) -> int:
    """Microseconds since the epoch (UTC) from an ISO-8601 date or date-time (a naive one
    is UTC; ``Z`` is accepted) or an integer count of microseconds. Raises
    :class:`ConfigError` naming the accepted forms for anything else."""
    stripped = text.strip()
    if _MICROSECONDS.fullmatch(stripped):
        return int(stripped)
    try:
        when = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"cannot read {text!r} as a time: use 2026-03-01, "
                          "2026-03-01T10:00:00Z or microseconds since the epoch") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _ONE_US


def optional_time(text: str | None) -> int | None:
    """:func:`parse_time` for an option that may be absent: None for None or ``""``."""
    if text is None or text == "":
        return None
    return parse_time(text)


def format_time(us: int | None) -> str:
    """Microseconds as ISO-8601 UTC to the second; ``-`` for None."""
    if us is None:
        return "-"
    return (_EPOCH + us * _ONE_US).isoformat(timespec="seconds")
