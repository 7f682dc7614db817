"""Attacks on batch seals (record format 2, docs/format.md "Signatures"; the rules of
sealtrail.core.chain.Seals): what an attacker with write access to the archive, and the
archiver's key (the archive is built with a separate one), can do to a batch-sealed chain.

Each attack rewrites chain 0's segment 1 (seq 4..7: 4 and 5 unsigned, 6 the seal of batch
4..6, 7 the seal of batch 7..7, see helpers.tamper.BATCH) and restates its checkpoint with
the stolen archiver key, so that only the entries' seals can show the change; or changes
the keyring. It returns where both verifiers must report the first break, as in
helpers.tamper.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from helpers.archive_builder import (
    BuiltArchive,
    forge_checkpoint,
    keyring_of,
    reseal,
    segment_bytes,
    signer,
    write_keyring,
    write_object,
)
from helpers.tamper import BATCH, Attack, Broken, _alter_event, _batched
from sealtrail.core import merkle
from sealtrail.core.chain import BATCH_SEAL_TAG, batch_statement, seal_batch
from sealtrail.core.hashing import SIG_ENTRY_DOMAIN

__all__ = ["BATCH_ATTACKS", "restate", "run_batch_attack"]

Records = list[dict]


def restate(b: BuiltArchive, records: Records, chain: int = 0, index: int = 1) -> None:
    """Write ``records`` as segment ``index`` of ``chain`` with its checkpoint restated
    for them and signed by the (stolen) archiver key."""
    data = segment_bytes(b.chain_ids[chain], records)
    write_object(b.segment_path(chain, index), data)
    write_object(b.checkpoint_path(chain, index), forge_checkpoint(
        b.read_checkpoint(chain, index), b.archivers[0], records=records, segment=data,
        before=b.frontier_before(chain, index)))


def _attack(change: Callable[[BuiltArchive, Records], Broken]
            ) -> Callable[[BuiltArchive], Broken]:
    """An attack that changes segment 1 of chain 0 in place and restates it."""
    def tamper(b: BuiltArchive) -> Broken:
        records = b.read_records(0, 1)
        assert [len(r["signature"]) for r in records] == [0, 0, 65, 65], "layout changed"
        want = change(b, records)
        restate(b, records)
        return want
    tamper.__name__ = change.__name__
    tamper.__doc__ = change.__doc__
    return tamper


def strip_middle_seal(b: BuiltArchive, records: Records) -> Broken:
    """Empty the seal of batch 4..6: seq 6 becomes unsigned, seal 7 now ends batch 4..7,
    which it does not sign."""
    records[2]["signature"] = b""
    return Broken(0, "signature", 1, 7, "is invalid (the batch seal of seq 4..7)")


def strip_last_seal(b: BuiltArchive, records: Records) -> Broken:
    """Empty the segment's last seal: the segment ends with unsigned entries."""
    records[3]["signature"] = b""
    return Broken(0, "signature", 1, 7, "no batch seal after them")


def move_seal(b: BuiltArchive, records: Records) -> Broken:
    """Move the seal of batch 4..6 one entry back (seq 5 claims to close the batch)."""
    records[1]["signature"], records[2]["signature"] = records[2]["signature"], b""
    return Broken(0, "signature", 1, 5, "the batch seal of seq 4..5")


def seal_swapped_for_entry_signature(b: BuiltArchive, records: Records) -> Broken:
    """Replace the seal of batch 4..6 by a valid entry signature (the sealer's key) over
    the same entry: an entry signature does not close a batch."""
    records[2]["signature"] = b.sealers[0].sign(SIG_ENTRY_DOMAIN + records[2]["entry_hash"])
    return Broken(0, "signature", 1, 6, "carries an entry signature, not a batch seal")


def _span_seal(first: int, last: int) -> Callable[[BuiltArchive, Records], Broken]:
    def change(b: BuiltArchive, records: Records) -> Broken:
        seal = records[2]
        hashes = [r["entry_hash"] for r in records if first <= r["seq"] <= last]
        statement = batch_statement(first, last, seal["ingested_at"], merkle.root(hashes),
                                    seal["entry_hash"])
        seal["signature"] = BATCH_SEAL_TAG + b.sealers[0].sign(statement)
        return Broken(0, "signature", 1, 6, "is invalid (the batch seal of seq 4..6)")
    change.__name__ = f"seal_for_seq_{first}_to_{last}"
    change.__doc__ = (f"Seal seq 6 with the sealer's key, but over a statement of seq "
                      f"{first}..{last} (a seal made for another span).")
    return change


def unsigned_entry_edited(b: BuiltArchive, records: Records) -> Broken:
    """Alter the content of unsigned seq 5 and nothing else."""
    _alter_event(records[1])
    return Broken(0, "hash", 1, 5, "does not match its content")


def unsigned_entry_rehashed(b: BuiltArchive, records: Records) -> Broken:
    """Alter unsigned seq 5, recompute its entry hash and the links after it; the batch
    seal kept no longer signs the batch."""
    _alter_event(records[1])
    reseal(records, 1)
    return Broken(0, "signature", 1, 6, "is invalid (the batch seal of seq 4..6)")


def truncated_after_unsigned(b: BuiltArchive, records: Records) -> Broken:
    """Cut the segment after unsigned seq 5 (its seal and seq 7 gone)."""
    del records[2:]
    return Broken(0, "signature", 1, 4, "seq 4..5 are unsigned and no batch seal")


def _seal_bytes(name: str, make: Callable[[bytes], bytes]
                ) -> Callable[[BuiltArchive, Records], Broken]:
    def change(b: BuiltArchive, records: Records) -> Broken:
        records[2]["signature"] = make(records[2]["signature"])
        return Broken(0, "signature", 1, 6, f"a signature of "
                      f"{len(records[2]['signature'])} bytes is neither")
    change.__name__ = name
    change.__doc__ = "The seal of batch 4..6 with other bytes: " + name.replace("_", " ")
    return change


def seal_without_its_tag(b: BuiltArchive, records: Records) -> Broken:
    """Drop the seal's tag byte: its 64 bytes read as an entry signature, which does not
    close the batch (and does not sign the entry statement either)."""
    records[2]["signature"] = records[2]["signature"][1:]
    return Broken(0, "signature", 1, 6, "carries an entry signature, not a batch seal")


def seal_by_unknown_key(b: BuiltArchive, records: Records) -> Broken:
    """Re-seal the segment's batches with the attacker's own key (under its own key id)."""
    reseal(records, 0, signer("attacker"))
    return Broken(0, "unknown-key", 1, 6, "not in the trusted keyring")


def seal_by_impostor_key(b: BuiltArchive, records: Records) -> Broken:
    """Re-seal batch 4..6 with the attacker's key under the sealer's key id."""
    seal_batch(4, [r["entry_hash"] for r in records[:3]], records[2], signer("attacker"))
    return Broken(0, "signature", 1, 6, "is invalid")


def seal_outside_key_window(b: BuiltArchive) -> list[Broken]:
    """The sealer's key window closes after seq 5 was ingested and before its seal (seq 6)
    was: the seal counts at sealed_at, however early the batch's entries were."""
    sealer, archiver = b.sealers[0], b.archivers[0]
    records = b.read_records(0, 1)
    closes = records[1]["ingested_at"]
    write_keyring(b.keyring_path,
                  keyring_of(sealer, archiver, windows={sealer.key_id: (0, closes)}))
    return [Broken(c, "signature", 1, 6, "validity window") for c in (0, 1)]


BATCH_ATTACKS: dict[str, Attack] = {
    fn.__name__: Attack(_batched, fn) for fn in [
        *(_attack(change) for change in [
            strip_middle_seal, strip_last_seal, move_seal, seal_swapped_for_entry_signature,
            _span_seal(5, 6), _span_seal(4, 7), _span_seal(0, 6), unsigned_entry_edited,
            unsigned_entry_rehashed, truncated_after_unsigned,
            _seal_bytes("seal_with_tag_0x02", lambda s: b"\x02" + s[1:]),
            _seal_bytes("seal_of_63_bytes", lambda s: s[:63]),
            _seal_bytes("seal_of_66_bytes", lambda s: s + b"\x00"),
            seal_without_its_tag,
            seal_by_unknown_key, seal_by_impostor_key]),
        seal_outside_key_window,
    ]
}


def run_batch_attack(name: str, base: Path) -> tuple[BuiltArchive, list[Broken]]:
    """Build a batch-sealed archive under ``base``, run attack ``name`` on it, return what
    must break."""
    attack = BATCH_ATTACKS[name]
    built = attack.build(base, batch=BATCH)
    expected = attack.tamper(built)
    return built, expected if isinstance(expected, list) else [expected]
