"""Walking one chain's checkpoints, in order, with the segments they cover: the one
verifier every reader of the archive runs (verify, replay, search rebuild, export,
``prove``, completeness, the archiver's adoption check and the witness).

A :class:`ChainWalk` takes the bytes of each checkpoint in turn (:meth:`ChainWalk.step`)
and, through a :class:`ChainSource`, the bytes of the segment it covers. Each checkpoint
must be signed by a trusted key, link to the previous one, continue its seq range and be
in canonical form; each segment must check out against it (:mod:`.segment_check`); a
version 2 checkpoint's tree (the whole chain's Merkle root and compact range) must be the
tree of the entries so far. A missing segment counts as purged only when its signed
retain-until date (version 2) has passed and nothing says it is still retained; anything
unsigned can only make that stricter. Anchors (a signed archive index, a witness's record)
say which checkpoint the chain reached: a different one there is a *fork*, a chain that
ends before it a *rollback*.

The first break stops the walk (nothing after it can be trusted): the walk holds at most
one :class:`~sealtrail.core.findings.Finding` as ``finding``. Raw offsets that do not
follow (*completeness*, G1) are not a break of the evidence (every entry still links and
verifies: a raw record was lost before it was sealed): they are collected in ``gaps`` and
the walk goes on, so verify names every hole. In *claim* mode (replay's and export's
plan, the archiver's adoption check) segments are not read: the next checkpoint starts
where the previous one claims, and each segment is checked later, apart
(:func:`~sealtrail.core.segment_check.check_segment` with :meth:`PlannedSegment.start`).

Pure: the segment bytes come through the :class:`ChainSource` protocol; no clock (``now_us``
is passed in).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sealtrail.core import layout, merkle
from sealtrail.core.chain import ChainHead
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.completeness import Run
from sealtrail.core.findings import Finding, Kind
from sealtrail.core.hashing import ZERO_HASH
from sealtrail.core.segment_check import (
    SegmentDecoder,
    SegmentOutcome,
    SegmentStart,
    check_segment,
    diagnose,
)
from sealtrail.core.signing import Keyring
from sealtrail.core.walk_model import Anchor, ChainSource, ChainStats, PlannedSegment, Step
from sealtrail.errors import IntegrityError

__all__ = ["Anchor", "ChainSource", "ChainStats", "ChainWalk", "PlannedSegment", "Step"]


class ChainWalk:
    """The verification of one chain, one checkpoint at a time (see the module doc)."""

    def __init__(self, chain_id: str, keyring: Keyring, source: ChainSource,
                 decoder: SegmentDecoder, *, now_us: int, check_signatures: bool = True,
                 anchors: Sequence[Anchor] = (), claim: bool = False,
                 want_records: bool = False) -> None:
        self.chain_id = chain_id
        self.keyring = keyring
        self.entry_keyring = keyring if check_signatures else None
        self.source = source
        self.decoder = decoder
        self.now_us = now_us
        self.claim = claim
        self.want_records = want_records
        self.anchors: dict[int, list[Anchor]] = {}
        for anchor in anchors:
            self.anchors.setdefault(anchor.checkpoint_index, []).append(anchor)
        self.head = ChainHead.genesis(chain_id)
        self.epoch_known = True
        self.last_offset: int | None = None
        self.prev_cp_hash = ZERO_HASH
        self.position = 0
        self.resumed_at = 0  # segments before it were vouched for by whoever resumed the walk
        self.frontier: merkle.Frontier | None = merkle.Frontier()
        self.version = 1
        self.last: SignedCheckpoint | None = None
        self.finding: Finding | None = None
        self.stats = ChainStats()
        self.referenced: set[str] = set()
        self.runs: list[Run] = []
        self.gaps: list[Finding] = []  # raw offsets unaccounted for (not a break: see step)
        self.purged_span = 0  # purged entries since the newest run, not yet bridged
        self.planned: list[PlannedSegment] = []
        self.steps: list[Step] = []  # in claim mode: every checkpoint that checked out

    # -- where the walk stands --------------------------------------------------------

    def _start(self) -> SegmentStart:
        return SegmentStart(self.head, self.last_offset, self.epoch_known)

    def _fail(self, kind: Kind, message: str, segment: str | None, seq: int | None,
              expected: str | None = None, found: str | None = None) -> None:
        self.finding = Finding(kind, self.chain_id, message, segment, seq, expected, found)

    def resume(self, signed: SignedCheckpoint) -> None:
        """Start after ``signed``, a checkpoint of this chain trusted by the caller (one a
        signed index or a witness vouches for, whose bytes and signature it checked): the
        head, checkpoint link and tree are its own; epoch and raw offset are unknown."""
        cp = signed.checkpoint
        self.head = ChainHead(self.chain_id, cp.last_seq, cp.head_hash, 0)
        self.epoch_known = False
        self.last_offset = None
        self.prev_cp_hash = signed.checkpoint_hash
        self.position = self.resumed_at = cp.index + 1
        self.frontier = cp.frontier
        self.version = cp.version
        self.last = signed

    # -- one checkpoint ---------------------------------------------------------------

    def step(self, key: str, data: bytes) -> Step | None:
        """Check the checkpoint stored at ``key`` as the walk's next one, and the segment it
        covers. None when the chain breaks here (``finding`` says how)."""
        if self.finding is not None:
            return None
        position = self.position
        expected_seg = layout.segment_key(self.chain_id, position)
        first = self.head.seq + 1
        if layout.parse_index(key) != position:
            self._fail(Kind.MISSING, f"checkpoint {position} is missing (next found: {key}); "
                       f"entries from seq {first} on are not covered by a signature",
                       expected_seg, first, layout.checkpoint_key(self.chain_id, position), key)
            return None
        signed = self._checkpoint(position, data, expected_seg)
        if signed is None:
            return None
        cp = signed.checkpoint
        if cp.segment_key == "":
            return self._heartbeat(position, key, signed, expected_seg)
        if cp.segment_key != expected_seg:
            self._fail(Kind.REORDERED, f"checkpoint {position} names segment "
                       f"{cp.segment_key}", expected_seg, cp.first_seq, expected_seg,
                       cp.segment_key)
            return None
        self.referenced.add(cp.segment_key)
        if self.claim and not self.source.present(cp.segment_key):
            return self._missing(position, key, signed)
        if self.claim:
            self.planned.append(PlannedSegment(position, signed, self.head.seq,
                                               self.head.entry_hash))
            self._advance_by_claim(cp)
            return self._accept(position, key, signed, None)
        data_ = self.source.segment(cp.segment_key)
        if data_ is None:
            return self._missing(position, key, signed)
        outcome = check_segment(cp, cp.segment_key, self._start(), data_, self.decoder,
                                self.entry_keyring, want_records=self.want_records,
                                gaps_fatal=False)
        self._count(outcome)
        self.gaps.extend(outcome.gaps)
        self._add_runs(outcome)
        if outcome.finding is not None:
            self.finding = outcome.finding
            self.head = outcome.head  # the last entry that checked out
            return None
        self.head, self.last_offset, self.epoch_known = outcome.head, outcome.last_offset, True
        if self.frontier is not None:
            self.frontier.extend(outcome.leaf_hashes)
        self.stats.segments += 1
        return self._accept(position, key, signed, outcome)

    def _checkpoint(self, position: int, data: bytes, seg: str) -> SignedCheckpoint | None:
        """The checkpoint's own checks: form, signature, place, link, range, version."""
        first = self.head.seq + 1
        try:
            signed = SignedCheckpoint.from_bytes(data)
            problem = signed.problem(self.keyring)
        except IntegrityError as exc:
            self._fail(Kind.MALFORMED, f"checkpoint {position}: {exc}", seg, first)
            return None
        except (TypeError, ValueError) as exc:  # a statement no signer could have made
            self._fail(Kind.MALFORMED, f"checkpoint {position}: {exc}", seg, first)
            return None
        cp = signed.checkpoint
        if problem:
            kind = Kind.UNKNOWN_KEY if problem.startswith("unknown key") else Kind.SIGNATURE
            message, seq = f"checkpoint {position}: {problem}", first
            if cp.segment_key == seg:  # read the segment to name the first entry that breaks
                broken = diagnose(position, seg, self._start(), self.source.segment(seg),
                                  self.decoder, self.entry_keyring)
                if broken is not None:
                    message += (f"; first entry that does not check out: {broken.kind.value}:"
                                f" {broken.message}")
                    seq = broken.seq
            self._fail(kind, message, seg, seq)
            return None
        odd = cp.inconsistency()
        if odd is not None:
            self._fail(Kind.MALFORMED, f"checkpoint {position} is signed but cannot be true: "
                       f"{odd}", seg, first)
            return None
        if cp.chain_id != self.chain_id or cp.index != position:
            self._fail(Kind.REORDERED, f"checkpoint file {position} holds checkpoint "
                       f"{cp.index} of chain {cp.chain_id}", seg, first)
            return None
        if cp.prev_checkpoint_hash != self.prev_cp_hash:
            self._fail(Kind.LINK, f"checkpoint {position} does not link to checkpoint "
                       f"{position - 1}", seg, first, self.prev_cp_hash.hex(),
                       cp.prev_checkpoint_hash.hex())
            return None
        if cp.first_seq != first:
            self._fail(Kind.SEQ, f"checkpoint {position} starts at seq {cp.first_seq}, "
                       f"expected {first}", seg, first, str(first), str(cp.first_seq))
            return None
        if signed.to_bytes() != data:
            self._fail(Kind.MODIFIED, f"checkpoint {position} file is not in canonical form: "
                       "its statement and signature check out, but its bytes are not those "
                       "the archiver wrote", seg, cp.first_seq)
            return None
        if cp.version < self.version:
            self._fail(Kind.MODIFIED, f"checkpoint {position} is format v{cp.version} after a "
                       f"v{self.version} checkpoint (formats never go back)", seg, first)
            return None
        return signed

    def _heartbeat(self, position: int, key: str, signed: SignedCheckpoint,
                   seg: str) -> Step | None:
        cp = signed.checkpoint
        problem = None
        if cp.last_seq != self.head.seq or cp.head_hash != self.head.entry_hash:
            problem = "heartbeat does not restate the chain head"
        elif (cp.segment_size != 0 or cp.segment_sha256 != hashlib.sha256(b"").digest()
              or cp.merkle_root != merkle.EMPTY_ROOT):
            problem = "heartbeat must state an empty segment (size 0, SHA-256 and root of nothing)"
        if problem:
            self._fail(Kind.MODIFIED, f"checkpoint {position}: {problem}", seg, cp.first_seq)
            return None
        self.stats.heartbeats += 1
        return self._accept(position, key, signed, None)

    def _missing(self, position: int, key: str, signed: SignedCheckpoint) -> Step | None:
        """A segment that is not there: purged, if its signed retain-until has passed and
        nothing says it is still retained; else missing."""
        cp = signed.checkpoint
        what = (f"segment is missing (checkpoint {position} covers seq {cp.first_seq}.."
                f"{cp.last_seq})")
        if cp.retain_until is None:
            self._fail(Kind.MISSING, f"{what}; its checkpoint is format v1, which signs no "
                       "retention date, so a purge cannot be told from a deletion",
                       cp.segment_key, cp.first_seq)
            return None
        if cp.retain_until > self.now_us:
            self._fail(Kind.MISSING, f"{what}; its signed retain-until "
                       f"{_iso(cp.retain_until)} has not passed", cp.segment_key,
                       cp.first_seq, f"retained until {_iso(cp.retain_until)}", "absent")
            return None
        reason = self.source.still_retained(key, cp.segment_key)
        if reason is not None:
            self._fail(Kind.MISSING, f"{what}; its signed retain-until has passed, but "
                       f"{reason}", cp.segment_key, cp.first_seq)
            return None
        if self.last_offset is not None:  # the purged entries stood for the next offsets:
            self.last_offset += cp.size  # they count as covered once an entry after them
            self.purged_span += cp.size  # continues exactly that many offsets further on
        self.head = ChainHead(self.chain_id, cp.last_seq, cp.head_hash, 0)
        self.epoch_known = False
        self.frontier = cp.frontier
        self.stats.purged += cp.size
        return self._accept(position, key, signed, None, purged=True)

    def _advance_by_claim(self, cp: Checkpoint) -> None:
        self.head = ChainHead(self.chain_id, cp.last_seq, cp.head_hash, 0)
        self.epoch_known = False
        self.last_offset = None
        self.frontier = cp.frontier

    def _accept(self, position: int, key: str, signed: SignedCheckpoint,
                outcome: SegmentOutcome | None, *, purged: bool = False) -> Step | None:
        """After a checkpoint and its segment checked out: the tree, the anchors, the link."""
        cp = signed.checkpoint
        if cp.version == 2:
            if self.frontier is not None and self.frontier != cp.frontier:
                mine = self.frontier.root().hex()
                self._fail(Kind.MODIFIED, f"checkpoint {position} states a chain tree of size "
                           f"{cp.tree_size} that is not the tree of the entries so far",
                           cp.segment_key or None, cp.first_seq, mine,
                           (cp.tree_root or b"").hex())
                return None
            self.frontier = cp.frontier
        for anchor in self.anchors.get(position, ()):
            if anchor.checkpoint_hash != signed.checkpoint_hash:
                self._fail(Kind.FORK, f"checkpoint {position} is not the one {anchor.source} "
                           "recorded: the chain was rewritten from here on",
                           layout.checkpoint_key(self.chain_id, position), cp.first_seq,
                           anchor.checkpoint_hash.hex(), signed.checkpoint_hash.hex())
                return None
        self.version = max(self.version, cp.version)
        self.stats.unsigned_retention += cp.version == 1
        self.stats.checkpoints += 1
        if self.stats.first_checkpoint_at is None:
            self.stats.first_checkpoint_at = cp.created_at
        self.stats.last_checkpoint_at = cp.created_at
        self.prev_cp_hash = signed.checkpoint_hash
        self.position += 1
        self.last = signed
        step = Step(position, key, signed, outcome, purged,
                    self.frontier.root() if self.frontier is not None else None)
        if self.claim:
            self.steps.append(step)
        return step

    def _count(self, outcome: SegmentOutcome) -> None:
        stats = self.stats
        stats.entries += outcome.entries
        stats.events += outcome.events
        for reason, n in outcome.rejections.items():
            stats.rejections[reason] = stats.rejections.get(reason, 0) + n

    def _add_runs(self, outcome: SegmentOutcome) -> None:
        """Record the raw offsets the segment's checked entries cover (completeness)."""
        topic, partition = outcome.topic, outcome.partition
        if topic is None or partition is None:  # the first entry did not check out
            return
        span, self.purged_span = self.purged_span, 0
        for first, last_ in outcome.runs:
            last = self.runs[-1] if self.runs else None
            if span and last is not None and (last.topic, last.partition) == (topic, partition) \
                    and last.last + span + 1 == first:  # bridged: the purged offsets count
                last = self.runs[-1] = Run(self.chain_id, topic, partition, last.first,
                                           last.last + span)
            span = 0
            if last is not None and (last.topic, last.partition) == (topic, partition) \
                    and last.last + 1 == first:
                self.runs[-1] = Run(self.chain_id, topic, partition, last.first, last_)
            else:
                self.runs.append(Run(self.chain_id, topic, partition, first, last_))

    # -- the end of the chain -----------------------------------------------------------

    def finish(self, segment_keys: Iterable[str], *, diagnose_extra: bool = True) -> None:
        """After the last checkpoint: a chain with no checkpoint; segments no checkpoint
        covers; anchors the chain never reached (a rollback)."""
        if self.finding is not None:
            return
        if self.position == 0:
            self._fail(Kind.MISSING, "no checkpoint: the chain's segments are not covered by "
                       "any signature", layout.segment_key(self.chain_id, 0), 0)
            return
        extras = {k for k in segment_keys
                  if (i := layout.parse_index(k)) is None or i >= self.resumed_at}
        extras -= self.referenced
        for extra in sorted(extras):
            seq = None
            message = "segment is not covered by any checkpoint"
            if diagnose_extra:
                held = self.source.segment(extra)
                try:
                    found = self.decoder.records(held) if held is not None else []
                except Exception:
                    found = []
                if found:
                    seq = found[0].get("seq")
                    message += f" (it holds seq {seq}..{found[-1].get('seq')})"
            self._fail(Kind.UNREFERENCED, message, extra, seq)
            return
        for index in sorted(self.anchors):
            if index >= self.position:
                anchor = self.anchors[index][0]
                self._fail(Kind.ROLLBACK, f"the chain ends at checkpoint {self.position - 1} "
                           f"(seq {self.head.seq}); {anchor.source} recorded checkpoint "
                           f"{index} (seq {anchor.tree_size - 1}): newer checkpoints and "
                           "entries were removed",
                           layout.checkpoint_key(self.chain_id, self.position),
                           self.head.seq + 1, f"checkpoint {index}",
                           f"checkpoint {self.position - 1}")
                return


def _iso(us: int) -> str:
    """A microsecond timestamp as ISO-8601 UTC (pure: no clock)."""
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
