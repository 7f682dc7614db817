"""Completeness per raw partition: runs of source offsets across chains, merged into
covered ranges, holes and offsets sealed twice."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core.completeness import Run, coverage, runs_of


def test_runs_split_where_offsets_do_not_follow() -> None:
    """Consecutive offsets of one partition form one run; a jump or another partition
    starts a new one."""
    coords = [("raw", 0, 5), ("raw", 0, 6), ("raw", 0, 7), ("raw", 0, 9), ("raw", 1, 10)]
    assert runs_of("c", coords) == [Run("c", "raw", 0, 5, 7), Run("c", "raw", 0, 9, 9),
                                     Run("c", "raw", 1, 10, 10)]
    assert runs_of("c", []) == []


def test_two_chains_that_continue_each_other_cover_the_partition() -> None:
    """A partition whose chain was replaced is complete when the new chain starts where
    the old one ended."""
    [c] = coverage([Run("old", "raw", 0, 0, 99), Run("new", "raw", 0, 100, 150)])
    assert c.complete and c.ranges == ((0, 150),) and c.chains == ("new", "old")
    assert c.covered == 151


def test_holes_and_overlaps_are_named() -> None:
    """A missing range is a hole; an offset in two runs is reported as sealed twice."""
    found = coverage([Run("a", "raw", 0, 0, 9), Run("b", "raw", 0, 15, 20),
                      Run("c", "raw", 0, 18, 25), Run("a", "raw", 1, 3, 4)])
    p0, p1 = found
    assert (p0.partition, p0.ranges, p0.holes, p0.overlaps) == (
        0, ((0, 9), (15, 25)), ((10, 14),), ((18, 20),))
    assert not p0.complete
    assert p1.complete and p1.ranges == ((3, 4),)


@settings(max_examples=300, deadline=None)
@given(a=st.sets(st.integers(0, 60), max_size=40), b=st.sets(st.integers(0, 60), max_size=40))
def test_coverage_matches_counting_offsets(a: set[int], b: set[int]) -> None:
    """For any offsets sealed by two chains (each in increasing order, as chains are),
    the covered ranges, holes and overlaps agree with counting offsets one by one."""
    runs = runs_of("a", [("t", 0, o) for o in sorted(a)])
    runs += runs_of("b", [("t", 0, o) for o in sorted(b)])
    found = coverage(runs)
    if not a | b:
        assert found == []
        return
    [c] = found
    expand = lambda ranges: {o for lo, hi in ranges for o in range(lo, hi + 1)}  # noqa: E731
    assert expand(c.ranges) == a | b
    assert expand(c.holes) == set(range(min(a | b), max(a | b) + 1)) - (a | b)
    assert expand(c.overlaps) == a & b
    assert c.complete == (not c.holes and not (a & b))


def test_offsets_across_purged_entries_follow_when_exactly_that_many_apart() -> None:
    """A purged segment of n entries between offsets a and a + n + 1 leaves one run; a
    different distance starts a new run (a hole, or offsets twice); purged entries before
    the first known offset change nothing."""
    from sealtrail.core.completeness import Purged

    coords: list[tuple[str, int, int] | Purged] = [
        Purged(4), ("t", 0, 10), ("t", 0, 11), Purged(3), ("t", 0, 15), Purged(2),
        ("t", 0, 20)]
    assert [(r.first, r.last) for r in runs_of("c", coords)] == [(10, 15), (20, 20)]
    assert runs_of("c", [("t", 0, 1), Purged(1), ("t", 1, 3)]) == [
        Run("c", "t", 0, 1, 1), Run("c", "t", 1, 3, 3)]
    assert runs_of("c", [Purged(5)]) == []


@given(st.lists(st.integers(1, 5), min_size=1, max_size=20), st.data())
def test_purging_any_middle_segments_keeps_one_run(sizes: list[int], data: st.DataObject) -> None:
    """Contiguous offsets cut into segments, any of them purged but the first and last:
    still exactly one run from the first offset to the last."""
    from sealtrail.core.completeness import Purged

    coords: list[tuple[str, int, int] | Purged] = []
    offset = 0
    for i, size in enumerate(sizes):
        purge = 0 < i < len(sizes) - 1 and data.draw(st.booleans())
        if purge:
            coords.append(Purged(size))
        else:
            coords.extend(("t", 0, offset + k) for k in range(size))
        offset += size
    assert runs_of("c", coords) == [Run("c", "t", 0, 0, offset - 1)]


def test_a_gap_and_a_repeat_are_told_apart() -> None:
    """A hole names the offsets missing; an offset that does not move forward is named as
    sealed again, not as an empty range of missing offsets."""
    from sealtrail.core.segment_check import gap_message

    assert "offsets 5..6 of partition 2 are unaccounted for" in gap_message(7, 4, 2)
    assert "offset 4 of partition 2 is sealed again" in gap_message(4, 6, 2)
    assert "unaccounted" not in gap_message(6, 6, 2)
