"""The shell that reads an archive for the one verifier (:mod:`sealtrail.core.chain_walk`):
it lists and fetches objects from an :class:`~sealtrail.archive.ArchiveStore` and hands the
bytes to the pure core. Every reader of the archive (verify, replay, search rebuild, export,
report, ``prove``, completeness, the archiver's adoption check, the witness) goes through
here, so they all check the same things and name breaks the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sealtrail.archive import ArchiveError, ArchiveStore, ObjectMissingError, fast_segments, iso_z
from sealtrail.archive.segments import read_segment
from sealtrail.core import layout
from sealtrail.core.chain import ChainHead
from sealtrail.core.chain_walk import Anchor, ChainWalk, PlannedSegment, Step
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.findings import Finding, Kind
from sealtrail.core.merkle import Frontier
from sealtrail.core.rows import Row
from sealtrail.core.segment_check import SegmentOutcome, SegmentStart, check_segment
from sealtrail.core.signing import Keyring

__all__ = ["DECODER", "ArchiveReader", "ChainPlan", "Junction", "StoreSource", "check_planned",
           "exact_break", "now_us", "plan_chain", "walk_chain"]


class _Decoder:
    """The native segment reader when it is built (it declines what it cannot reproduce
    exactly), and the reference reader."""

    def rows(self, data: bytes) -> list[Row] | None:
        return fast_segments.transcode_segment(data)

    def native_records(self, data: bytes) -> list[dict[str, Any]] | None:
        return fast_segments.decode_segment(data)

    def records(self, data: bytes) -> list[dict[str, Any]]:
        return read_segment(data)


DECODER = _Decoder()


def now_us() -> int:
    """The wall clock, in microseconds UTC: the one place the verifier shell reads it."""
    return int(datetime.now(UTC).timestamp() * 1_000_000)


class StoreSource:
    """:class:`~sealtrail.core.chain_walk.ChainSource` over a store. ``still_retained``
    reads the archive's unsigned records (hold manifests, the checkpoint's retention) and
    can only make a purge a *missing* finding."""

    def __init__(self, store: ArchiveStore, now: int, listed: Sequence[str] = ()) -> None:
        self.store = store
        self.now = now
        self.listed = set(listed)
        self._holds: dict[str, set[str]] | None = None

    def segment(self, key: str) -> bytes | None:
        try:
            return self.store.get(key)
        except ObjectMissingError:
            return None

    def present(self, key: str) -> bool:
        return key in self.listed

    def still_retained(self, checkpoint_key: str, segment_key: str) -> str | None:
        if self._holds is None:
            from sealtrail.governance.holds import active_holds

            try:
                self._holds = active_holds(self.store)
            except ArchiveError:
                self._holds = {}
        cases = self._holds.get(segment_key) or self._holds.get(checkpoint_key)
        if cases:
            return f"the hold manifest of {', '.join(sorted(cases))} lists it"
        try:
            ret = self.store.retention(checkpoint_key)
        except ArchiveError:
            return None
        if ret.legal_holds:
            return f"its checkpoint is under legal hold {', '.join(ret.legal_holds)}"
        if ret.retain_until > datetime.fromtimestamp(self.now / 1e6, UTC):
            return (f"the archive retains its checkpoint until {iso_z(ret.retain_until)}, "
                    "longer than the signed date (retention was extended)")
        return None


def _listing(store: ArchiveStore, chain_id: str) -> tuple[list[str], list[str]]:
    """(checkpoint keys, segment keys) of a chain, sorted."""
    keys = store.list(f"{layout.CHAINS}{chain_id}/")
    return (sorted(k for k in keys if "/checkpoints/" in k),
            sorted(k for k in keys if "/segments/" in k))


class _Nothing:
    def segment(self, key: str) -> bytes | None:
        return None

    def present(self, key: str) -> bool:
        return False

    def still_retained(self, checkpoint_key: str, segment_key: str) -> str | None:
        return None


def _bad_chain_id(chain_id: str, exc: Exception) -> ChainWalk:
    walk = ChainWalk(chain_id, Keyring(), _Nothing(), DECODER, now_us=0)
    walk.finding = Finding(Kind.MALFORMED, chain_id, f"not a usable chain id: {exc}")
    return walk


def walk_chain(store: ArchiveStore, chain_id: str, keyring: Keyring, *, now: int,
               check_signatures: bool = True, anchors: Sequence[Anchor] = (),
               want_records: bool = False,
               on_step: Callable[[Step], None] | None = None,
               resume: tuple[SignedCheckpoint, Frontier | None] | None = None) -> ChainWalk:
    """Verify ``chain_id`` whole: every checkpoint and every segment. ``on_step`` sees each
    checkpoint that checked out, with its segment's outcome. ``resume``: start after this
    checkpoint (trusted by the caller, e.g. one a witness recorded, with the chain's tree
    there when known) instead of from the chain's beginning."""
    try:
        checkpoints, segments = _listing(store, chain_id)
    except ValueError as exc:
        return _bad_chain_id(chain_id, exc)
    walk = ChainWalk(chain_id, keyring, StoreSource(store, now, segments), DECODER,
                     now_us=now, check_signatures=check_signatures, anchors=anchors,
                     want_records=want_records)
    if resume is not None:
        walk.resume(resume[0])
        if resume[1] is not None:
            walk.frontier = resume[1].copy()
        checkpoints = [k for k in checkpoints
                       if (i := layout.parse_index(k)) is None or i >= walk.position]
    for key in checkpoints:
        try:
            data = store.get(key)
        except ObjectMissingError:  # removed while we read: the walk sees a gap
            continue
        step = walk.step(key, data)
        if step is None:
            break
        if on_step is not None:
            on_step(step)
    walk.finish(segments)
    return walk


def plan_chain(store: ArchiveStore, chain_id: str, keyring: Keyring, *, now: int,
               anchors: Sequence[Anchor] = ()) -> ChainWalk:
    """Check ``chain_id``'s checkpoints (claim mode): ``walk.planned`` lists its segments,
    each to be checked apart with :func:`check_planned`; ``walk.finding`` where the
    checkpoints break."""
    try:
        checkpoints, segments = _listing(store, chain_id)
    except ValueError as exc:
        return _bad_chain_id(chain_id, exc)
    walk = ChainWalk(chain_id, keyring, StoreSource(store, now, segments), DECODER,
                     now_us=now, anchors=anchors, claim=True)
    for key in checkpoints:
        try:
            data = store.get(key)
        except ObjectMissingError:
            continue
        if walk.step(key, data) is None:
            break
    walk.finish(segments)
    return walk


def check_planned(store: ArchiveStore, planned: PlannedSegment, keyring: Keyring | None, *,
                  want_records: bool = False, start: Any = None,
                  gaps_fatal: bool = True) -> SegmentOutcome:
    """Read and check one planned segment against its (already checked) checkpoint, from
    ``start`` (default: the previous checkpoint's claim). ``gaps_fatal`` False: a hole in
    the raw offsets is reported in ``outcome.gaps`` and the segment still checks out."""
    cp = planned.checkpoint
    begin = start if start is not None else planned.start()
    try:
        data = store.get(cp.segment_key)
    except ObjectMissingError:
        return SegmentOutcome(Finding(Kind.MISSING, cp.chain_id, f"segment is missing "
                                      f"(checkpoint {cp.index} covers seq {cp.first_seq}.."
                                      f"{cp.last_seq})", cp.segment_key, cp.first_seq),
                              begin.head, None)
    return check_segment(cp, cp.segment_key, begin, data, DECODER, keyring,
                         want_records=want_records, gaps_fatal=gaps_fatal)


@dataclass(frozen=True)
class Junction:
    """How the segment before stands at its end: its last raw offset and epoch (None when
    unknown), and how many entries were purged between it and the next planned segment."""

    last_offset: int | None
    last_epoch: int | None
    purged_between: int = 0

    @classmethod
    def after(cls, outcome: SegmentOutcome) -> Junction:
        return cls(outcome.last_offset, outcome.head.epoch)

    def expects(self, outcome: SegmentOutcome) -> bool:
        """Whether ``outcome`` (checked apart) continues the raw offsets and epochs."""
        return self.expects_result(outcome.first_offset, outcome.first_epoch)

    def expects_result(self, first_offset: int | None, first_epoch: int | None) -> bool:
        """Whether a segment whose first entry has these continues the one before."""
        if first_offset is not None and self.last_offset is not None and \
                first_offset != self.last_offset + self.purged_between + 1:
            return False
        return not (first_epoch is not None and self.last_epoch is not None
                    and first_epoch < self.last_epoch)


def exact_break(store: ArchiveStore, planned: PlannedSegment, keyring: Keyring | None,
                junction: Junction | None) -> Finding | None:
    """The finding verify gives for ``planned``, knowing where the segment before ended:
    a segment checked apart (replay's workers) that broke, or does not continue the one
    before, is checked again from exactly where the chain stood."""
    start = planned.start()
    if junction is not None:
        known = junction.last_epoch is not None
        start = SegmentStart(
            ChainHead(start.head.chain_id, start.head.seq, start.head.entry_hash,
                      junction.last_epoch if known else 0),  # type: ignore[arg-type]
            None if junction.last_offset is None else
            junction.last_offset + junction.purged_between, epoch_known=known)
    return check_planned(store, planned, keyring, start=start).finding


@dataclass
class ChainPlan:
    """A chain's checked checkpoints (claim mode) and the segments to read."""

    chain_id: str
    checkpoints: list[SignedCheckpoint]  # every checkpoint that checked out, by position
    segments: list[PlannedSegment]  # those whose segment is there to read, in order
    problem: Finding | None = None
    purged_before: dict[int, int] = field(default_factory=dict)  # position -> entries
    first: int = 0  # index into ``segments`` of the first to read
    skew_us: int = 5 * 60 * 1_000_000  # slack between the sealer's and archiver's clocks

    def skip_before(self, since_us: int) -> None:
        """Start reading at the first segment that can hold entries sealed at or after
        ``since_us``: every entry of a segment was sealed before its checkpoint was made."""
        while (self.first < len(self.segments) and
               self.segments[self.first].checkpoint.created_at < since_us - self.skew_us):
            self.first += 1

    def purged_between(self, before: int, position: int) -> int:
        """Entries purged between planned positions ``before`` and ``position``."""
        return sum(n for p, n in self.purged_before.items() if before < p < position)


class ArchiveReader:
    """Reads an archive for the tools that need its records (replay, search rebuild,
    export, report, ``prove``): every checkpoint checked before any segment is read, every
    segment checked against its checkpoint before any of its records is used."""

    def __init__(self, store: ArchiveStore, keyring: Keyring, *,
                 check_signatures: bool = True, now: int | None = None) -> None:
        self.store = store
        self.keyring = keyring
        self.entry_keyring = keyring if check_signatures else None
        self.now = now if now is not None else now_us()

    def chain_ids(self) -> list[str]:
        return layout.chain_ids(self.store.list(layout.CHAINS))

    def plan(self, chain_id: str) -> ChainPlan:
        walk = plan_chain(self.store, chain_id, self.keyring, now=self.now)
        checkpoints, purged = [], {}
        for step in walk.steps:
            checkpoints.append(step.signed)
            if step.purged:
                purged[step.position] = step.signed.checkpoint.size
        return ChainPlan(chain_id, checkpoints, walk.planned, walk.finding, purged)

    def check(self, planned: PlannedSegment, *, want_records: bool = False,
              junction: Junction | None = None, gaps_fatal: bool = True) -> SegmentOutcome:
        """Read and check one planned segment; with ``junction`` (how the segment before
        it ended) also that it continues it, naming a break exactly as verify does."""
        outcome = check_planned(self.store, planned, self.entry_keyring,
                                want_records=want_records, gaps_fatal=gaps_fatal)
        if junction is not None and (not outcome.ok or not junction.expects(outcome)):
            outcome.finding = exact_break(self.store, planned, self.entry_keyring,
                                          junction) or outcome.finding
        return outcome

    def segments(self, plan: ChainPlan, *, want_records: bool = False
                 ) -> Iterator[tuple[PlannedSegment, SegmentOutcome]]:
        """Each planned segment from ``plan.first`` on, checked in sequence; stops after
        the first that breaks (its outcome carries the finding, also set on the plan)."""
        junction: Junction | None = None
        previous = -1
        for planned in plan.segments[plan.first:]:
            if junction is not None:
                junction = Junction(junction.last_offset, junction.last_epoch,
                                    plan.purged_between(previous, planned.position))
            outcome = self.check(planned, want_records=want_records, junction=junction)
            if outcome.finding is not None:
                plan.problem = outcome.finding  # set before yielding: callers break out
                yield planned, outcome
                return
            yield planned, outcome
            junction, previous = Junction.after(outcome), planned.position
