"""Witnesses: `sealtrail witness` records, outside the archive, what it checked, and
`verify --witness` holds the archive to it. What the archive cannot prove about itself (its
newest part removed whole, indexes included) is caught here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers.archive_builder import T0, BuiltArchive, build_archive, forge_checkpoint, write_object
from helpers.cli import sealtrail_bare as sealtrail
from helpers.compliance import CHAIN, CHAIN_B, KEYRING, ChainFeeder, writer

from sealtrail.archive import open_store
from sealtrail.core import layout, merkle
from sealtrail.core.note import (
    parse_checkpoint_body,
    parse_consistency_request,
    parse_note,
    parse_verifier_key,
    verify_cosignature,
)
from sealtrail.core.signing import Ed25519Signer
from sealtrail.core.witness import WitnessState
from sealtrail.verify import verify_archive
from sealtrail.witness import load_record, record_findings, run_witness

LATER = T0 + 10**9  # the witness's clock in these tests: after everything the builder wrote


def _tail_and_index_removed(built: BuiltArchive) -> None:
    """Remove chain 0's newest segment and checkpoint, and the newest index: what plain
    verify cannot see (test_verify_tamper.test_tail_truncation_with_the_newest_index...)."""
    built.segment_path(0, 2).unlink()
    built.checkpoint_path(0, 2).unlink()
    built.path(layout.index_key(2)).unlink()


def _record(root: Path, w: Path) -> dict[str, bytes]:
    return {str(p.relative_to(w)): p.read_bytes() for p in w.rglob("*") if p.is_file()}


def test_first_run_records_and_cosigns_every_chain_and_the_index(tmp_path: Path) -> None:
    """The witness creates its key, checks every chain from its start, cosigns each chain's
    head and the index log as C2SP tlog-cosignatures, and records them."""
    built = build_archive(tmp_path)
    w = tmp_path / "W"
    result = run_witness(built.store, built.keyring, w, name="w.example/1", now=LATER)
    assert result.ok and result.state is not None
    assert sorted(result.state.chains) == built.chain_ids
    assert result.state.index is not None and result.state.index.seq == 2
    name, kind, public = parse_verifier_key((w / "witness.vkey").read_text())
    assert (name, kind) == ("w.example/1", b"\x04")
    for chain_id in built.chain_ids:
        note = (w / "notes" / f"sealtrail_{chain_id}.note").read_bytes()
        cp, when = verify_cosignature(note, name, public)
        assert cp.origin == f"sealtrail/{chain_id}" and cp.tree_size == 12
        assert when == LATER // 10**6
        assert cp.root_hash == merkle.root([r["entry_hash"] for r in built.records[chain_id]])
        assert cp.extensions[0].startswith("sealtrail-checkpoint 2 ")
    body, _ = parse_note((w / "notes" / "index.note").read_bytes())
    assert parse_checkpoint_body(body).tree_size == 3  # indexes 0, 1, 2
    assert oct((w / "witness.key").stat().st_mode & 0o777) == "0o600"
    state = WitnessState.from_json(json.loads((w / "state.json").read_text()))
    assert state == result.state
    assert verify_archive(built.store, built.keyring,
                          anchors=load_record(w, []).anchors()).ok


def test_growth_is_checked_with_consistency_proofs(tmp_path: Path) -> None:
    """The next run checks an RFC 9162 consistency proof from each recorded tree (chains
    and index log) to the new one, and leaves it in proofs/ as a C2SP add-checkpoint body
    that verifies against the two cosigned notes."""
    store = open_store(tmp_path / "a")
    feed = ChainFeeder(writer(store))
    feed.segment(["auth.login"] * 3)
    w = tmp_path / "W"
    assert run_witness(store, KEYRING, w, name="w1", now=LATER).ok
    first = (w / "notes" / f"sealtrail_{CHAIN}.note").read_bytes()
    feed.segment(["auth.login"] * 5)
    second = run_witness(store, KEYRING, w, name="w1", now=LATER + 1)
    assert second.ok and second.proofs == 2  # the chain and the index log
    old_size, proof, note = parse_consistency_request(
        (w / "proofs" / f"sealtrail_{CHAIN}.txt").read_bytes())
    assert old_size == 3 and note == (w / "notes" / f"sealtrail_{CHAIN}.note").read_bytes()
    old_cp = parse_checkpoint_body(parse_note(first)[0])
    new_cp = parse_checkpoint_body(parse_note(note)[0])
    merkle.verify_consistency(old_cp.tree_size, new_cp.tree_size, old_cp.root_hash,
                              new_cp.root_hash, proof)
    assert new_cp.tree_size == 8
    _, iproof, inote = parse_consistency_request((w / "proofs" / "index.txt").read_bytes())
    assert parse_checkpoint_body(parse_note(inote)[0]).tree_size == 2 and iproof


def test_a_rollback_plain_verify_cannot_see_fails_against_the_witness(tmp_path: Path) -> None:
    """Tail and newest index removed: plain verify passes (the documented limit); verify
    --witness fails naming the chain and the seq the witness saw; the witness itself
    refuses, exits 1, and records nothing."""
    built = build_archive(tmp_path)
    w = tmp_path / "W"
    assert run_witness(built.store, built.keyring, w, name="w1", now=LATER).ok
    before = _record(tmp_path, w)
    _tail_and_index_removed(built)
    assert verify_archive(built.store, built.keyring).ok
    record = load_record(w, [])
    report = verify_archive(built.store, built.keyring, anchors=record.anchors())
    [finding] = report.chains[0].findings
    assert finding.kind == "rollback" and "witness w1" in finding.message
    assert "recorded checkpoint 2 (seq 11)" in finding.message
    extra = record_findings(built.store, record, built.chain_ids, 1)
    assert [(f.kind.value, f.segment) for f in extra] == [("rollback", layout.index_key(2))]
    again = run_witness(built.store, built.keyring, w, name="w1", now=LATER + 1)
    assert not again.ok and again.state is None
    assert {f.kind.value for f in again.findings} == {"rollback"}
    assert _record(tmp_path, w) == before  # nothing recorded
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path,
                     "--witness", w)
    assert proc.returncode == 1 and "rollback" in proc.stdout
    proc = sealtrail(tmp_path, "witness", built.root, "--keys", built.keyring_path,
                     "--state", w, "--name", "w1")
    assert proc.returncode == 1 and "REFUSED" in proc.stdout


def test_a_chain_rewritten_by_a_key_holder_is_a_fork(tmp_path: Path) -> None:
    """With the signing key, an attacker re-signs a chain's newest checkpoint (it still
    verifies on its own, and the index is edited to match): it is not what the witness
    cosigned."""
    built = build_archive(tmp_path)
    w = tmp_path / "W"
    assert run_witness(built.store, built.keyring, w, name="w1", now=LATER).ok
    original = built.read_checkpoint(1, 2)
    import dataclasses

    changed = dataclasses.replace(original.checkpoint,
                                  created_at=original.checkpoint.created_at + 1)
    write_object(built.checkpoint_path(1, 2), forge_checkpoint(
        type(original)(changed, b"", b""), built.archivers[0]))
    for seq in (2,):  # the attacker also drops the index that lists the old checkpoint
        built.path(layout.index_key(seq)).unlink()
    assert verify_archive(built.store, built.keyring).ok  # on its own, a valid archive
    report = verify_archive(built.store, built.keyring, anchors=load_record(w, []).anchors())
    assert [f.kind.value for f in report.chains[1].findings] == ["fork"]
    result = run_witness(built.store, built.keyring, w, name="w1", now=LATER + 1)
    assert {f.kind.value for f in result.findings} >= {"fork"} and result.state is None


def test_a_missing_chain_fails_the_witness_and_verify(tmp_path: Path) -> None:
    """A whole chain deleted (and every index, so plain verify would only see a v2 archive
    without index): the witness and verify --witness name the chain."""
    built = build_archive(tmp_path)
    w = tmp_path / "W"
    assert run_witness(built.store, built.keyring, w, name="w1", now=LATER).ok
    shutil.rmtree(built.root / "chains" / built.chain_ids[1])
    result = run_witness(built.store, built.keyring, w, name="w1", now=LATER + 1)
    assert ("missing", built.chain_ids[1]) in {(f.kind.value, f.chain_id)
                                               for f in result.findings}
    extra = record_findings(built.store, load_record(w, []), [built.chain_ids[0]], 2)
    assert [(f.kind.value, f.chain_id) for f in extra] == [("missing", built.chain_ids[1])]


def test_exported_notes_need_the_witness_key(tmp_path: Path) -> None:
    """verify --witness also takes the cosigned notes alone, but only with the witness's
    verifier key; notes under another key are refused (exit 2), never trusted."""
    built = build_archive(tmp_path)
    w = tmp_path / "W"
    assert run_witness(built.store, built.keyring, w, name="w1", now=LATER).ok
    notes = tmp_path / "exported"
    shutil.copytree(w / "notes", notes)
    vkey = (w / "witness.vkey").read_text().strip()
    _tail_and_index_removed(built)
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path,
                     "--witness", notes, "--witness-key", vkey)
    assert proc.returncode == 1 and "rollback" in proc.stdout, proc.stdout + proc.stderr
    assert sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path,
                     "--witness", notes).returncode == 2
    other = Ed25519Signer(bytes(32))
    from sealtrail.core.note import cosigner_key

    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path,
                     "--witness", notes, "--witness-key", cosigner_key("w1", other.public_key))
    assert proc.returncode == 2 and "no valid cosignature" in proc.stderr
    tampered = notes / f"sealtrail_{built.chain_ids[0]}.note"
    data = tampered.read_bytes().replace(b"\n12\n", b"\n8\n")
    tampered.write_bytes(data)
    proc = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path,
                     "--witness", notes, "--witness-key", vkey)
    assert proc.returncode == 2 and "invalid" in proc.stderr


def test_a_chain_planted_before_the_last_run_is_refused(tmp_path: Path) -> None:
    """A chain the witness never saw, dated before its previous run, was added behind its
    back (planted, or signed with a retired key): refused."""
    store = open_store(tmp_path / "a")
    ChainFeeder(writer(store)).segment(["auth.login"])
    w = tmp_path / "W"
    assert run_witness(store, KEYRING, w, name="w1", now=LATER).ok
    ChainFeeder(writer(store), CHAIN_B, partition=1).segment(["auth.login"])  # dated ~T0
    result = run_witness(store, KEYRING, w, name="w1", now=LATER + 1)
    assert [(f.kind.value, f.chain_id) for f in result.findings] == [("unindexed", CHAIN_B)]
    later_chain = run_witness(store, KEYRING, tmp_path / "W2", name="w2", now=LATER)
    assert later_chain.ok  # a witness that never ran before has nothing to compare with
    assert parse_verifier_key((tmp_path / "W2" / "witness.vkey").read_text())[0] == "w2"
    assert CHAIN in (later_chain.state.chains if later_chain.state else {})
