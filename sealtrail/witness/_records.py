"""What verify holds an archive to with ``--witness``: a witness's state directory (its
record, trusted as a whole: it is the witness's own), or exported cosigned notes (each
trusted only when it carries a cosignature by a key given with ``--witness-key``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sealtrail.archive import ArchiveStore, ObjectMissingError
from sealtrail.core import layout
from sealtrail.core.chain_walk import Anchor
from sealtrail.core.findings import ARCHIVE, Finding, Kind
from sealtrail.core.index import SignedIndex
from sealtrail.core.note import parse_verifier_key, verify_cosignature
from sealtrail.core.witness import WitnessState
from sealtrail.core.witness import record_findings as core_findings
from sealtrail.errors import ConfigError, DataError, IntegrityError
from sealtrail.witness._files import STATE_FILE, load_state

__all__ = ["WitnessRecord", "apply_records", "load_record", "record_findings",
           "verify_with_witnesses"]


@dataclass
class WitnessRecord:
    """What one witness saw: per chain the checkpoint (index, hash, tree size), and the
    index it recorded (seq, hash)."""

    label: str
    chains: dict[str, Anchor] = field(default_factory=dict)
    index: tuple[int, bytes] | None = None

    def anchors(self) -> dict[str, list[Anchor]]:
        return {c: [a] for c, a in self.chains.items()}


def _when(us: int) -> str:
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _from_state(state: WitnessState) -> WitnessRecord:
    label = f"witness {state.name} ({_when(state.witnessed_at)})"
    record = WitnessRecord(label, {c: a[0] for c, a in state.anchors(label).items()})
    if state.index is not None:
        record.index = (state.index.seq, state.index.index_hash)
    return record


def load_record(path: Path, vkeys: list[str]) -> WitnessRecord:
    """A witness's record from its state directory, or from exported notes (a note file or
    a directory of ``*.note`` files) cosigned by one of ``vkeys``."""
    if (path / STATE_FILE).is_file():
        state = load_state(path)
        assert state is not None
        return _from_state(state)
    if not path.exists():
        raise ConfigError(f"--witness {path}: no such file or directory")
    files = sorted(path.glob("*.note")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise ConfigError(f"{path} is neither a witness state directory nor cosigned notes")
    if not vkeys:
        raise ConfigError(f"{path} holds exported witness notes: give the witness's key with "
                          "--witness-key (its witness.vkey); notes are never trusted alone")
    keys = []
    for vkey in vkeys:
        try:
            keys.append(parse_verifier_key(vkey))
        except IntegrityError as exc:
            raise ConfigError(f"--witness-key {vkey!r}: {exc}") from None
    record = WitnessRecord(f"witness notes {path}")
    for note_file in files:
        _read_note(note_file, keys, record)
    return record


def _read_note(path: Path, keys: list[tuple[str, bytes, bytes]], record: WitnessRecord) -> None:
    note = path.read_bytes()
    last = None
    for name, _type, public in keys:
        try:
            cp, when = verify_cosignature(note, name, public)
        except DataError as exc:  # not a note, or not cosigned by this key
            last = exc
            continue
        record.label = f"witness {name} ({_when(when * 1_000_000)})"
        for ext in cp.extensions:
            parts = ext.split(" ")
            if len(parts) == 3 and parts[0] == "sealtrail-checkpoint":
                chain_id = cp.origin.rsplit("/", 1)[-1]
                record.chains[chain_id] = Anchor(record.label, int(parts[1]),
                                                 bytes.fromhex(parts[2]), cp.tree_size)
            elif len(parts) == 3 and parts[0] == "sealtrail-index":
                record.index = (int(parts[1]), bytes.fromhex(parts[2]))
        return
    raise ConfigError(f"{path}: no valid cosignature by a --witness-key key ({last}); the "
                      "notes are not the witness's, or the key is not")


def record_findings(store: ArchiveStore, record: WitnessRecord, chains_present: list[str],
                    index_seq: int | None) -> list[Finding]:
    """What the record proves beyond the chain walks (which check its anchors): no chain
    it saw is gone, and the archive's index is not behind or rewritten."""
    hashes: dict[int, bytes] = {}
    if record.index is not None:
        seq = record.index[0]
        with contextlib.suppress(ObjectMissingError, IntegrityError):
            hashes[seq] = SignedIndex.from_bytes(store.get(layout.index_key(seq))).index_hash
    return core_findings(record.label, record.chains, record.index, chains_present,
                         index_seq, hashes)


def apply_records(store: ArchiveStore, report: Any, records: list[WitnessRecord]) -> list[Any]:
    """Add to a verify ``report`` (run with the records' anchors) what the records prove
    beyond the chain walks: chains they saw that are gone, an index behind or rewritten.
    Returns the chain reports it added (chains gone from the archive)."""
    from sealtrail.verify import ChainReport

    present = layout.chain_ids(store.list(layout.CHAINS))
    by_chain = {c.chain_id: c for c in report.chains}
    added = []
    for record in records:
        report.witnesses.append(record.label)
        for finding in record_findings(store, record, present, report.index_seq):
            chain = by_chain.get(finding.chain_id)
            if finding.chain_id == ARCHIVE:
                report.findings.append(finding)
            elif chain is None:
                chain = by_chain[finding.chain_id] = ChainReport(finding.chain_id)
                chain.findings.append(finding)
                report.chains.append(chain)
                added.append(chain)
            elif not any(f.kind == Kind.MISSING for f in chain.findings):
                chain.findings.append(finding)
    report.chains.sort(key=lambda c: c.chain_id)
    return added


def verify_with_witnesses(store: ArchiveStore, keyring: Any, records: list[WitnessRecord],
                          **options: Any) -> Any:
    """``verify_archive`` held to witnesses' records: their anchors in every chain's walk,
    and :func:`apply_records` after."""
    from sealtrail.verify import verify_archive

    anchors: dict[str, list[Anchor]] = {}
    for record in records:
        for chain_id, found in record.anchors().items():
            anchors.setdefault(chain_id, []).extend(found)
    report = verify_archive(store, keyring, anchors=anchors, **options)
    apply_records(store, report, records)
    return report
