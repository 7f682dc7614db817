"""The tamper matrix: every attack in ATTACKS changes an archive built by
helpers/archive_builder.py the way an attacker with write access to the archive (and, where
said, a stolen key) could, and says where verify must report the first break: chain,
finding kind, segment and seq. test_verify_tamper.py runs them against the verifier
library, test_verify_cli.py through the `sealtrail verify` command, test_one_verifier.py
through every other reader of the archive, test_fast_segments.py with the native reader.

Every attack also runs on a batch-sealed archive (record format 2, ``batch=BATCH``): where
a broken entry signature shows moves to the seal of the entry's batch, which each attack
names (``BuiltArchive.signed_by``, :func:`_signed_from`). BATCH_ATTACKS are the attacks
on batch seals themselves (record format 2 only).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from helpers.archive_builder import (
    BuiltArchive,
    build_archive,
    forge_checkpoint,
    keyring_of,
    reseal,
    segment_bytes,
    signer,
    write_keyring,
    write_object,
)
from sealtrail.core import layout
from sealtrail.core.canonical import canonical_json
from sealtrail.core.chain import genesis_hash
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.hashing import CHECKPOINT_DOMAIN, sha256
from sealtrail.keys import load_keyring
from sealtrail.verify import ArchiveReport, Finding, verify_archive

K = 4  # records per segment; segment i holds seq 4i..4i+3
#: Entries per batch on a batch-sealed archive: with K = 4, seq 4i and 4i+1 are unsigned,
#: 4i+2 seals a batch that reached its size and 4i+3 one closed by the segment's end.
BATCH = 3


@dataclass(frozen=True)
class Broken:
    """Where verify must say the evidence first breaks."""

    chain: int
    kind: str
    segment: int
    seq: int | None
    text: str = ""  # a phrase the finding's message must contain


@dataclass(frozen=True)
class Attack:
    build: Callable[..., BuiltArchive]  # (base, batch=None)
    tamper: Callable[[BuiltArchive], Broken | list[Broken]]


def _standard(base: Path, batch: int | None = None) -> BuiltArchive:
    return build_archive(base, chains=2, segments=3, records=K, batch=batch)


def _two_keys(base: Path, batch: int | None = None) -> BuiltArchive:
    return build_archive(base, chains=2, segments=3, records=K, separate_archiver_key=True,
                         batch=batch)


def _gap(base: Path, batch: int | None = None) -> BuiltArchive:
    return build_archive(base, chains=2, segments=3, records=K, gap=(0, 6, 3), batch=batch)


def _rotated(base: Path, batch: int | None = None) -> BuiltArchive:
    return build_archive(base, chains=2, segments=4, records=K, rotate_at=2, batch=batch)


def _batched(base: Path, batch: int | None = BATCH) -> BuiltArchive:
    """Batch seals, the archiver's key apart from the sealer's (and stolen, in the attacks
    that restate a checkpoint)."""
    return _two_keys(base, batch=batch or BATCH)


def _signed_from(records: list[dict], index: int) -> int:
    """The seq of the first signed entry from ``records[index]`` on: where a signature
    that covers ``records[index]`` is checked (itself when entry-signed, its batch's seal)."""
    return next(r["seq"] for r in records[index:] if r["signature"])


def _rewrite_segment(b: BuiltArchive, chain: int, index: int, records: list[dict]) -> bytes:
    data = segment_bytes(b.chain_ids[chain], records)
    write_object(b.segment_path(chain, index), data)
    return data


def _alter_event(record: dict) -> None:
    """What an attacker changes: who did it and how it ended (or why it was rejected)."""
    if record["event"] is None:
        record["rejection"]["detail"] = "harmless test traffic"
        return
    record["event"]["outcome"] = "SUCCESS"
    record["event"]["actor"]["id"] = "user-innocent"


# -- the attacks -------------------------------------------------------------------------


def flip_byte_middle(b: BuiltArchive) -> Broken:
    """Flip one bit in the middle of a segment file."""
    path = b.segment_path(0, 1)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    write_object(path, bytes(data))
    return Broken(0, "modified", 1, None, "segment bytes do not match checkpoint 1")


def flip_byte_header(b: BuiltArchive) -> Broken:
    """Flip one bit in a segment's Avro header metadata (the records still decode)."""
    path = b.segment_path(1, 2)
    data = bytearray(path.read_bytes())
    at = data.index(b"sealtrail.chain_id") + len("sealtrail.chain_id") + 2
    data[at] ^= 0x01
    write_object(path, bytes(data))
    return Broken(1, "modified", 2, 8, "segment bytes do not match checkpoint 2")


def delete_segment(b: BuiltArchive) -> Broken:
    """Delete a segment in the middle of a chain."""
    b.segment_path(1, 1).unlink()
    return Broken(1, "missing", 1, 4, "segment is missing")


def swap_segments(b: BuiltArchive) -> Broken:
    """Swap two segments of one chain (each keeps its own file name)."""
    one, two = b.segment_path(0, 1), b.segment_path(0, 2)
    a, c = one.read_bytes(), two.read_bytes()
    write_object(one, c)
    write_object(two, a)
    return Broken(0, "reordered", 1, 4, "holds seq 8..11")


def swap_checkpoints(b: BuiltArchive) -> Broken:
    """Swap two checkpoints of one chain."""
    one, two = b.checkpoint_path(0, 1), b.checkpoint_path(0, 2)
    a, c = one.read_bytes(), two.read_bytes()
    write_object(one, c)
    write_object(two, a)
    return Broken(0, "reordered", 1, 4, "holds checkpoint 2")


def truncate_segment(b: BuiltArchive) -> Broken:
    """Cut a segment file in half."""
    path = b.segment_path(0, 2)
    data = path.read_bytes()
    write_object(path, data[: len(data) // 2])
    return Broken(0, "truncated", 2, 8, "segment bytes do not match checkpoint 2")


def drop_last_entry(b: BuiltArchive) -> Broken:
    """Rewrite a segment without its last entry (a valid, shorter segment)."""
    records = b.read_records(0, 1)
    _rewrite_segment(b, 0, 1, records[:-1])
    return Broken(0, "truncated", 1, 7, "ends at seq 6")


def drop_middle_entry(b: BuiltArchive) -> Broken:
    """Rewrite a segment without one of its middle entries."""
    records = b.read_records(1, 1)
    del records[1]
    _rewrite_segment(b, 1, 1, records)
    return Broken(1, "modified", 1, 5, "expected seq 5, found 6")


def delete_middle_checkpoint(b: BuiltArchive) -> Broken:
    """Delete a checkpoint in the middle of a chain."""
    b.checkpoint_path(0, 1).unlink()
    return Broken(0, "missing", 1, 4, "checkpoint 1 is missing")


def garbage_checkpoint(b: BuiltArchive) -> Broken:
    """Replace a checkpoint with bytes that are not a checkpoint."""
    write_object(b.checkpoint_path(1, 2), b"{\"format\": \"sealtrail-checkpoint/v1\"}")
    return Broken(1, "malformed", 2, 8, "checkpoint 2")


def checkpoint_wrong_types(b: BuiltArchive) -> Broken:
    """A checkpoint whose hash is consistent but whose created_at is a string."""
    doc = json.loads(b.checkpoint_path(0, 1).read_bytes())
    doc["checkpoint"]["created_at"] = str(doc["checkpoint"]["created_at"])
    doc["checkpoint_hash"] = sha256(CHECKPOINT_DOMAIN, canonical_json(doc["checkpoint"])).hex()
    write_object(b.checkpoint_path(0, 1), json.dumps(doc).encode())
    return Broken(0, "malformed", 1, 4, "checkpoint 1")


def checkpoint_edited(b: BuiltArchive) -> Broken:
    """Edit a checkpoint's statement (shrink its range) without re-signing it."""
    doc = json.loads(b.checkpoint_path(0, 2).read_bytes())
    doc["checkpoint"]["last_seq"] -= 2
    write_object(b.checkpoint_path(0, 2), json.dumps(doc).encode())
    return Broken(0, "signature", 2, 8, "does not match its content")


def checkpoint_reserialised(b: BuiltArchive) -> Broken:
    """Re-serialise a checkpoint with the same meaning (upper-case hex, indentation)."""
    doc = json.loads(b.checkpoint_path(0, 1).read_bytes())
    doc["signature"] = doc["signature"].upper()
    write_object(b.checkpoint_path(0, 1), json.dumps(doc, indent=1).encode())
    return Broken(0, "modified", 1, 4, "not in canonical form")


def checkpoint_resigned_same_key_id(b: BuiltArchive) -> Broken:
    """Re-sign a checkpoint with another key, keeping the trusted key's id."""
    original = b.read_checkpoint(1, 1)
    forged = forge_checkpoint(original, signer("attacker"), key_id=original.checkpoint.key_id)
    write_object(b.checkpoint_path(1, 1), forged)
    return Broken(1, "signature", 1, 4, "is invalid")


def checkpoint_resigned_own_key_id(b: BuiltArchive) -> Broken:
    """Re-sign a checkpoint with another key under that key's own id."""
    forged = forge_checkpoint(b.read_checkpoint(1, 1), signer("attacker"))
    write_object(b.checkpoint_path(1, 1), forged)
    return Broken(1, "unknown-key", 1, 4, "not in the trusted keyring")


def stolen_archiver_key_resealed_entries(b: BuiltArchive) -> Broken:
    """With the archiver's (trusted) key stolen, alter an entry, re-hash and re-sign the
    entries with an untrusted key, and restate the checkpoint consistently."""
    records = b.read_records(0, 1)
    _alter_event(records[1])
    reseal(records, 1, signer("attacker"))
    data = _rewrite_segment(b, 0, 1, records)
    forged = forge_checkpoint(b.read_checkpoint(0, 1), b.archivers[0], records=records,
                              segment=data, before=b.frontier_before(0, 1))
    write_object(b.checkpoint_path(0, 1), forged)
    return Broken(0, "unknown-key", 1, _signed_from(records, 1), "not in the trusted keyring")


def stolen_archiver_key_sealer_key_id(b: BuiltArchive) -> Broken:
    """Like the attack above, but the entries claim the sealer's key id."""
    records = b.read_records(0, 1)
    _alter_event(records[2])
    reseal(records, 2, signer("attacker"), key_id=b.sealers[0].key_id)
    data = _rewrite_segment(b, 0, 1, records)
    forged = forge_checkpoint(b.read_checkpoint(0, 1), b.archivers[0], records=records,
                              segment=data, before=b.frontier_before(0, 1))
    write_object(b.checkpoint_path(0, 1), forged)
    return Broken(0, "signature", 1, _signed_from(records, 2), "is invalid")


def entry_rehashed_signature_kept(b: BuiltArchive) -> Broken:
    """Change an entry's content and recompute its entry_hash (and the chain after it),
    keeping its signature; the checkpoint is restated with the stolen archiver key."""
    records = b.read_records(1, 2)
    _alter_event(records[1])
    reseal(records, 1)
    data = _rewrite_segment(b, 1, 2, records)
    forged = forge_checkpoint(b.read_checkpoint(1, 2), b.archivers[0], records=records,
                              segment=data, before=b.frontier_before(1, 2))
    write_object(b.checkpoint_path(1, 2), forged)
    return Broken(1, "signature", 2, _signed_from(records, 1), "is invalid")


def entry_rehashed_checkpoint_untouched(b: BuiltArchive) -> Broken:
    """Change an entry and recompute its entry_hash, leaving the checkpoint as it was."""
    records = b.read_records(1, 2)
    _alter_event(records[3])
    reseal(records, 3)
    _rewrite_segment(b, 1, 2, records)
    return Broken(1, "modified", 2, 11, "signature by")


def entry_edited_only(b: BuiltArchive) -> Broken:
    """Change an entry's content and nothing else."""
    records = b.read_records(0, 0)
    _alter_event(records[2])
    _rewrite_segment(b, 0, 0, records)
    return Broken(0, "modified", 0, 2, "does not match its content")


def entry_inserted(b: BuiltArchive) -> Broken:
    """Insert an entry in the middle of a segment, re-seal the rest and re-sign the
    segment's checkpoint with an untrusted key."""
    records = b.read_records(0, 1)
    extra = copy.deepcopy(records[1])
    extra["event"]["event_id"] = "forged-0001"
    extra["event"]["action"] = "approve"
    records.insert(2, extra)
    reseal(records, 2, signer("attacker"))
    data = _rewrite_segment(b, 0, 1, records)
    forged = forge_checkpoint(b.read_checkpoint(0, 1), signer("attacker"), records=records,
                              segment=data, before=b.frontier_before(0, 1))
    write_object(b.checkpoint_path(0, 1), forged)
    if b.batch:  # the copy is unsigned: its repeated raw offset shows before any seal
        return Broken(0, "unknown-key", 1, 6, "raw offset 5 follows 5")
    return Broken(0, "unknown-key", 1, 6, "seq 6")


def segment_from_other_chain(b: BuiltArchive) -> Broken:
    """Substitute a segment with the segment at the same index of another chain."""
    write_object(b.segment_path(1, 1), b.segment_path(0, 1).read_bytes())
    return Broken(1, "modified", 1, 4, f"belongs to chain '{b.chain_ids[0]}'")


def unreferenced_tail_segment(b: BuiltArchive) -> Broken:
    """Delete the last checkpoint, leaving its segment without one."""
    b.checkpoint_path(1, 2).unlink()
    return Broken(1, "unreferenced", 2, 8, "not covered by any checkpoint")


def stray_segment(b: BuiltArchive) -> Broken:
    """Drop an extra segment file (a copy of segment 0) at an unused index."""
    write_object(b.segment_path(0, 7), b.segment_path(0, 0).read_bytes())
    return Broken(0, "unreferenced", 7, 0, "not covered by any checkpoint")


def keyring_without_signer(b: BuiltArchive) -> list[Broken]:
    """Verify against a keyring that trusts another key only."""
    write_keyring(b.keyring_path, keyring_of(signer("someone-else")))
    return [Broken(c, "unknown-key", 0, b.signed_by(c, 0), "not in the trusted keyring")
            for c in (0, 1)]


def offset_gap(b: BuiltArchive) -> Broken:
    """Raw offsets 6..8 of partition 0 never reached the chain (built with a gap)."""
    return Broken(0, "completeness", 1, 6, "offsets 6..8 of partition 0")


def key_expired(b: BuiltArchive) -> list[Broken]:
    """The keyring closes the key's window before the records of segment 1 were ingested."""
    key = b.sealers[0]
    closes = b.read_checkpoint(0, 0).checkpoint.created_at
    write_keyring(b.keyring_path, keyring_of(key, windows={key.key_id: (0, closes)}))
    return [Broken(c, "signature", 1, b.signed_by(c, 4), "validity window") for c in (0, 1)]


def sealer_key_expired(b: BuiltArchive) -> list[Broken]:
    """Only the sealer's key window closes before segment 1; checkpoints stay valid."""
    sealer, archiver = b.sealers[0], b.archivers[0]
    closes = b.read_checkpoint(0, 0).checkpoint.created_at
    write_keyring(b.keyring_path,
                  keyring_of(sealer, archiver, windows={sealer.key_id: (0, closes)}))
    return [Broken(c, "signature", 1, b.signed_by(c, 4), "validity window") for c in (0, 1)]


def retired_key_forges_after_rotation(b: BuiltArchive) -> Broken:
    """With the retired key stolen after a rotation, re-seal and re-sign the segment
    written after the rotation under the old key."""
    old = b.sealers[0]
    records = b.read_records(0, 2)
    _alter_event(records[0])
    reseal(records, 0, old)
    data = _rewrite_segment(b, 0, 2, records)
    forged = forge_checkpoint(b.read_checkpoint(0, 2), old, records=records, segment=data,
                              before=b.frontier_before(0, 2))
    write_object(b.checkpoint_path(0, 2), forged)
    return Broken(0, "signature", 2, _signed_from(records, 0), "validity window")


def forged_chain_with_planted_keys(b: BuiltArchive) -> Broken:
    """Add a whole chain signed by the attacker, with the attacker's keyring planted in
    the archive next to it (keys found in the archive are never trusted)."""
    attacker = signer("attacker")
    src = b.read_records(0, 0)
    forged_id = "audit.raw.9.00000000deadbeef"
    for r in src:
        r["chain_id"] = forged_id
    src[0]["prev_hash"] = genesis_hash(forged_id)
    reseal(src, 0, attacker)
    data = segment_bytes(forged_id, src)
    original = b.read_checkpoint(0, 0).checkpoint
    cp = replace(original, chain_id=forged_id, segment_key=layout.segment_key(forged_id, 0))
    forged = forge_checkpoint(SignedCheckpoint(cp, b"", b""), attacker, records=src,
                              segment=data)
    write_object(b.path(layout.segment_key(forged_id, 0)), data)
    write_object(b.path(layout.checkpoint_key(forged_id, 0)), forged)
    planted = json.dumps(keyring_of(attacker).to_json()).encode()
    write_object(b.root / "keys" / "public.json", planted)
    write_object(b.path(f"chains/{forged_id}/public.json"), planted)
    b.chain_ids.append(forged_id)
    return Broken(2, "unknown-key", 0, _signed_from(src, 0), "not in the trusted keyring")


ATTACKS: dict[str, Attack] = {
    fn.__name__: Attack(build, fn)  # type: ignore[arg-type]
    for build, fns in [
        (_standard, [flip_byte_middle, flip_byte_header, delete_segment, swap_segments,
                     swap_checkpoints, truncate_segment, drop_last_entry, drop_middle_entry,
                     delete_middle_checkpoint, garbage_checkpoint, checkpoint_wrong_types,
                     checkpoint_edited, checkpoint_reserialised,
                     checkpoint_resigned_same_key_id,
                     checkpoint_resigned_own_key_id, entry_rehashed_checkpoint_untouched,
                     entry_edited_only, entry_inserted, segment_from_other_chain,
                     unreferenced_tail_segment, stray_segment, keyring_without_signer,
                     key_expired, forged_chain_with_planted_keys]),
        (_two_keys, [stolen_archiver_key_resealed_entries, stolen_archiver_key_sealer_key_id,
                     entry_rehashed_signature_kept, sealer_key_expired]),
        (_gap, [offset_gap]),
        (_rotated, [retired_key_forges_after_rotation]),
    ]
    for fn in fns
}


def run_attack(name: str, base: Path, batch: int | None = None
               ) -> tuple[BuiltArchive, list[Broken]]:
    """Build the attack's archive under ``base`` (with batch seals of up to ``batch``
    entries when given), tamper with it, return what must break."""
    attack = ATTACKS[name]
    built = attack.build(base, batch=batch)
    expected = attack.tamper(built)
    return built, expected if isinstance(expected, list) else [expected]


def check_finding(built: BuiltArchive, finding: Finding | dict, want: Broken) -> None:
    """Assert that ``finding`` (a Finding or its JSON form) is the break ``want`` names."""
    f = finding if isinstance(finding, dict) else finding.__dict__
    chain_id = built.chain_ids[want.chain]
    segment = layout.segment_key(chain_id, want.segment)
    assert f["chain_id"] == chain_id
    assert f["kind"] == want.kind, f
    assert f["segment"] == segment, f
    if want.seq is None:  # where a flipped bit lands decides which entry breaks first
        assert want.segment * K <= f["seq"] < (want.segment + 1) * K, f
    else:
        assert f["seq"] == want.seq, f
    assert want.text in f["message"], f
    if isinstance(finding, Finding):
        text = str(finding)
        assert f"chain {chain_id}" in text and f"segment {segment}" in text
        assert f"seq {f['seq']}" in text


def verify_built(built: BuiltArchive) -> ArchiveReport:
    return verify_archive(built.store, load_keyring(built.keyring_path))
