"""The one way every tool reads and shows a time (sealtrail.core.times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealtrail.core.times import format_time, optional_time, parse_time
from sealtrail.errors import ConfigError

T = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("2024-01-01", T),
    ("2024-01-01T00:00:01Z", T + 1_000_000),
    ("2024-01-01T01:00:00+01:00", T),
    ("2024-01-01T00:00:00.5Z", T + 500_000),
    ("2024-01-01 00:00:00.000001", T + 1),
    (str(T), T),
    ("-1", -1),
    ("0", 0),
    (" 2024-01-01 ", T),
])
def test_parse_time_accepts_dates_iso_times_and_microseconds(text: str, expected: int) -> None:
    """Dates, ISO-8601 date-times (UTC unless an offset is given) and integer microseconds
    are all accepted: the union of what replay, search, report and hold accepted."""
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "--5", "2024-13-01", "1.5", "١٢", "-"])
def test_parse_time_refuses_anything_else_naming_the_accepted_forms(text: str) -> None:
    """Anything else is a ConfigError that says which forms are accepted."""
    with pytest.raises(ConfigError, match="2026-03-01T10:00:00Z or microseconds"):
        parse_time(text)


def test_optional_time_is_none_for_an_absent_option() -> None:
    """An option not given (None or empty) is no bound; anything else is parse_time's."""
    assert optional_time(None) is None and optional_time("") is None
    assert optional_time("2024-01-01") == T


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2400, 1, 1),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)),
                                               timezone(-timedelta(hours=8))])))
def test_parse_time_is_exact_for_every_iso_time(when: datetime) -> None:
    """Every ISO-8601 date-time reads as exactly its microseconds since the epoch (no float
    rounding, before 1970 too), whatever its offset."""
    assert parse_time(when.isoformat()) == (when - EPOCH) // timedelta(microseconds=1)


@given(st.integers(min_value=-(6 * 10**16), max_value=2 * 10**17))  # years 68 .. 8307
def test_microseconds_read_back_and_format_to_the_second(us: int) -> None:
    """Integer microseconds are read as they are; format_time shows them to the second,
    and that text reads back as the same time truncated to the second."""
    assert parse_time(str(us)) == us
    shown = format_time(us)
    assert shown.endswith("+00:00")
    assert parse_time(shown) == us - us % 1_000_000


def test_format_time_shows_none_as_a_dash() -> None:
    """A missing time is shown as "-"."""
    assert format_time(None) == "-"
    assert format_time(T) == "2024-01-01T00:00:00+00:00"
