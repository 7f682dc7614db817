"""Segments and signed checkpoints, written chain by chain (the archiver's writing half).

A :class:`SegmentWriter` buffers sealed records per chain and writes them as a segment
plus its signed checkpoint (format v2: the segment's retention and the chain's Merkle tree
are signed), then the signed archive index (:mod:`.archive_index`). No Kafka here: the
:class:`~sealtrail.consumers.archiver.Archiver` feeds it; tests and tools drive it directly.

It never signs for a chain it did not check: before it appends to or heartbeats a chain
it finds in the archive, it checks the chain's tail (:mod:`.chain_tail`), and before each
later write that the checkpoint it wrote last is still there, unchanged. A chain that fails
is quarantined: nothing more is written for it, and the failure is counted
(``tail_failures``, exported as ``sealtrail_archiver_tail_check_failures_total``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sealtrail.archive import ArchiveStore, ObjectExistsError, Retention
from sealtrail.archive.segments import read_segment, write_segment
from sealtrail.consumers.archive_index import IndexTailError, IndexWriter
from sealtrail.consumers.chain_tail import TailCheckError, check_tail, check_written
from sealtrail.core import layout, merkle
from sealtrail.core.chain import ChainHead, sealed_prefix
from sealtrail.core.checkpoint import Checkpoint
from sealtrail.core.fencing import Fence
from sealtrail.core.findings import Finding, Kind
from sealtrail.core.hashing import ZERO_HASH
from sealtrail.core.index import IndexedChain, IndexedSchema
from sealtrail.core.merkle import Frontier
from sealtrail.core.segment_check import check_entries
from sealtrail.core.signing import Keyring, PublicKey, Signer
from sealtrail.errors import ConfigError
from sealtrail.governance.retention import RetentionPolicy

__all__ = ["ArchivedChain", "ChainQuarantinedError", "SegmentWriter", "keyring_file"]

log = logging.getLogger("sealtrail.archiver")


class ChainQuarantinedError(TailCheckError):
    """A record of a chain whose tail did not check out: it is not archived."""


@dataclass
class ArchivedChain:
    """How far a chain is archived (as checked, or as this process wrote it), and what is
    buffered for its next segment."""

    chain_id: str
    next_index: int = 0
    last_seq: int = -1
    checkpoint_hash: bytes = ZERO_HASH
    head_hash: bytes = ZERO_HASH
    checkpoint_at: float | None = None  # monotonic time this process wrote its newest checkpoint
    frontier: Frontier = field(default_factory=Frontier)  # the chain's Merkle tree so far
    source: tuple[str, int] | None = None  # the raw topic and partition of its entries
    buffer: list[dict[str, Any]] = field(default_factory=list)
    schema: dict[str, Any] | None = None  # the schema the buffered records were sealed with
    positions: list[tuple[int, int] | None] = field(default_factory=list)
    """Where each buffered record was read (sealed partition, offset), when known."""


def keyring_file(path: Path) -> Callable[[], Keyring]:
    """A keyring read from ``path`` again whenever the file changes (``keys rotate`` adds
    the new key to it while the archiver runs)."""
    from sealtrail.keys import load_keyring

    cache: dict[str, Any] = {}

    def current() -> Keyring:
        stamp = path.stat().st_mtime_ns
        if cache.get("stamp") != stamp:
            cache["keyring"], cache["stamp"] = load_keyring(path), stamp
        keyring: Keyring = cache["keyring"]
        return keyring

    return current


def _with_own_key(keyring: Keyring, signer: Signer) -> Keyring:
    """``keyring`` plus the signer's own current key when it is not listed (an archiver
    trusts what it signs itself)."""
    public = getattr(signer, "public_key", None)
    if signer.key_id in keyring.keys or public is None:
        return keyring
    return Keyring.of([*keyring.keys.values(), PublicKey(signer.key_id, public)])


class SegmentWriter:
    """Buffers sealed records per chain and writes them as segment + signed checkpoint.

    No Kafka here: the Archiver feeds it; tests and tools can drive it directly.
    """

    def __init__(
        self,
        store: ArchiveStore,
        signer: Signer,
        *,
        retention_days: int = 365,
        retention_mode: str = "COMPLIANCE",
        clock: Callable[[], int] = lambda: time.time_ns() // 1000,
        policy: RetentionPolicy | None = None,
        keyring: Keyring | Callable[[], Keyring] | None = None,
        index: bool = True,
    ) -> None:
        """``keyring``: the public keys a chain's tail must be signed by (a callable is
        asked each time: the keyring file changes when keys rotate); by default only the
        signer's own key. ``index``: also write the signed archive index."""
        self.store = store
        self._signer = signer
        self.policy = policy or RetentionPolicy.simple(retention_days, retention_mode)
        self._clock = clock
        if keyring is None and getattr(signer, "public_key", None) is None:
            raise ConfigError("the archiver needs the public keyring to check chain tails")
        self._keyring = keyring
        self._chains: dict[str, ArchivedChain] = {}
        self.fence = Fence()  # refuses records of fenced (zombie) sealers
        self.buffered = 0
        self.segments_written = 0
        self.records_archived = 0
        self.quarantined: dict[str, Finding] = {}  # chain id -> why nothing is written for it
        self.tail_failures = 0
        self.schemas: dict[str, IndexedSchema] = {}  # schema files to list in the index
        self.index = (IndexWriter(store, signer, self.keyring, self.policy, clock)
                      if index else None)

    def keyring(self) -> Keyring:
        found = self._keyring() if callable(self._keyring) else self._keyring
        return _with_own_key(found or Keyring(), self._signer)

    def _quarantine(self, chain_id: str, exc: TailCheckError) -> ChainQuarantinedError:
        self.tail_failures += 1
        self.quarantined[chain_id] = exc.finding
        self._chains.pop(chain_id, None)
        log.error("TAIL CHECK FAILED, chain %s quarantined (nothing more is written for it "
                  "and offsets are not committed): %s", chain_id, exc.finding)
        return ChainQuarantinedError(exc.finding)

    def _chain(self, chain_id: str) -> ArchivedChain:
        if chain_id in self.quarantined:
            raise ChainQuarantinedError(self.quarantined[chain_id])
        state = self._chains.get(chain_id)
        if state is None:
            try:
                state = self._adopt(chain_id)
            except TailCheckError as exc:
                raise self._quarantine(chain_id, exc) from None
            state.checkpoint_at = time.monotonic()  # idle time counts from loading it
            self._chains[chain_id] = state
        return state

    def _adopt(self, chain_id: str) -> ArchivedChain:
        """The state of a chain found in the archive, once its tail checks out."""
        index = None
        if self.index is not None and self.index.broken is None:
            try:
                index = self.index.refresh()
            except IndexTailError as exc:
                self.index.broken = str(exc)
                log.error("NOT WRITING THE ARCHIVE INDEX ANY MORE: %s", exc)
        tail = check_tail(self.store, chain_id, self.keyring(), index)
        state = ArchivedChain(chain_id, frontier=tail.frontier)
        if tail.signed is not None:
            cp = tail.signed.checkpoint
            state.next_index, state.last_seq = cp.index + 1, cp.last_seq
            state.checkpoint_hash, state.head_hash = tail.signed.checkpoint_hash, cp.head_hash
        listed = index.chain(chain_id) if index is not None else None
        if listed is not None and listed.topic:
            state.source = (listed.topic, listed.partition)
        self._complete_orphan(state)
        return state

    def _complete_orphan(self, state: ArchivedChain) -> None:
        """A segment written before a crash, whose checkpoint was not: checkpoint it now,
        once every entry in it continues the chain and is signed by a trusted key."""
        key = layout.segment_key(state.chain_id, state.next_index)
        if not self.store.exists(key):
            return
        data = self.store.get(key)
        records = read_segment(data)
        epoch = records[0].get("epoch", 0) if records else 0
        genesis = ChainHead.genesis(state.chain_id).entry_hash
        head = ChainHead(state.chain_id, state.last_seq,
                         state.head_hash if state.next_index else genesis, epoch)
        broken = check_entries(head, None, records, self.keyring())[2]
        if broken is not None or not records:
            raise TailCheckError(broken.at(state.chain_id, key) if broken else Finding(
                Kind.MALFORMED, state.chain_id, "an empty segment no checkpoint covers", key))
        log.info("chain %s: completing segment %d left by an interrupted run",
                 state.chain_id, state.next_index)
        self._checkpoint(state, records, data, self._retention(records))

    def _still_ours(self, state: ArchivedChain) -> bool:
        """Before writing after ``state``'s newest checkpoint: is it still the one this
        writer wrote or checked? If not, the chain is quarantined and False returned."""
        if state.next_index == 0:
            return True
        try:
            check_written(self.store, state.chain_id, state.next_index - 1,
                          state.checkpoint_hash)
        except TailCheckError as exc:
            self._quarantine(state.chain_id, exc)
            self.buffered -= len(state.buffer)
            return False
        return True

    def add(self, record: dict[str, Any], schema: dict[str, Any] | None = None,
            position: tuple[int, int] | None = None) -> None:
        """Buffer one sealed record (sealed with ``schema``; the current SealedRecord when
        None; read at ``position``, sealed partition and offset) unless it is already
        archived. A record of another schema version than the buffer's closes the buffer
        as a segment first: a segment holds one schema."""
        state = self._chain(record["chain_id"])
        if not self.fence.admit(record, state.last_seq, state.head_hash, log.warning):
            return  # a zombie sealer's record, or one archived before a restart
        if state.source is None:
            state.source = (record["source"]["topic"], record["source"]["partition"])
        if state.buffer and schema != state.schema:
            self.write_segment(state, whole=True)
        state.schema = schema
        expected = state.last_seq + 1 + len(state.buffer)
        if record["seq"] < expected:
            return  # archived before a restart: re-delivered, skip
        if record["seq"] > expected:
            log.error("chain %s: seq %d arrived, expected %d; archiving it as is, verify "
                      "will report the gap", record["chain_id"], record["seq"], expected)
        state.buffer.append(record)
        state.positions.append(position)
        self.buffered += 1

    def held(self) -> dict[int, int]:
        """Per sealed partition, the lowest offset of a record still buffered (read, not
        yet in a segment): a consumer commits no further than that."""
        held: dict[int, int] = {}
        for state in self._chains.values():
            for position in state.positions:
                if position is not None:
                    part, offset = position
                    held[part] = min(offset, held.get(part, offset))
        return held

    def known_chains(self) -> list[str]:
        return list(self._chains)

    def largest_buffer(self) -> int:
        return max((len(c.buffer) for c in self._chains.values()), default=0)

    def _retention(self, records: list[dict[str, Any]]) -> Retention:
        """Retention of an object holding ``records``: the longest class among their events,
        counted from now (wall clock), so never shorter than the class requires."""
        cls_ = self.policy.class_for_records(records)
        return self.policy.retention(cls_, datetime.now(UTC))

    def _checkpoint(self, state: ArchivedChain, records: list[dict[str, Any]], data: bytes,
                    retention: Retention) -> None:
        """Sign and write the checkpoint of segment ``data`` holding ``records`` (none and
        no segment: a heartbeat, docs/format.md "Heartbeat checkpoints")."""
        seg_key = layout.segment_key(state.chain_id, state.next_index) if records else ""
        leaves = [merkle.leaf_hash(r["entry_hash"]) for r in records]
        frontier = state.frontier.copy()
        frontier.extend(leaves)
        cp = Checkpoint(
            chain_id=state.chain_id,
            index=state.next_index,
            first_seq=records[0]["seq"] if records else state.last_seq + 1,
            last_seq=records[-1]["seq"] if records else state.last_seq,
            head_hash=records[-1]["entry_hash"] if records else state.head_hash,
            merkle_root=merkle.root_of_leaf_hashes(leaves),
            prev_checkpoint_hash=state.checkpoint_hash,
            segment_key=seg_key,
            segment_sha256=hashlib.sha256(data).digest(),
            segment_size=len(data),
            created_at=self._clock(),
            key_id=self._signer.key_id,
            # Signed retention: what decides, later, that a missing segment was purged.
            retention_mode=retention.mode,
            retention_class=retention.retention_class or self.policy.default_class,
            retain_until=int(retention.retain_until.timestamp()) * 1_000_000,
            tree_size=frontier.size,
            tree_root=frontier.root(),
            tree_frontier=tuple(frontier.nodes),
        )
        signed = cp.sign(self._signer)
        # Checkpoints carry no class (no lifecycle tag): they outlive purged segments and
        # keep the checkpoint chain whole (docs/archive.md, "retention purge").
        self.store.put(layout.checkpoint_key(state.chain_id, state.next_index),
                       signed.to_bytes(), retention=replace(retention, retention_class=None))
        state.next_index += 1
        state.last_seq = cp.last_seq
        state.head_hash = cp.head_hash
        state.checkpoint_hash = signed.checkpoint_hash
        state.frontier = frontier
        state.checkpoint_at = time.monotonic()

    def heartbeat(self, max_idle_seconds: float, chain_ids: list[str] | None = None) -> int:
        """Write an empty signed checkpoint for every known chain (or ``chain_ids``) with
        nothing buffered whose newest checkpoint was written more than ``max_idle_seconds``
        ago (for a chain loaded from the archive: loaded more than that long ago). Returns
        how many were written.

        A chain another archiver advanced meanwhile (ObjectExistsError) is reloaded."""
        written = 0
        now = time.monotonic()
        for chain_id in chain_ids if chain_ids is not None else list(self._chains):
            try:
                state = self._chain(chain_id)
            except ChainQuarantinedError:
                continue  # never heartbeated: its tail did not check out
            if state.buffer or state.last_seq < 0:
                continue
            if state.checkpoint_at is not None and now - state.checkpoint_at < max_idle_seconds:
                continue
            if not self._still_ours(state):
                continue
            try:
                self._checkpoint(state, [], b"", self.policy.retention(
                    self.policy.classes[self.policy.default_class], datetime.now(UTC)))
            except ObjectExistsError:
                log.warning("chain %s: checkpoint %d was written by another archiver; "
                            "reloading the chain", chain_id, state.next_index)
                del self._chains[chain_id]
                continue
            written += 1
        if written:
            self.write_index()
        return written

    def write_segment(self, state: ArchivedChain, *, whole: bool = False) -> bool:
        """Write ``state``'s buffer as its next segment, up to its last signed entry (all
        of it when ``whole``: a schema change closes the buffer); the checkpoint follows
        it. False when nothing could be written (the buffer holds an open batch only)."""
        # up to the last signed entry: a segment never splits a batch (format.md, "Signatures")
        count = len(state.buffer) if whole else sealed_prefix(state.buffer)
        if not count:
            return False
        if whole and count != sealed_prefix(state.buffer):
            log.error("chain %s: the SealedRecord schema changed inside an open batch; its "
                      "unsigned entries are archived as they are and verify will report "
                      "them unsealed", state.chain_id)
        records = state.buffer[:count]
        data = write_segment(records, {
            "sealtrail.chain_id": state.chain_id,
            "sealtrail.first_seq": str(records[0]["seq"]),
            "sealtrail.last_seq": str(records[-1]["seq"]),
        }, state.schema)
        retention = self._retention(records)
        self.store.put(layout.segment_key(state.chain_id, state.next_index), data,
                       retention=retention)
        self._checkpoint(state, records, data, retention)
        self.segments_written += 1
        self.records_archived += len(records)
        self.buffered -= len(records)
        del state.buffer[:count], state.positions[:count]
        return True

    def flush(self) -> None:
        """Write every chain's buffer, up to its last signed entry, as a segment plus its
        checkpoint, then the index. Entries of a batch whose seal has not been read yet
        stay buffered (:meth:`held`)."""
        wrote = False
        for state in list(self._chains.values()):
            if sealed_prefix(state.buffer) and self._still_ours(state):
                wrote = self.write_segment(state) or wrote
        if wrote:
            self.write_index()

    def note_schema(self, key: str, sha256: bytes) -> None:
        """List schema file ``key`` (its bytes hash to ``sha256``) in the next index."""
        self.schemas[key] = IndexedSchema(key, sha256)

    def write_index(self) -> None:
        """The next signed archive index, with every chain this writer knows (and checked)
        at its newest checkpoint. An index that does not check out stops index writing
        (``index.broken``) and is logged; it never stops the chains being archived."""
        if self.index is None:
            return
        heads = {}
        for state in self._chains.values():
            if state.next_index == 0:
                continue
            topic, partition = state.source or ("", -1)
            heads[state.chain_id] = IndexedChain(
                state.chain_id, state.next_index - 1, state.checkpoint_hash, state.last_seq + 1,
                state.head_hash, topic, partition)
        with contextlib.suppress(IndexTailError):  # logged; index.broken says why
            self.index.write(heads, self.schemas)


