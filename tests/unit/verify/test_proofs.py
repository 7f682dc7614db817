"""Proof for one event (offline, against a keyring only) and C2SP checkpoint notes; Merkle
inclusion proofs against the RFC 6962 / transparency-dev vectors in the shared conformance
folder (read from there, never copied; skipped with a message when absent)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from helpers.archive_builder import keyring_of, signer, write_keyring
from helpers.compliance import CHAIN, KEYRING, SIGNER, ChainFeeder, writer
from helpers.paths import need_conformance

from sealtrail.archive import open_store
from sealtrail.cli.main import main
from sealtrail.core import layout, merkle
from sealtrail.core.note import (
    checkpoint_body,
    key_hash,
    parse_checkpoint_body,
    sign_note,
    verifier_key,
    verify_note,
)
from sealtrail.errors import IntegrityError, MalformedInputError
from sealtrail.verify.proof import EventNotFoundError, build_proof, chain_note, verify_proof


def test_inclusion_proofs_match_the_conformance_vectors() -> None:
    """Our audit paths equal the reference ones and lead back to the reference roots, for
    the upstream vectors and every leaf of the reference tree."""
    doc = need_conformance("merkle_vectors.json")
    leaves = [bytes.fromhex(x) for x in doc["reference_tree"]["leaf_inputs_hex"]]
    cases = doc["inclusion_proofs"] + doc["derived_all_proofs_for_reference_tree"]["inclusion"]
    assert cases
    for case in cases:
        i, n = case["leaf_index"], case["tree_size"]
        proof = [bytes.fromhex(p) for p in case["proof_hex"]]
        if "leaf_input_hex" in case or n <= len(leaves):
            assert merkle.inclusion_proof(leaves[:n], i) == proof, case
        leaf = (bytes.fromhex(case["leaf_hash_hex"]) if "leaf_hash_hex" in case
                else merkle.leaf_hash(leaves[i]))
        root = merkle.root_from_inclusion_proof(i, n, leaf, proof)
        assert root == bytes.fromhex(case["root_hex"]), case


def test_inclusion_probes_that_must_fail_do_fail() -> None:
    """Every corrupted probe (wrong root, index, size, extra or missing element) is refused."""
    probes = need_conformance("merkle_vectors.json")["inclusion_probes"]
    for probe in probes:
        proof = [bytes.fromhex(p) for p in probe["proof_hex"]]
        try:
            root = merkle.root_from_inclusion_proof(
                probe["leaf_index"], probe["tree_size"], bytes.fromhex(probe["leaf_hash_hex"]),
                proof)
            ok = root == bytes.fromhex(probe["root_hex"])
        except IntegrityError:
            ok = False
        assert ok != probe["want_error"], probe


def _archive(tmp_path: Path) -> Any:
    store = open_store(tmp_path / "a")
    feed = ChainFeeder(writer(store))
    feed.segment(["payment.a", "payment.b", "payment.c"])
    feed.segment(["auth.login"] * 5)  # a 5-leaf tree: the proof has an odd-sized level
    return store, feed


def test_a_proof_verifies_offline_and_fails_after_any_byte_changes(tmp_path: Path) -> None:
    """The proof for an event checks out with the keyring alone, and changing any single byte
    of the file makes it fail."""
    store, feed = _archive(tmp_path)
    event_id = feed.records[6]["event"]["event_id"]
    data = build_proof(store, event_id, KEYRING)
    result = verify_proof(data, KEYRING)
    assert (result.event_id, result.chain_id, result.seq, result.checkpoint_index) == (
        event_id, CHAIN, 6, 1)
    for position in range(len(data)):
        for replacement in {data[position] ^ 0x01, data[position] ^ 0x20}:
            changed = data[:position] + bytes([replacement]) + data[position + 1:]
            # IntegrityError (exit 1), or MalformedInputError (exit 2) when the change
            # leaves no proof at all (not JSON, a member renamed): never accepted.
            with pytest.raises((IntegrityError, MalformedInputError)):
                verify_proof(changed, KEYRING)


def test_a_proof_is_refused_by_another_keyring(tmp_path: Path) -> None:
    """Keys are pinned: a keyring without the signing key fails the proof (unknown key)."""
    store, feed = _archive(tmp_path)
    data = build_proof(store, feed.records[0]["event"]["event_id"], KEYRING)
    with pytest.raises(IntegrityError, match="unknown key"):
        verify_proof(data, keyring_of(signer("someone-else")))


def test_unknown_event_has_no_proof(tmp_path: Path) -> None:
    """Asking for an event that is not archived is an error naming the event."""
    store, _ = _archive(tmp_path)
    with pytest.raises(EventNotFoundError, match="nope"):
        build_proof(store, "nope", KEYRING)


def test_no_proof_from_a_chain_that_breaks_before_the_event(tmp_path: Path) -> None:
    """prove reads through the one verifier: an event behind a break in its chain (here a
    segment deleted before it) gets no proof; the error names the break, as verify does."""
    store, feed = _archive(tmp_path)
    (tmp_path / "a" / layout.segment_key(CHAIN, 0)).unlink()
    with pytest.raises(IntegrityError, match=r"segments/0000000000.avro, seq 0: missing"):
        build_proof(store, feed.records[6]["event"]["event_id"], KEYRING)
    with pytest.raises(IntegrityError, match="does not check out"):
        chain_note(store, CHAIN, origin="o", name="o", signer=SIGNER,
                   public_key=SIGNER.public_key, keyring=KEYRING)


def test_cli_prove_and_verify_proof(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`prove` writes the proof; `verify-proof` exits 0 for it and 1 for a tampered copy."""
    _, feed = _archive(tmp_path)
    monkeypatch.setenv("SEALTRAIL_HOME", str(tmp_path / "home"))
    keys = write_keyring(tmp_path / "public.json", KEYRING)
    event_id = feed.records[2]["event"]["event_id"]
    out = tmp_path / "proof.json"
    assert main(["prove", event_id, "--archive", str(tmp_path / "a"), "--out", str(out),
                 "--keys", str(keys)]) == 0
    assert main(["verify-proof", str(out), "--keys", str(keys)]) == 0
    assert "VERIFIED" in capsys.readouterr().out
    out.write_bytes(out.read_bytes().replace(b'"seq":2', b'"seq":1'))
    assert main(["verify-proof", str(out), "--keys", str(keys)]) == 1
    assert "FAILED" in capsys.readouterr().out


# -- C2SP signed notes ------------------------------------------------------------------


def test_note_key_hash_and_signature_follow_the_signed_note_spec() -> None:
    """Key hash = SHA-256(name || 0x0A || 0x01 || key)[:4]; the signature line is
    '\u2014 name base64(key hash || Ed25519 signature over the body)'."""
    body = checkpoint_body("example.com/log", 5, bytes(range(32)), ["ext one"])
    assert body == (b"example.com/log\n5\n" + base64.b64encode(bytes(range(32))) +
                    b"\next one\n")
    note = sign_note(body, "example.com/log", SIGNER, SIGNER.public_key)
    want = hashlib.sha256(b"example.com/log\n\x01" + SIGNER.public_key).digest()[:4]
    assert key_hash("example.com/log", SIGNER.public_key) == want
    line = note[len(body) + 1:].decode()
    assert line.startswith("\u2014 example.com/log ") and line.endswith("\n")
    blob = base64.b64decode(line.split(" ")[2])
    assert blob[:4] == want and blob[4:] == SIGNER.sign(body)
    assert verifier_key("example.com/log", SIGNER.public_key).startswith(
        f"example.com/log+{want.hex()}+")
    assert verify_note(note, "example.com/log", SIGNER.public_key) == parse_checkpoint_body(body)


def test_chain_note_states_the_whole_chain_and_fails_when_altered(tmp_path: Path) -> None:
    """The note of a chain's newest checkpoint has tree size last_seq + 1 and the RFC 6962
    root of all its entry hashes; any altered byte fails verification."""
    store, feed = _archive(tmp_path)
    note = chain_note(store, CHAIN, origin="audit.example", name="audit.example",
                      signer=SIGNER, public_key=SIGNER.public_key, keyring=KEYRING)
    cp = verify_note(note, "audit.example", SIGNER.public_key)
    assert cp.origin == f"audit.example/{CHAIN}" and cp.tree_size == 8
    assert cp.root_hash == merkle.root([r["entry_hash"] for r in feed.records])
    assert cp.extensions[0].startswith("sealtrail-checkpoint 1 ")
    first = chain_note(store, CHAIN, origin="audit.example", name="audit.example",
                       signer=SIGNER, public_key=SIGNER.public_key, index=0, keyring=KEYRING)
    assert verify_note(first, "audit.example", SIGNER.public_key).tree_size == 3
    for position in range(len(note)):
        changed = note[:position] + bytes([note[position] ^ 0x01]) + note[position + 1:]
        with pytest.raises((IntegrityError, MalformedInputError)):  # never accepted
            verify_note(changed, "audit.example", SIGNER.public_key)


def test_cli_export_and_verify_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`export-note` signs with the configured key; `verify-note` checks it with the keyring."""
    from sealtrail.keys import init_keys

    home = tmp_path / "home"
    monkeypatch.setenv("SEALTRAIL_HOME", str(home))
    local, _ = init_keys(home / "keys")
    store = open_store(tmp_path / "a")
    ChainFeeder(writer(store)).segment(["auth.login"])
    out = tmp_path / "note.txt"
    trusted = write_keyring(tmp_path / "archive-keys.json", KEYRING)
    assert main(["export-note", CHAIN, "--archive", str(tmp_path / "a"), "--out",
                 str(out), "--keys", str(trusted)]) == 0
    keys = str(home / "keys" / "public.json")
    assert main(["verify-note", str(out), "--keys", keys, "--key-id", local.key_id]) == 0
    assert "VERIFIED" in capsys.readouterr().out
    out.write_bytes(out.read_bytes().replace(b"\n1\n", b"\n2\n"))
    assert main(["verify-note", str(out), "--keys", keys, "--key-id", local.key_id]) == 1


@pytest.mark.parametrize("body", [
    "o\n" + "1" * 5000 + "\nAAAA\n",  # more digits than int() takes: was a ValueError
    "o\n\u0661\u0662\nAAAA\n",  # digits, but not ASCII ones
    "o\n1\n" + "A" * 42 + "\u012b=\n",  # base64 with a non-ASCII letter: was a ValueError
])
def test_checkpoint_note_bodies_that_are_not_are_refused(body: str) -> None:
    from sealtrail.core.note import parse_checkpoint_body

    with pytest.raises(IntegrityError):
        parse_checkpoint_body(body.encode())


def test_chain_note_since_proves_consistency_between_two_checkpoints(tmp_path: Path) -> None:
    """export-note --since M: an RFC 9162 consistency proof from checkpoint M's tree to the
    note's, as a C2SP add-checkpoint body, that verifies against both notes' roots."""
    from sealtrail.core.note import parse_consistency_request

    store, _ = _archive(tmp_path)
    first = chain_note(store, CHAIN, origin="o", name="o", signer=SIGNER,
                       public_key=SIGNER.public_key, keyring=KEYRING, index=0)
    body = chain_note(store, CHAIN, origin="o", name="o", signer=SIGNER,
                      public_key=SIGNER.public_key, keyring=KEYRING, since=0)
    old_size, proof, note = parse_consistency_request(body)
    old = verify_note(first, "o", SIGNER.public_key)
    new = verify_note(note, "o", SIGNER.public_key)
    assert (old_size, old.tree_size, new.tree_size) == (3, 3, 8)
    merkle.verify_consistency(old.tree_size, new.tree_size, old.root_hash, new.root_hash, proof)
    with pytest.raises(IntegrityError):
        merkle.verify_consistency(old.tree_size, new.tree_size, new.root_hash,
                                  new.root_hash, proof)
