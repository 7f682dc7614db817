"""Checking one segment's bytes against its signed checkpoint: the part of verification
that every reader of the archive (verify, replay's workers, export, prove, search rebuild)
runs on a segment.

Given where the chain stands before the segment (:class:`SegmentStart`), a segment checks
out when its SHA-256 and size are the checkpoint's, it decodes, and it holds exactly the
checkpoint's entries, each linking, hashing, verifying under the keyring and continuing the
raw offsets, with the checkpoint's Merkle root and head. When it does not, the segment is
still read, trusting nothing in it, to name the first entry that breaks, or to tell a
segment moved from elsewhere in the chain (reordered) or cut short (truncated).

Decoding is handed in (:class:`SegmentDecoder`): a native reader that may decline, and
the reference reader. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sealtrail.core import merkle
from sealtrail.core import rows as R
from sealtrail.core.chain import ChainHead, Seals, check_entry
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.findings import Finding, Kind
from sealtrail.core.hashing import ENTRY_DOMAIN, hasher
from sealtrail.core.signing import Keyring
from sealtrail.errors import DecodeError

__all__ = ["EntryBreak", "SegmentDecoder", "SegmentOutcome", "SegmentStart", "check_entries",
           "check_segment", "diagnose", "gap_message"]

Record = dict[str, Any]


class SegmentDecoder(Protocol):
    """Reads a segment's bytes: ``rows`` on the native path (None: take the reference
    path), ``native_records`` the records as dicts on the native path (None: take the
    reference path), ``records`` on the reference path (DecodeError when not a segment)."""

    def rows(self, data: bytes) -> list[R.Row] | None: ...

    def native_records(self, data: bytes) -> list[Record] | None: ...

    def records(self, data: bytes) -> list[Record]: ...


@dataclass(frozen=True)
class SegmentStart:
    """Where the chain stands before a segment. ``last_offset``: the raw offset of the
    head entry (None when unknown: the chain's first segment, after a purge, or a segment
    checked apart). ``epoch_known`` False: the head's epoch is not known (a segment checked
    apart from the one before it); the first entry's epoch is then not compared."""

    head: ChainHead
    last_offset: int | None = None
    epoch_known: bool = True


@dataclass(frozen=True)
class EntryBreak:
    """Where a run of entries stops checking out."""

    kind: Kind
    message: str
    seq: int
    expected: str | None = None
    found: str | None = None
    unsealed: bool = False  # the records end with unsigned entries no batch seal covers

    def at(self, chain_id: str, key: str | None) -> Finding:
        return Finding(self.kind, chain_id, self.message, key, self.seq, self.expected,
                       self.found)


@dataclass
class SegmentOutcome:
    """What checking a segment found. ``head``/``last_offset``: after the last entry that
    checked out; ``entries``, ``events``, ``rejections``: counts of those entries.
    ``rows`` (native path) or ``records`` (reference path) hold what was read when it
    checked out; ``leaf_hashes`` the RFC 6962 leaf hashes of its entries."""

    finding: Finding | None
    head: ChainHead
    last_offset: int | None
    entries: int = 0
    events: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    rows: list[R.Row] | None = None
    records: list[Record] | None = None
    leaf_hashes: list[bytes] = field(default_factory=list)
    topic: str | None = None
    partition: int | None = None
    first_offset: int | None = None
    first_epoch: int | None = None
    gaps: list[Finding] = field(default_factory=list)  # completeness, when not fatal
    runs: list[tuple[int, int]] = field(default_factory=list)  # consecutive raw offsets

    @property
    def ok(self) -> bool:
        return self.finding is None


def gap_message(offset: int, last_offset: int, partition: Any) -> str:
    """The message of a completeness break: ``offset`` follows ``last_offset``."""
    if offset <= last_offset:
        return (f"raw offset {offset} follows {last_offset}: offset {offset} of partition "
                f"{partition} is sealed again (each entry must stand for the next offset)")
    return (f"raw offset {offset} follows {last_offset}: offsets {last_offset + 1}.."
            f"{offset - 1} of partition {partition} are unaccounted for")


def check_entries(head: ChainHead, last_offset: int | None, records: Sequence[Record],
                  keyring: Keyring | None, gaps: list[EntryBreak] | None = None
                  ) -> tuple[ChainHead, int | None, EntryBreak | None]:
    """Walk ``records`` on from ``head`` (a signed entry, or the genesis): each must link,
    hash, verify and continue the raw offsets, and unsigned entries must be closed by a
    batch seal before the records end. Returns the head and last offset reached (the last
    entry that is evidence: with a keyring, the last signed one) and the first break, if
    any. With ``gaps``, raw offsets that do not follow are collected there and the walk
    goes on (the entries still link: a raw record was lost before sealing, nothing sealed
    was altered)."""
    seals = Seals(head.seq + 1) if keyring is not None else None
    sealed, sealed_offset = head, last_offset
    for record in records:
        expected = head.seq + 1
        link = check_entry(head, record, keyring, seals)
        if link is not None:
            return sealed, sealed_offset, EntryBreak(link.kind, link.message, expected,
                                                     link.expected, link.found)
        offset = record["source"]["offset"]
        if last_offset is not None and offset != last_offset + 1:
            gap = EntryBreak(Kind.COMPLETENESS, gap_message(offset, last_offset,
                                                            record["source"]["partition"]),
                             expected, str(last_offset + 1), str(offset))
            if gaps is None:
                return sealed, sealed_offset, gap
            gaps.append(gap)
        last_offset = offset
        head = head.advance(record)
        if seals is None or not seals.open:
            sealed, sealed_offset = head, last_offset
    if seals is not None and seals.open:
        return sealed, sealed_offset, EntryBreak(Kind.SIGNATURE, seals.unsealed(head.seq),
                                                 seals.first_seq, unsealed=True)
    return head, last_offset, None


def _rows_check_out(start: SegmentStart, rows: list[R.Row], keyring: Keyring | None,
                    cp: Checkpoint) -> list[bytes] | None:
    """The leaf hashes of a segment read on the native path when it passes everything
    :func:`check_entries` and the checkpoint comparisons check; None only means "take the
    reference path", which names the break."""
    if len(rows) != cp.size or not rows:
        return None
    head = start.head
    chain, seq, prev = head.chain_id, head.seq, head.entry_hash
    epoch = head.epoch if start.epoch_known else rows[0][R.EPOCH]
    offset = rows[0][R.OFFSET] - 1 if start.last_offset is None else start.last_offset
    entry = hasher(ENTRY_DOMAIN)
    seals = Seals(seq + 1)
    for _, body, chain_id, seq_, epoch_, prev_hash, entry_hash, key_id, signature, at, _, \
            offset_, _ in rows:
        digest = entry.copy()
        digest.update(body)
        if (chain_id != chain or seq_ != seq + 1 or epoch_ < epoch or prev_hash != prev
                or offset_ != offset + 1 or digest.digest() != entry_hash):
            return None
        if keyring is not None and seals.entry(keyring, seq_, key_id, entry_hash, signature,
                                               at):
            return None
        seq, prev, epoch, offset = seq_, entry_hash, epoch_, offset_
    if seals.open:
        return None
    leaves = merkle.leaf_hashes([row[R.ENTRY_HASH] for row in rows])
    if seq != cp.last_seq or prev != cp.head_hash or \
            merkle.root_of_leaf_hashes(leaves) != cp.merkle_root:
        return None
    return leaves


def _from_rows(cp: Checkpoint, rows: list[R.Row], leaves: list[bytes]) -> SegmentOutcome:
    first, last = rows[0], rows[-1]
    out = SegmentOutcome(None, ChainHead(cp.chain_id, last[R.SEQ], last[R.ENTRY_HASH],
                                         last[R.EPOCH]), last[R.OFFSET], entries=len(rows),
                         rows=rows, leaf_hashes=leaves, partition=first[R.PARTITION],
                         first_offset=first[R.OFFSET], first_epoch=first[R.EPOCH],
                         runs=[(first[R.OFFSET], last[R.OFFSET])])
    first_doc = json.loads(first[R.RECORD_JSON])
    out.topic = first_doc["source"]["topic"]
    for row in rows:  # a rejection's reason is read from its JSON (they are rare)
        if row[R.EVENT] is not None:
            out.events += 1
        else:
            doc = first_doc if row is first else json.loads(row[R.RECORD_JSON])
            reason = (doc.get("rejection") or {}).get("reason", "UNKNOWN")
            out.rejections[reason] = out.rejections.get(reason, 0) + 1
    return out


def _runs(records: Sequence[Record]) -> list[tuple[int, int]]:
    """The runs of consecutive raw offsets of ``records``."""
    runs: list[tuple[int, int]] = []
    for record in records:
        offset = record["source"]["offset"]
        if runs and runs[-1][1] + 1 == offset:
            runs[-1] = (runs[-1][0], offset)
        else:
            runs.append((offset, offset))
    return runs


def _count(out: SegmentOutcome, records: Sequence[Record]) -> None:
    for record in records:
        out.entries += 1
        if record["kind"] == "EVENT":
            out.events += 1
        else:
            reason = (record.get("rejection") or {}).get("reason", "UNKNOWN")
            out.rejections[reason] = out.rejections.get(reason, 0) + 1


def check_segment(cp: Checkpoint, key: str, start: SegmentStart, data: bytes,
                  decoder: SegmentDecoder, keyring: Keyring | None, *,
                  want_records: bool = False, gaps_fatal: bool = True) -> SegmentOutcome:
    """Check segment ``data`` (stored at ``key``) against checkpoint ``cp``, the chain
    standing at ``start``. ``keyring`` None skips entry signatures. ``want_records``: the
    caller needs the records as dicts (``outcome.records``). ``gaps_fatal``
    False: raw offsets that do not follow are findings in ``outcome.gaps``, and the segment
    is checked on (verify reports every hole); True: the first one is the break."""
    chain_id = cp.chain_id
    digest = hashlib.sha256(data).digest()
    if digest != cp.segment_sha256 or len(data) != cp.segment_size:
        return SegmentOutcome(_mismatch(cp, key, start, data, digest, decoder, keyring),
                              start.head, start.last_offset)
    rows = decoder.rows(data)
    if rows is not None:
        leaves = _rows_check_out(start, rows, keyring, cp)
        if leaves is not None:
            checked = _from_rows(cp, rows, leaves)
            if not want_records:
                return checked
            # the entries checked out on the native path: their records as dicts, decoded
            # natively too when the native decoder can (the reference path otherwise)
            records = decoder.native_records(data)
            if records is not None and len(records) == len(rows):
                checked.records, checked.rows = records, None
                return checked
    out = SegmentOutcome(None, start.head, start.last_offset)

    def fail(kind: Kind, message: str, seq: int, expected: str | None = None,
             found: str | None = None) -> SegmentOutcome:
        out.finding = Finding(kind, chain_id, message, key, seq, expected, found)
        return out

    try:
        records = decoder.records(data)
    except DecodeError as exc:
        return fail(Kind.MALFORMED, str(exc), cp.first_seq)
    if len(records) != cp.size:
        return fail(Kind.TRUNCATED, f"segment holds {len(records)} entries, checkpoint "
                    f"{cp.index} covers {cp.size}", cp.first_seq + min(len(records), cp.size),
                    str(cp.size), str(len(records)))
    head = start.head
    if not start.epoch_known and records:
        head = ChainHead(head.chain_id, head.seq, head.entry_hash, records[0].get("epoch", 0))
    gaps: list[EntryBreak] | None = None if gaps_fatal else []
    head, last_offset, broken = check_entries(head, start.last_offset, records, keyring, gaps)
    good = records[: head.seq - cp.first_seq + 1]
    _count(out, good)
    out.head, out.last_offset = head, last_offset
    out.gaps = [gap.at(chain_id, key) for gap in gaps or ()]
    out.runs = _runs(good)
    if good:
        out.topic, out.partition = good[0]["source"]["topic"], good[0]["source"]["partition"]
    if broken is not None:
        out.finding = broken.at(chain_id, key)
        return out
    leaves = merkle.leaf_hashes([r["entry_hash"] for r in records])
    root = merkle.root_of_leaf_hashes(leaves)
    if root != cp.merkle_root:
        return fail(Kind.MODIFIED, f"Merkle root of the segment differs from checkpoint "
                    f"{cp.index}", cp.first_seq, cp.merkle_root.hex(), root.hex())
    if head.entry_hash != cp.head_hash or head.seq != cp.last_seq:
        return fail(Kind.MODIFIED, f"chain head differs from checkpoint {cp.index}",
                    cp.last_seq, cp.head_hash.hex(), head.entry_hash.hex())
    out.records, out.leaf_hashes = records, leaves
    first = records[0]
    out.topic, out.partition = first["source"]["topic"], first["source"]["partition"]
    out.first_offset, out.first_epoch = first["source"]["offset"], first["epoch"]
    return out


def _mismatch(cp: Checkpoint, key: str, start: SegmentStart, data: bytes, digest: bytes,
              decoder: SegmentDecoder, keyring: Keyring | None) -> Finding:
    """The finding for a segment whose bytes are not those its checkpoint signs: read it
    anyway, trusting nothing, to say which entry breaks or what the file is."""
    message = (f"segment bytes do not match checkpoint {cp.index} (sha256 {digest.hex()} of "
               f"{len(data)} bytes, checkpoint says {cp.segment_sha256.hex()} of "
               f"{cp.segment_size})")
    kind, seq = Kind.MODIFIED, cp.first_seq
    expected, found_ = cp.segment_sha256.hex(), digest.hex()
    try:
        found: list[Record] | None = decoder.records(data)
    except DecodeError:
        found = None
    broken = None
    if found is not None:
        broken = check_entries(start.head, start.last_offset, found, keyring)[2]
    if found is None:
        if len(data) < cp.segment_size:
            kind = Kind.TRUNCATED
        message += "; it is not a readable segment"
    elif found and found[0].get("chain_id") == cp.chain_id and \
            found[0].get("seq") != cp.first_seq:
        kind = Kind.REORDERED
        message += (f"; it holds seq {found[0]['seq']}..{found[-1]['seq']} where checkpoint "
                    f"{cp.index} covers seq {cp.first_seq}..{cp.last_seq}")
    elif broken is not None and broken.unsealed and len(found) < cp.size:
        kind, seq = Kind.TRUNCATED, broken.seq  # cut after an unsigned entry
        message += (f"; it ends at seq {found[-1]['seq']}, checkpoint {cp.index} covers seq "
                    f"{cp.first_seq}..{cp.last_seq}, and {broken.message}")
    elif broken is not None:
        message += f"; first entry that does not check out: {broken.kind.value}: " \
                   f"{broken.message}"
        seq = broken.seq
    elif len(found) < cp.size:
        kind, seq = Kind.TRUNCATED, cp.first_seq + len(found)
        message += (f"; it ends at seq {seq - 1}, checkpoint {cp.index} covers seq "
                    f"{cp.first_seq}..{cp.last_seq}")
    elif len(found) > cp.size:
        seq = cp.last_seq + 1
        message += (f"; it holds {len(found)} entries, checkpoint {cp.index} covers "
                    f"{cp.size}: seq {seq} on were added")
    elif merkle.root([r["entry_hash"] for r in found]) == cp.merkle_root:
        message += "; its entries are the checkpointed ones, the file around them differs"
    return Finding(kind, cp.chain_id, message, key, seq, expected, found_)


def diagnose(cp_index: int, key: str, start: SegmentStart, data: bytes | None,
             decoder: SegmentDecoder, keyring: Keyring | None) -> EntryBreak | None:
    """The first entry of segment ``data`` that does not check out on from ``start``,
    trusting no checkpoint (None when every entry does, or it cannot be read)."""
    if data is None:
        return None
    try:
        records = decoder.records(data)
    except DecodeError:
        return None
    return check_entries(start.head, start.last_offset, records, keyring)[2]
