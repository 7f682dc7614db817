"""The chains of the sealed topic as a Kafka replay reads them: each record must link to
the one before it and continue its raw offsets, and it is released (handed to the query
and the output) only once it is evidence.

An entry signature (record format 1) makes its entry evidence on its own. An unsigned
entry (record format 2) becomes evidence only when the batch seal after it verifies
(:class:`sealtrail.core.chain.Seals`), so each chain holds the records read since its last
signed entry and releases them together when the seal closes their batch. A seal that
does not verify breaks the whole batch: none of its records is released.

A chain is *anchored* where the reader knows a batch starts: at its genesis (seq 0), or at
the last signed entry a resumed run saved. A chain first read anywhere else (``--since``,
an old state file, a topic cut by retention) may start in the middle of a batch: its
records up to its first signed entry are checked for hashes and links; they are released
if that entry verifies over them (the reader did start at a batch start), else they were
read only to anchor the chain after that entry, counted and reported, not released.

No I/O: records in, records out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sealtrail.core.chain import BATCH_SEAL_SIZE, BATCH_SEAL_TAG, ChainHead, Seals, check_entry
from sealtrail.core.findings import Kind
from sealtrail.core.signing import Keyring
from sealtrail.replay._sources import Break


@dataclass
class _Held:
    record: dict[str, Any]
    part: int
    at: int  # the Kafka offset in the sealed topic


@dataclass
class _Chain:
    """One chain as read so far: its head (the last record that linked), the seal rule,
    the records held since its last signed entry and that entry (the resume anchor)."""

    head: ChainHead
    seals: Seals
    anchored: bool
    last_offset: int | None = None  # raw offset of the head
    held: list[_Held] = field(default_factory=list)
    sealed: dict[str, Any] | None = None  # the last signed entry read, as a state anchor


def _anchor(saved: dict[str, Any]) -> tuple[ChainHead, int | None]:
    head = ChainHead(saved["chain_id"], int(saved["seq"]), bytes.fromhex(saved["entry_hash"]),
                     int(saved["epoch"]))
    offset = saved.get("raw_offset")
    return head, None if offset is None else int(offset)


class ChainLinks:
    """Every chain read by one Kafka replay. ``anchors``: the chains' last signed entries
    saved by the run this one resumes (:meth:`anchors`), by chain id."""

    def __init__(self, keyring: Keyring | None, topic: str,
                 anchors: dict[str, dict[str, Any]] | None = None) -> None:
        self.keyring, self.topic = keyring, topic
        self.resumed = anchors or {}
        self.chains: dict[str, _Chain] = {}
        self.broken: set[str] = set()
        self.anchoring = 0  # records read only to anchor a chain, not released
        self.notes: list[str] = []

    def released_before(self, record: dict[str, Any]) -> bool:
        """Whether the run this one resumes released ``record`` already (a partition is
        re-read from the first record any of its chains held, so other chains of the same
        partition are read again up to their anchor)."""
        saved = self.resumed.get(record["chain_id"])
        return saved is not None and record["chain_id"] not in self.chains \
            and record["seq"] <= int(saved["seq"])

    def check(self, record: dict[str, Any], part: int, at: int
              ) -> tuple[list[dict[str, Any]], Break | None]:
        """The records ``record`` releases (its batch, once its seal verifies; none while
        the batch is open) and the break, if it does not continue its chain (which is then
        abandoned: nothing it holds is released)."""
        chain = self.chains.get(record["chain_id"])
        if chain is None:
            chain = self.chains[record["chain_id"]] = self._start(record, part)
        head = chain.head
        link = check_entry(head, record, self.keyring,
                           chain.seals if self.keyring is not None else None)
        offset = record["source"]["offset"]
        if link is None and chain.last_offset is not None and offset != chain.last_offset + 1:
            return [], self._break(chain, Kind.COMPLETENESS,
                                   f"raw offset {offset} follows {chain.last_offset}",
                                   part, at, head.seq + 1)
        if link is not None and not self._anchors_late(chain, record, link.kind):
            first = chain.held[0] if chain.held and link.kind in (
                Kind.SIGNATURE, Kind.UNKNOWN_KEY) else None  # the seal breaks its batch
            if first is None:
                return [], self._break(chain, link.kind, link.message, part, at, head.seq + 1)
            return [], self._break(chain, link.kind, link.message, part, at,
                                   first.record["seq"], first.at)
        chain.head = head.advance(record)
        chain.last_offset = offset
        chain.held.append(_Held(record, part, at))
        if link is not None:  # the first signed entry of a chain read mid-batch
            self._skip_to(chain, record, part)
            return [], None
        if not record["signature"]:
            return [], None
        released = [h.record for h in chain.held]
        self._closed(chain, record, part)
        return released, None

    def _start(self, record: dict[str, Any], part: int) -> _Chain:
        """A chain's first record read: anchored at the resumed run's anchor, at the
        genesis, or (not anchored) at the entry before the record, as far as it says."""
        chain_id = record["chain_id"]
        saved = self.resumed.get(chain_id)
        if saved is not None:
            head, offset = _anchor(saved)
            return _Chain(head, Seals(head.seq + 1), True, offset, sealed=saved)
        if record["seq"] == 0:
            return _Chain(ChainHead.genesis(chain_id, record["epoch"]), Seals(0), True)
        head = ChainHead(chain_id, record["seq"] - 1, record["prev_hash"], record["epoch"])
        return _Chain(head, Seals(record["seq"]), False)

    def _anchors_late(self, chain: _Chain, record: dict[str, Any], kind: Kind) -> bool:
        """Whether a chain read from the middle of a batch reached the seal that ends it:
        the seal cannot verify without the entries before the reader started."""
        signature = record["signature"]
        return not chain.anchored and kind == Kind.SIGNATURE \
            and len(signature) == BATCH_SEAL_SIZE and signature[:1] == BATCH_SEAL_TAG

    def _skip_to(self, chain: _Chain, record: dict[str, Any], part: int) -> None:
        first = chain.held[0].record["seq"]
        self.anchoring += len(chain.held)
        self.notes.append(
            f"chain {record['chain_id']}: seq {first}..{record['seq']} read only to anchor "
            "the chain (the replay started inside their batch, so its seal cannot be "
            "checked); not replayed")
        self._closed(chain, record, part)

    def _closed(self, chain: _Chain, record: dict[str, Any], part: int) -> None:
        """``record``, a signed entry, ends the chain's batch: the chain is anchored after it."""
        chain.held = []
        chain.anchored = True
        chain.seals = Seals(record["seq"] + 1)
        chain.sealed = {"chain_id": record["chain_id"], "seq": record["seq"],
                        "entry_hash": record["entry_hash"].hex(), "epoch": record["epoch"],
                        "raw_offset": record["source"]["offset"], "partition": part}

    def _break(self, chain: _Chain, kind: Kind, message: str, part: int, at: int, seq: int,
               first_at: int | None = None) -> Break:
        chain_id = chain.head.chain_id
        if chain.held and kind not in (Kind.SIGNATURE, Kind.UNKNOWN_KEY):
            message += (f"; seq {chain.held[0].record['seq']}..{chain.held[-1].record['seq']}"
                        " before it, unsigned and not sealed yet, are not replayed")
        chain.held = []
        self.broken.add(chain_id)
        where = f"{self.topic}/{part}@{at}" if first_at is None \
            else f"{self.topic}/{part}@{first_at}..{at}"
        return Break(kind, chain_id, message, where, seq)

    def held_from(self, part: int) -> int | None:
        """The first Kafka offset of ``part`` that a chain holds unreleased, if any."""
        firsts = [h.at for c in self.chains.values() for h in c.held[:1] if h.part == part]
        return min(firsts) if firsts else None

    def anchors(self, part: int) -> dict[str, dict[str, Any]]:
        """The last signed entry of each chain whose last one was read from ``part``: where
        a resumed run anchors them."""
        found = {chain_id: saved for chain_id, saved in self.resumed.items()
                 if chain_id not in self.chains and saved.get("partition") == part}
        found.update({chain_id: c.sealed for chain_id, c in self.chains.items()
                      if c.sealed is not None and c.sealed.get("partition") == part
                      and chain_id not in self.broken})
        return found

    def unsealed(self) -> list[str]:
        """Per chain with records held at the end of the run, why they were not replayed."""
        return [f"chain {chain_id}: {c.seals.unsealed(c.held[-1].record['seq'])}; not replayed"
                if self.keyring is not None else
                f"chain {chain_id}: seq {c.held[0].record['seq']}..{c.held[-1].record['seq']}"
                " are unsigned and no signed entry after them was read; not replayed"
                for chain_id, c in self.chains.items() if c.held and chain_id not in self.broken]

    def unsealed_count(self) -> int:
        return sum(len(c.held) for chain_id, c in self.chains.items()
                   if chain_id not in self.broken)
