"""Counts in words (sealtrail.search.counted)."""

from __future__ import annotations

import pytest

from sealtrail.search import Coverage, counted


@pytest.mark.parametrize(("n", "expected"), [(0, "0 events"), (1, "1 event"), (2, "2 events"),
                                             (-1, "-1 events"), (1000, "1000 events")])
def test_a_count_and_its_noun_agree(n: int, expected: str) -> None:
    """One takes the singular, every other count the plural."""
    assert counted(n, "event") == expected


def test_irregular_plurals_are_given() -> None:
    """A noun that does not just take an s is given its plural."""
    assert counted(1, "entry", "entries") == "1 entry"
    assert counted(3, "entry", "entries") == "3 entries"


def test_coverage_says_one_event_of_one_chain() -> None:
    """The index coverage line agrees in number."""
    said = Coverage(1, 10, 10, 1).describe(None, None)
    assert said.startswith("the index holds 1 event of 1 chain, occurred ")
    assert Coverage(2, 10, 20, 2).describe(None, None).startswith(
        "the index holds 2 events of 2 chains, ")
