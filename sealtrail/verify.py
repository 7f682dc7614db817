"""Verifying an archive: every chain, segment, entry and checkpoint, against a
pinned keyring. Reads through an ArchiveStore; decides nothing about exit codes
(the CLI does).

For each chain, checkpoints are walked in order. Each must be signed by a
trusted key, link to the previous checkpoint and continue its seq range; its
segment must exist with the recorded SHA-256, hold exactly the entries
first_seq..last_seq, each hashing to its entry_hash, linking to the one before,
signed by a trusted key, with the Merkle root and head the checkpoint states.
Raw source offsets must follow each other (completeness, G1). The first break
in a chain is reported with its segment and seq; other chains are still checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sealtrail import layout
from sealtrail.archive import ArchiveStore, ObjectMissingError
from sealtrail.core import merkle
from sealtrail.core.chain import ChainHead, check_entry
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.hashing import ZERO_HASH
from sealtrail.core.signing import Keyring
from sealtrail.errors import DecodeError, IntegrityError
from sealtrail.segments import read_segment

__all__ = ["ArchiveReport", "ChainReport", "Finding", "verify_archive"]


@dataclass(frozen=True)
class Finding:
    """One piece of broken evidence. ``kind``: missing, modified, reordered, truncated,
    signature, unknown-key, link, hash, seq, completeness, unreferenced, malformed."""

    kind: str
    chain_id: str
    message: str
    segment: str | None = None
    seq: int | None = None

    def __str__(self) -> str:
        where = f"chain {self.chain_id}"
        if self.segment:
            where += f", segment {self.segment}"
        if self.seq is not None:
            where += f", seq {self.seq}"
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class ChainReport:
    chain_id: str
    segments: int = 0
    entries: int = 0
    events: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    head_seq: int = -1
    head_hash: str = ""
    first_ingested_at: int | None = None
    last_checkpoint_at: int | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id, "ok": self.ok, "segments": self.segments,
            "entries": self.entries, "events": self.events, "rejections": self.rejections,
            "head_seq": self.head_seq, "head_hash": self.head_hash,
            "last_checkpoint_at": self.last_checkpoint_at,
            "findings": [f.__dict__ for f in self.findings],
        }


@dataclass
class ArchiveReport:
    archive: str
    chains: list[ChainReport]

    @property
    def ok(self) -> bool:
        return bool(self.chains) and all(c.ok for c in self.chains)

    def to_json(self) -> dict[str, Any]:
        return {"archive": self.archive, "ok": self.ok,
                "chains": [c.to_json() for c in self.chains]}


def _signature_kind(problem: str) -> str:
    return "unknown-key" if problem.startswith("unknown key") else "signature"


def verify_chain(
    store: ArchiveStore, chain_id: str, keyring: Keyring, *, check_signatures: bool = True
) -> ChainReport:
    report = ChainReport(chain_id)
    prefix = f"{layout.CHAINS}{chain_id}/"
    keys = store.list(prefix)
    checkpoints = sorted(k for k in keys if "/checkpoints/" in k)
    segments = {k for k in keys if "/segments/" in k}
    referenced: set[str] = set()

    def fail(kind: str, message: str, segment: str | None = None, seq: int | None = None) -> None:
        report.findings.append(Finding(kind, chain_id, message, segment, seq))

    head = ChainHead.genesis(chain_id)
    prev_cp_hash = ZERO_HASH
    last_offset: int | None = None
    entry_keyring = keyring if check_signatures else None
    if not checkpoints:
        fail("missing", "no checkpoint: the chain's segments are not covered by any signature")
    for position, cp_key in enumerate(checkpoints):
        index = layout.parse_index(cp_key)
        if index != position:
            fail("missing", f"checkpoint {position} is missing (next found: {cp_key})")
            break
        try:
            signed = SignedCheckpoint.from_bytes(store.get(cp_key))
        except IntegrityError as exc:
            fail("malformed", f"checkpoint {index}: {exc}")
            break
        cp = signed.checkpoint
        problem = signed.problem(keyring)
        if problem:
            fail(_signature_kind(problem), f"checkpoint {index}: {problem}")
            break
        if cp.chain_id != chain_id or cp.index != index:
            fail("reordered", f"checkpoint file {index} holds checkpoint {cp.index} of chain "
                 f"{cp.chain_id}")
            break
        if cp.prev_checkpoint_hash != prev_cp_hash:
            fail("link", f"checkpoint {index} does not link to checkpoint {index - 1}")
            break
        if cp.first_seq != head.seq + 1:
            fail("seq", f"checkpoint {index} starts at seq {cp.first_seq}, expected "
                 f"{head.seq + 1}", seq=cp.first_seq)
            break
        seg = cp.segment_key
        referenced.add(seg)
        if seg != layout.segment_key(chain_id, index):
            fail("reordered", f"checkpoint {index} names segment {seg}", seg)
            break
        try:
            data = store.get(seg)
        except ObjectMissingError:
            fail("missing", "segment is missing", seg, cp.first_seq)
            break
        digest = hashlib.sha256(data).digest()
        if digest != cp.segment_sha256 or len(data) != cp.segment_size:
            kind = "truncated" if len(data) < cp.segment_size else "modified"
            fail(kind, f"segment bytes do not match checkpoint {index} (sha256 "
                 f"{digest.hex()} of {len(data)} bytes, checkpoint says "
                 f"{cp.segment_sha256.hex()} of {cp.segment_size})", seg, cp.first_seq)
            break
        try:
            records = read_segment(data)
        except DecodeError as exc:
            fail("malformed", str(exc), seg, cp.first_seq)
            break
        if len(records) != cp.size:
            fail("truncated", f"segment holds {len(records)} entries, checkpoint {index} "
                 f"covers {cp.size}", seg, cp.first_seq)
            break
        broken = False
        for record in records:
            link = check_entry(head, record, entry_keyring)
            if link is not None:
                kind = {"signature": "signature"}.get(link.kind, link.kind)
                if "unknown key" in link.message:
                    kind = "unknown-key"
                fail(kind, link.message, seg, record["seq"])
                broken = True
                break
            offset = record["source"]["offset"]
            if last_offset is not None and offset != last_offset + 1:
                fail("completeness", f"raw offset {offset} follows {last_offset}: offsets "
                     f"{last_offset + 1}..{offset - 1} of partition "
                     f"{record['source']['partition']} are unaccounted for", seg, record["seq"])
                broken = True
                break
            last_offset = offset
            head = head.advance(record)
            report.entries += 1
            if record["kind"] == "EVENT":
                report.events += 1
            else:
                reason = record["rejection"]["reason"]
                report.rejections[reason] = report.rejections.get(reason, 0) + 1
        if broken:
            break
        if merkle.root([r["entry_hash"] for r in records]) != cp.merkle_root:
            fail("modified", f"Merkle root of the segment differs from checkpoint {index}",
                 seg, cp.last_seq)
            break
        if head.entry_hash != cp.head_hash or head.seq != cp.last_seq:
            fail("modified", f"chain head differs from checkpoint {index}", seg, cp.last_seq)
            break
        prev_cp_hash = signed.checkpoint_hash
        report.segments += 1
        report.last_checkpoint_at = cp.created_at
    else:
        for extra in sorted(segments - referenced):
            fail("unreferenced", "segment is not covered by any checkpoint", extra)
    report.head_seq = head.seq
    report.head_hash = head.entry_hash.hex()
    return report


def verify_archive(
    store: ArchiveStore,
    keyring: Keyring,
    *,
    check_signatures: bool = True,
    progress: Callable[[ChainReport], None] | None = None,
) -> ArchiveReport:
    """Verify every chain in ``store`` against ``keyring``."""
    reports = []
    for chain_id in layout.chain_ids(store.list(layout.CHAINS)):
        report = verify_chain(store, chain_id, keyring, check_signatures=check_signatures)
        reports.append(report)
        if progress:
            progress(report)
    return ArchiveReport(store.url, reports)
