"""A witness's record of an archive, and what it proves (guarantee G3: what the archive
alone cannot prove, a rollback of its newest part, is proved against a witness's record
kept outside the archive).

``sealtrail witness`` checks that the archive is an append-only extension of what its
record says it saw (every chain at or past the checkpoint recorded, with the same hash
there, and an RFC 9162 consistency proof from the recorded tree to the new one; the index
log likewise), then cosigns the new heads (C2SP tlog-cosignature) and records them.
``verify --witness`` holds the archive to a record: every chain the witness saw must be
there, at or past the checkpoint it saw, with that checkpoint's hash.

The record is trusted by whoever points verify at it: it lives outside the archive, on
another machine, account or bucket. Pure: values in, values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sealtrail.core import layout, merkle
from sealtrail.core.chain_walk import Anchor
from sealtrail.core.findings import ARCHIVE, Finding, Kind
from sealtrail.core.hexfield import hex_bytes
from sealtrail.core.note import checkpoint_body
from sealtrail.errors import IntegrityError

__all__ = ["STATE_FORMAT", "WitnessState", "WitnessedChain", "WitnessedIndex",
           "chain_origin", "index_origin", "record_findings"]

STATE_FORMAT = "sealtrail-witness/v1"


def _hex(value: Any, what: str) -> bytes:
    return hex_bytes(value, f"witness record: {what}", 32)


def _int(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise IntegrityError(f"witness record: {what} is not a non-negative integer")
    return value


def chain_origin(origin: str, chain_id: str) -> str:
    """The C2SP origin line of a chain: ``<origin>/<chain id>`` (as ``export-note``)."""
    return f"{origin}/{chain_id}"


def index_origin(origin: str, archive_id: str) -> str:
    """The C2SP origin line of an archive's index log: ``<origin>/index/<archive id>``."""
    return f"{origin}/index/{archive_id}"


@dataclass(frozen=True)
class WitnessedChain:
    """The newest checkpoint of a chain a witness checked and cosigned."""

    chain_id: str
    checkpoint_index: int
    checkpoint_hash: bytes
    tree_size: int
    tree_root: bytes
    tree_frontier: tuple[bytes, ...]

    def frontier(self) -> merkle.Frontier:
        return merkle.Frontier(self.tree_size, self.tree_frontier)

    def note_body(self, origin: str) -> bytes:
        return checkpoint_body(
            chain_origin(origin, self.chain_id), self.tree_size, self.tree_root,
            [f"sealtrail-checkpoint {self.checkpoint_index} {self.checkpoint_hash.hex()}"])

    def to_json(self) -> dict[str, Any]:
        return {"checkpoint_index": self.checkpoint_index,
                "checkpoint_hash": self.checkpoint_hash.hex(), "tree_size": self.tree_size,
                "tree_root": self.tree_root.hex(),
                "tree_frontier": [h.hex() for h in self.tree_frontier]}

    @classmethod
    def from_json(cls, chain_id: str, doc: Any) -> WitnessedChain:
        if not isinstance(doc, dict) or not isinstance(doc.get("tree_frontier"), list):
            raise IntegrityError(f"witness record: chain {chain_id} is malformed")
        found = cls(chain_id, _int(doc.get("checkpoint_index"), "checkpoint_index"),
                    _hex(doc.get("checkpoint_hash"), "checkpoint_hash"),
                    _int(doc.get("tree_size"), "tree_size"), _hex(doc.get("tree_root"),
                                                                  "tree_root"),
                    tuple(_hex(h, "tree_frontier") for h in doc["tree_frontier"]))
        if found.frontier().root() != found.tree_root:
            raise IntegrityError(f"witness record: chain {chain_id}'s tree does not add up")
        return found


@dataclass(frozen=True)
class WitnessedIndex:
    """The newest archive index a witness checked: the index log of indexes 0..seq."""

    archive_id: str
    seq: int
    index_hash: bytes
    log_root: bytes
    log_frontier: tuple[bytes, ...]  # compact range of indexes 0..seq
    created_at: int

    @property
    def log_size(self) -> int:
        return self.seq + 1

    def note_body(self, origin: str) -> bytes:
        return checkpoint_body(index_origin(origin, self.archive_id), self.log_size,
                               self.log_root,
                               [f"sealtrail-index {self.seq} {self.index_hash.hex()}"])

    def to_json(self) -> dict[str, Any]:
        return {"archive_id": self.archive_id, "seq": self.seq,
                "index_hash": self.index_hash.hex(), "log_root": self.log_root.hex(),
                "log_frontier": [h.hex() for h in self.log_frontier],
                "created_at": self.created_at}

    @classmethod
    def from_json(cls, doc: Any) -> WitnessedIndex:
        if not isinstance(doc, dict) or not isinstance(doc.get("log_frontier"), list) or \
                not isinstance(doc.get("archive_id"), str):
            raise IntegrityError("witness record: index is malformed")
        found = cls(doc["archive_id"], _int(doc.get("seq"), "seq"),
                    _hex(doc.get("index_hash"), "index_hash"),
                    _hex(doc.get("log_root"), "log_root"),
                    tuple(_hex(h, "log_frontier") for h in doc["log_frontier"]),
                    _int(doc.get("created_at"), "created_at"))
        if merkle.Frontier(found.log_size, found.log_frontier).root() != found.log_root:
            raise IntegrityError("witness record: the index log does not add up")
        return found


@dataclass(frozen=True)
class WitnessState:
    """Everything a witness recorded of one archive."""

    name: str
    origin: str
    witnessed_at: int  # microseconds UTC of the run that recorded it
    index: WitnessedIndex | None = None
    chains: Mapping[str, WitnessedChain] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "name": self.name, "origin": self.origin,
                "witnessed_at": self.witnessed_at,
                "index": None if self.index is None else self.index.to_json(),
                "chains": {c: w.to_json() for c, w in sorted(self.chains.items())}}

    @classmethod
    def from_json(cls, doc: Any) -> WitnessState:
        if not isinstance(doc, dict) or doc.get("format") != STATE_FORMAT:
            raise IntegrityError(f"not a witness record ({STATE_FORMAT})")
        chains = doc.get("chains")
        if not isinstance(chains, dict) or not isinstance(doc.get("name"), str) or \
                not isinstance(doc.get("origin"), str):
            raise IntegrityError("witness record: name, origin or chains malformed")
        index = doc.get("index")
        return cls(doc["name"], doc["origin"], _int(doc.get("witnessed_at"), "witnessed_at"),
                   None if index is None else WitnessedIndex.from_json(index),
                   {c: WitnessedChain.from_json(c, w) for c, w in chains.items()})

    def anchors(self, label: str) -> dict[str, list[Anchor]]:
        """Per chain, the checkpoint this record says it reached."""
        return {c: [Anchor(label, w.checkpoint_index, w.checkpoint_hash, w.tree_size)]
                for c, w in self.chains.items()}


def record_findings(label: str, chains: Mapping[str, Anchor], index: tuple[int, bytes] | None,
                    chains_present: Iterable[str], index_seq: int | None,
                    index_hash_at: Mapping[int, bytes]) -> list[Finding]:
    """What a witness's record proves about an archive beyond each chain's walk (which
    checks the anchors): every chain recorded (``chains``) is still there, and the index
    log is not behind the recorded ``index`` (seq, hash) or rewritten there
    (``index_hash_at``: the archive's index hashes by seq, as far as read)."""
    present = set(chains_present)
    findings = []
    for chain_id, seen in sorted(chains.items()):
        if chain_id not in present:
            findings.append(Finding(
                Kind.MISSING, chain_id, f"the chain is gone: {label} recorded it at "
                f"checkpoint {seen.checkpoint_index} (seq {seen.tree_size - 1})",
                layout.checkpoint_key(chain_id, 0), 0, f"checkpoint {seen.checkpoint_index}",
                "no object"))
    if index is not None:
        seq, index_hash = index
        key = layout.index_key(seq)
        if index_seq is None or index_seq < seq:
            findings.append(Finding(
                Kind.ROLLBACK, ARCHIVE, f"the archive's newest index is "
                f"{'none' if index_seq is None else index_seq}; {label} recorded index "
                f"{seq}: newer indexes were removed", key, None, f"index {seq}",
                f"index {index_seq}"))
        elif index_hash_at.get(seq) != index_hash:
            findings.append(Finding(
                Kind.FORK, ARCHIVE, f"index {seq} is not the one {label} recorded", key, None,
                index_hash.hex(), (index_hash_at.get(seq) or b"").hex() or "absent"))
    return findings
