"""G3 tamper evidence and G4 pinned trust, tried against the verifier library.

Every attack in ATTACKS changes an archive built by tests/archive_builder.py the way an
attacker with write access to the archive (and, where said, a stolen key) could, and says
where verify must report the first break: chain, finding kind, segment and seq.
test_verify_cli.py runs the same attacks through the `sealtrail verify` command.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from archive_builder import (
    T0,
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
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sealtrail.core import layout
from sealtrail.core.canonical import canonical_json
from sealtrail.core.chain import genesis_hash
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.core.hashing import CHECKPOINT_DOMAIN, sha256
from sealtrail.core.signing import Keyring
from sealtrail.keys import load_keyring
from sealtrail.verify import ArchiveReport, Finding, verify_archive

K = 4  # records per segment; segment i holds seq 4i..4i+3


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
    build: Callable[[Path], BuiltArchive]
    tamper: Callable[[BuiltArchive], Broken | list[Broken]]


def _standard(base: Path) -> BuiltArchive:
    return build_archive(base, chains=2, segments=3, records=K)


def _two_keys(base: Path) -> BuiltArchive:
    return build_archive(base, chains=2, segments=3, records=K, separate_archiver_key=True)


def _gap(base: Path) -> BuiltArchive:
    return build_archive(base, chains=2, segments=3, records=K, gap=(0, 6, 3))


def _rotated(base: Path) -> BuiltArchive:
    return build_archive(base, chains=2, segments=4, records=K, rotate_at=2)


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
    return Broken(0, "unknown-key", 1, 5, "not in the trusted keyring")


def stolen_archiver_key_sealer_key_id(b: BuiltArchive) -> Broken:
    """Like the attack above, but the entries claim the sealer's key id."""
    records = b.read_records(0, 1)
    _alter_event(records[2])
    reseal(records, 2, signer("attacker"), key_id=b.sealers[0].key_id)
    data = _rewrite_segment(b, 0, 1, records)
    forged = forge_checkpoint(b.read_checkpoint(0, 1), b.archivers[0], records=records,
                              segment=data, before=b.frontier_before(0, 1))
    write_object(b.checkpoint_path(0, 1), forged)
    return Broken(0, "signature", 1, 6, "is invalid")


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
    return Broken(1, "signature", 2, 9, "is invalid")


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
    return [Broken(c, "unknown-key", 0, 0, "not in the trusted keyring") for c in (0, 1)]


def offset_gap(b: BuiltArchive) -> Broken:
    """Raw offsets 6..8 of partition 0 never reached the chain (built with a gap)."""
    return Broken(0, "completeness", 1, 6, "offsets 6..8 of partition 0")


def key_expired(b: BuiltArchive) -> list[Broken]:
    """The keyring closes the key's window before the records of segment 1 were ingested."""
    key = b.sealers[0]
    closes = b.read_checkpoint(0, 0).checkpoint.created_at
    write_keyring(b.keyring_path, keyring_of(key, windows={key.key_id: (0, closes)}))
    return [Broken(c, "signature", 1, 4, "validity window") for c in (0, 1)]


def sealer_key_expired(b: BuiltArchive) -> list[Broken]:
    """Only the sealer's key window closes before segment 1; checkpoints stay valid."""
    sealer, archiver = b.sealers[0], b.archivers[0]
    closes = b.read_checkpoint(0, 0).checkpoint.created_at
    write_keyring(b.keyring_path,
                  keyring_of(sealer, archiver, windows={sealer.key_id: (0, closes)}))
    return [Broken(c, "signature", 1, 4, "validity window") for c in (0, 1)]


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
    return Broken(0, "signature", 2, 8, "validity window")


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
    return Broken(2, "unknown-key", 0, 0, "not in the trusted keyring")


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


def run_attack(name: str, base: Path) -> tuple[BuiltArchive, list[Broken]]:
    """Build the attack's archive under ``base``, tamper with it, return what must break."""
    attack = ATTACKS[name]
    built = attack.build(base)
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


# -- the tests ---------------------------------------------------------------------------


def test_intact_archive_verifies(tmp_path: Path) -> None:
    """An untouched archive verifies, with every entry, event and rejection counted."""
    built = _standard(tmp_path)
    report = verify_built(built)
    assert report.ok
    assert [c.chain_id for c in report.chains] == built.chain_ids
    for chain in report.chains:
        assert (chain.segments, chain.entries, chain.events) == (3, 12, 10)
        assert chain.rejections == {"UNKNOWN_SCHEMA": 2}
        assert chain.head_seq == 11
        assert chain.head_hash == built.records[chain.chain_id][-1]["entry_hash"].hex()


@pytest.mark.parametrize("build", [_two_keys, _rotated, _gap], ids=["two-keys", "rotated",
                                                                     "gap"])
def test_variant_archives_verify_or_only_report_the_gap(tmp_path: Path, build) -> None:
    """Archives with separate archiver keys or a key rotation verify; a gap is the only
    finding of its archive (rotated keys keep old signatures verifiable, G4)."""
    report = verify_built(build(tmp_path))
    findings = [f for c in report.chains for f in c.findings]
    if build is _gap:
        assert [f.kind for f in findings] == ["completeness"]
    else:
        assert report.ok, findings


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_detected(tmp_path: Path, name: str) -> None:
    """Each attack breaks exactly the chains it touched, at the named segment and seq."""
    built, expected = run_attack(name, tmp_path)
    report = verify_built(built)
    assert not report.ok
    by_chain = {c.chain_id: c for c in report.chains}
    assert sorted(by_chain) == sorted(built.chain_ids)
    broken = {built.chain_ids[w.chain]: w for w in expected}
    for chain_id, chain in by_chain.items():
        if chain_id not in broken:
            assert chain.ok, chain.findings
            continue
        assert len(chain.findings) == 1, chain.findings
        check_finding(built, chain.findings[0], broken[chain_id])
        want = broken[chain_id]
        if want.kind not in ("unreferenced", "completeness") and want.seq is not None:
            # Nothing at or after the break is counted as verified. (A hole in the raw
            # offsets is not a break of the chain: verify checks on, to name every hole.)
            assert chain.head_seq < want.seq


def test_checks_skip_entry_signatures_but_not_checkpoints(tmp_path: Path) -> None:
    """With check_signatures=False, a re-signed checkpoint is still caught."""
    built, [want] = run_attack("checkpoint_resigned_own_key_id", tmp_path)
    report = verify_archive(built.store, built.keyring, check_signatures=False)
    check_finding(built, report.chains[want.chain].findings[0], want)


def test_tail_truncation_is_caught_by_the_signed_index(tmp_path: Path) -> None:
    """Deleting the newest segment and checkpoint of a chain leaves a valid-looking shorter
    chain, but the newest signed archive index lists the removed checkpoint: rollback."""
    built = _standard(tmp_path)
    built.segment_path(0, 2).unlink()
    built.checkpoint_path(0, 2).unlink()
    report = verify_built(built)
    assert not report.ok and report.index_seq == 2
    [finding] = report.chains[0].findings
    assert (finding.kind, finding.segment, finding.seq) == (
        "rollback", built.checkpoint_key(0, 2), 8)
    assert "signed archive index 2 recorded checkpoint 2" in finding.message
    assert report.chains[1].ok


def test_tail_truncation_with_the_newest_index_needs_a_witness(tmp_path: Path) -> None:
    """Known limit: removing the newest index too, so that the newest index left is one
    written before the removed checkpoint, leaves an archive that verifies (shorter).
    Only a record kept outside the archive (verify --witness) catches that; see
    test_witness.py."""
    built = _standard(tmp_path)
    built.segment_path(0, 2).unlink()
    built.checkpoint_path(0, 2).unlink()
    built.path(layout.index_key(2)).unlink()
    report = verify_built(built)
    assert report.ok and report.index_seq == 1
    heads = {c.chain_id: c.head_seq for c in report.chains}
    assert heads == {built.chain_ids[0]: 7, built.chain_ids[1]: 11}


def test_first_break_stops_the_chain_but_not_the_archive(tmp_path: Path) -> None:
    """Two chains broken in different ways are both reported, each at its own first break."""
    built = _standard(tmp_path)
    built.segment_path(0, 2).unlink()
    checkpoint_resigned_own_key_id(built)
    built.segment_path(1, 2).unlink()  # after chain 1's first break: not reported
    report = verify_built(built)
    first, second = report.chains
    check_finding(built, first.findings[0], Broken(0, "missing", 2, 8))
    check_finding(built, second.findings[0], Broken(1, "unknown-key", 1, 4))
    assert [len(first.findings), len(second.findings)] == [1, 1]


def test_junk_chain_directory_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    """A directory under chains/ that is not a usable chain id is reported as malformed."""
    built = _standard(tmp_path)
    write_object(built.root / "chains" / ".sealtrail-tmp-x" / "segments" / "a.avro", b"x")
    report = verify_built(built)
    junk = [c for c in report.chains if c.chain_id == ".sealtrail-tmp-x"]
    assert [f.kind for f in junk[0].findings] == ["malformed"]
    assert all(c.ok for c in report.chains if c is not junk[0])


def test_keyring_file_round_trips(tmp_path: Path) -> None:
    """The builder's keyring file is what sealtrail.keys loads, windows included."""
    built = _rotated(tmp_path)
    loaded = load_keyring(built.keyring_path)
    assert isinstance(loaded, Keyring)
    assert loaded == built.keyring
    old = loaded.keys[built.sealers[0].key_id]
    assert old.not_after is not None and old.not_after > T0


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> BuiltArchive:
    return _standard(tmp_path_factory.mktemp("pristine"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_flipped_bit_in_any_object_is_detected(
    pristine: BuiltArchive, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Flipping any bit of any segment or checkpoint file breaks that chain at that segment."""
    keys = sorted(k for c in pristine.chain_ids
                  for k in pristine.store.list(f"{layout.CHAINS}{c}/"))
    key = data.draw(st.sampled_from(keys), label="object")
    size = pristine.path(key).stat().st_size
    at = data.draw(st.integers(0, size - 1), label="byte")
    bit = data.draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128]), label="bit")
    base = tmp_path_factory.mktemp("flip")
    shutil.copytree(pristine.root, base / "archive")
    built = replace(pristine, root=base / "archive")
    content = bytearray(built.path(key).read_bytes())
    content[at] ^= bit
    write_object(built.path(key), bytes(content))

    report = verify_archive(built.store, pristine.keyring)
    chain_id = key.split("/")[1]
    index = layout.parse_index(key)
    for chain in report.chains:
        if chain.chain_id != chain_id:
            assert chain.ok, chain.findings
            continue
        assert len(chain.findings) == 1, chain.findings
        finding = chain.findings[0]
        assert finding.segment == layout.segment_key(chain_id, index), finding
        assert index * K <= finding.seq < (index + 1) * K, finding
    shutil.rmtree(base)

