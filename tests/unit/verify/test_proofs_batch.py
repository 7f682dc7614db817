"""Proofs for entries of record format 2 (sealtrail-proof/v2): an entry signed by the batch
seal after it is proven through the seal, offline, against a keyring only; everything an
attacker without the sealing key can change in such a proof is caught. Archives are sealed
in batches by the real code (helpers.archive_builder, ``batch=``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.archive_builder import (
    BuiltArchive,
    build_archive,
    forge_checkpoint,
    keyring_of,
    signer,
    write_keyring,
)

from sealtrail.cli.main import main
from sealtrail.core import merkle
from sealtrail.core.canonical import ENTRY_FIELDS, canonical_json
from sealtrail.core.chain import BATCH_SEAL_TAG, batch_statement
from sealtrail.core.hashing import ENTRY_DOMAIN, sha256
from sealtrail.errors import IntegrityError, MalformedInputError
from sealtrail.verify.proof import FORMAT, FORMAT_V2, HOW, HOW_V2, build_proof, verify_proof
from sealtrail.verify.proof_batch import MAX_PATH

Doc = dict[str, Any]

# batch=3, records=4 per segment: batches seq 0..2, 3 (a batch of one), 4..6, 7; seq 1 and
# 6 are rejections (no event to prove).
BATCHES = [(0, 2), (3, 3), (4, 6), (7, 7)]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuiltArchive:
    return build_archive(tmp_path_factory.mktemp("batch"), chains=1, segments=2, records=4,
                         batch=3, separate_archiver_key=True)


def _event_id(built: BuiltArchive, seq: int) -> str:
    return str(built.records[built.chain_ids[0]][seq]["event"]["event_id"])


def _proof(built: BuiltArchive, seq: int) -> Doc:
    doc: Doc = json.loads(build_proof(built.store, _event_id(built, seq), built.keyring))
    return doc


def _bytes(doc: Doc) -> bytes:
    return canonical_json(doc)


def test_every_entry_of_a_batch_gets_a_v2_proof_that_verifies(built: BuiltArchive) -> None:
    """Unsigned entries, seal entries and a batch of one: each proof is v2, names its batch
    as sealed, leads through the batch root to a seal by the sealer's key, and verifies."""
    records = built.records[built.chain_ids[0]]
    assert [len(r["signature"]) for r in records] == [0, 0, 65, 65, 0, 0, 65, 65]
    sealer = built.sealers[0].key_id
    for first, last in BATCHES:
        for seq in range(first, last + 1):
            if records[seq]["event"] is None:
                continue
            doc = _proof(built, seq)
            assert (doc["format"], doc["how"]) == (FORMAT_V2, HOW_V2)
            batch = doc["batch"]
            hashes = [r["entry_hash"] for r in records[first:last + 1]]
            seal = records[last]
            assert batch == {
                "first_seq": first, "last_seq": last, "leaf_index": seq - first,
                "inclusion_proof": [h.hex() for h in merkle.inclusion_proof(hashes,
                                                                            seq - first)],
                "seal": {"entry_hash": seal["entry_hash"].hex(), "key_id": sealer,
                         "ingested_at": seal["ingested_at"],
                         "signature": seal["signature"].hex()}}
            assert doc["entry"]["signature"] == records[seq]["signature"].hex()
            result = verify_proof(_bytes(doc), built.keyring)
            assert (result.event_id, result.seq, result.checkpoint_index, result.key_id) == (
                _event_id(built, seq), seq, seq // 4, sealer)


def _flip(hex_: str, at: int = 0) -> str:
    raw = bytearray(bytes.fromhex(hex_))
    raw[at] ^= 0x01
    return raw.hex()


def _entry_hash_of(entry: Doc) -> str:
    return sha256(ENTRY_DOMAIN, canonical_json({k: entry[k] for k in ENTRY_FIELDS})).hex()


def _set(path: str, value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        *parents, name = path.split(".")
        target = doc
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if isinstance(target, list):
            target[int(name)] = value(target[int(name)]) if callable(value) else value
        else:
            target[name] = value(target[name]) if callable(value) else value
    return change


def _body_rehashed(doc: Doc) -> None:
    """The attacker's best edit of the event: the entry hash follows it (the audit path
    and the seal then no longer do)."""
    doc["entry"]["event"]["action"] = "delete"
    doc["entry"]["entry_hash"] = _entry_hash_of(doc["entry"])


def _downgrade(doc: Doc) -> None:
    """Pass the entry off as format 1: no batch part, v1 format and text."""
    del doc["batch"]
    doc["format"], doc["how"] = FORMAT, HOW


def _path_shortened(doc: Doc) -> None:
    doc["batch"]["inclusion_proof"].pop()


def _path_lengthened(doc: Doc) -> None:
    doc["batch"]["inclusion_proof"].append("00" * 32)


def _retag(doc: Doc) -> None:
    doc["batch"]["seal"]["signature"] = "02" + doc["batch"]["seal"]["signature"][2:]


def _plus(n: int) -> Callable[[Any], Any]:
    return lambda v: v + n


TAMPERS: dict[str, Callable[[Doc], None]] = {
    "event body": _set("entry.event.action", "delete"),
    "event body, entry hash recomputed": _body_rehashed,
    "entry_hash": _set("entry.entry_hash", _flip),
    "entry key_id": _set("entry.key_id", "ed25519:0000000000000000"),
    "entry signature": _set("entry.signature", lambda s: _flip(s) if s else "00" * 64),
    "how": _set("how", HOW_V2 + " "),
    "downgraded to v1": _downgrade,
    "batch first_seq +1": _set("batch.first_seq", _plus(1)),
    "batch first_seq -1": _set("batch.first_seq", _plus(-1)),
    "batch last_seq +1": _set("batch.last_seq", _plus(1)),
    "batch last_seq -1": _set("batch.last_seq", _plus(-1)),
    "batch leaf_index +1": _set("batch.leaf_index", _plus(1)),
    "batch leaf_index -1": _set("batch.leaf_index", _plus(-1)),
    "audit path hash": _set("batch.inclusion_proof.0", _flip),
    "audit path shortened": _path_shortened,
    "audit path lengthened": _path_lengthened,
    "seal signature": _set("batch.seal.signature", lambda s: _flip(s, 20)),
    "seal signature tag": _retag,
    "seal entry_hash": _set("batch.seal.entry_hash", _flip),
    "seal key_id": _set("batch.seal.key_id", "ed25519:0000000000000000"),
    "seal ingested_at +1": _set("batch.seal.ingested_at", _plus(1)),
    "seal ingested_at -1": _set("batch.seal.ingested_at", _plus(-1)),
    "leaf_index in the checkpoint": _set("leaf_index", _plus(1)),
    "checkpoint audit path": _set("inclusion_proof.0", _flip),
    "checkpoint merkle_root": _set("checkpoint.checkpoint.merkle_root", _flip),
    "checkpoint last_seq": _set("checkpoint.checkpoint.last_seq", _plus(1)),
    "checkpoint signature": _set("checkpoint.signature", _flip),
    "checkpoint_key": _set("checkpoint_key", lambda k: k.replace("/checkpoints/", "/x/")),
}


PROVED = {"unsigned entry": 4, "seal entry": 2, "batch of one": 3}
NO_PATH = {"audit path hash", "audit path shortened"}  # a batch of one has no audit path


@pytest.mark.parametrize("name, seq", [
    pytest.param(name, seq, id=f"{what}: {name}") for what, seq in PROVED.items()
    for name in sorted(TAMPERS) if not (seq == 3 and name in NO_PATH)])
def test_any_altered_field_of_a_v2_proof_fails(built: BuiltArchive, name: str,
                                               seq: int) -> None:
    """Each change, written back in canonical form (so only the evidence can catch it),
    fails with IntegrityError."""
    doc = _proof(built, seq)
    original = _bytes(doc)
    TAMPERS[name](doc)
    assert _bytes(doc) != original
    with pytest.raises(IntegrityError):
        verify_proof(_bytes(doc), built.keyring)


def test_every_byte_of_a_v2_proof_is_covered(built: BuiltArchive) -> None:
    """Changing any single byte of a v2 proof file makes it fail (IntegrityError, or
    MalformedInputError when no proof is left)."""
    data = build_proof(built.store, _event_id(built, 4), built.keyring)
    verify_proof(data, built.keyring)
    for position in range(len(data)):
        changed = data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]
        with pytest.raises((IntegrityError, MalformedInputError)):
            verify_proof(changed, built.keyring)


def test_a_seal_by_a_key_the_auditor_does_not_trust_fails(built: BuiltArchive) -> None:
    """The auditor's keyring trusts the archiver's key (the checkpoint checks out) but not
    the sealer's: the batch seal fails as an unknown key."""
    data = build_proof(built.store, _event_id(built, 4), built.keyring)
    only_archiver = keyring_of(built.archivers[0])
    with pytest.raises(IntegrityError, match=r"batch seal of seq 4\.\.6: unknown key"):
        verify_proof(data, only_archiver)


def _forged_seal(doc: Doc, hashes: list[bytes], first: int, forger: Any,
                 key_id: str | None = None) -> None:
    """Restate the batch part for ``hashes`` (seq ``first``..) and sign it with ``forger``."""
    seq = doc["entry"]["seq"]
    last = first + len(hashes) - 1
    seal = doc["batch"]["seal"]
    statement = batch_statement(first, last, seal["ingested_at"], merkle.root(hashes),
                                hashes[-1])
    doc["batch"].update(first_seq=first, last_seq=last, leaf_index=seq - first,
                        inclusion_proof=[h.hex() for h in merkle.inclusion_proof(
                            hashes, seq - first)])
    seal.update(entry_hash=hashes[-1].hex(), key_id=key_id or forger.key_id,
                signature=(BATCH_SEAL_TAG + forger.sign(statement)).hex())


def test_an_altered_entry_resealed_by_the_attacker_fails(built: BuiltArchive) -> None:
    """The attacker alters the event, rehashes it and seals a batch of it with their own
    key (unknown) or under the sealer's key id (invalid signature). Even holding the
    archiver's key, so that the checkpoint is restated and re-signed for the altered entry,
    the batch seal fails."""
    records = built.records[built.chain_ids[0]]
    attacker = signer("attacker")
    for key_id, match in [(None, "unknown key"), (built.sealers[0].key_id, "is invalid")]:
        doc = _proof(built, 4)
        _body_rehashed(doc)
        altered = bytes.fromhex(doc["entry"]["entry_hash"])
        _forged_seal(doc, [altered, *(r["entry_hash"] for r in records[5:7])], 4, attacker,
                     key_id)
        with pytest.raises(IntegrityError):  # the checkpoint does not hold the new hash
            verify_proof(_bytes(doc), built.keyring)
        segment = [dict(r) for r in records[4:8]]
        segment[0]["entry_hash"] = altered
        doc["checkpoint"] = json.loads(forge_checkpoint(
            built.read_checkpoint(0, 1), built.archivers[0], records=segment,
            before=built.frontier_before(0, 1)))
        with pytest.raises(IntegrityError, match=r"batch seal of seq 4\.\.6: .*" + match):
            verify_proof(_bytes(doc), built.keyring)
        _forged_seal(doc, [altered, *(r["entry_hash"] for r in records[5:7])], 4,
                     built.sealers[0])
        assert verify_proof(_bytes(doc), built.keyring).seq == 4  # the forgery is complete


def test_a_batch_must_lie_inside_the_checkpoint(built: BuiltArchive) -> None:
    """Segments never split a batch: a seal over a batch reaching past the checkpoint (or
    starting before it) is refused, even validly signed by the sealer's key."""
    records = built.records[built.chain_ids[0]]
    sealer = built.sealers[0]
    doc = _proof(built, 7)  # the last entry of checkpoint 1, a batch of one
    doc["entry"]["signature"] = ""  # not hashed: what an entry before its seal carries
    _forged_seal(doc, [records[7]["entry_hash"], b"\x07" * 32], 7, sealer)
    with pytest.raises(IntegrityError, match="not inside checkpoint 1"):
        verify_proof(_bytes(doc), built.keyring)
    doc = _proof(built, 4)  # the first entry of checkpoint 1
    _forged_seal(doc, [r["entry_hash"] for r in records[3:7]], 3, sealer)
    with pytest.raises(IntegrityError, match="not inside checkpoint 1"):
        verify_proof(_bytes(doc), built.keyring)


def test_the_seal_entry_must_be_the_seal_it_states(built: BuiltArchive) -> None:
    """A proof of the seal entry itself: the entry's signature must be the seal's (a
    signature is not hashed, so only this ties them)."""
    doc = _proof(built, 2)
    assert doc["batch"]["seal"]["signature"] == doc["entry"]["signature"]
    assert doc["batch"]["seal"]["entry_hash"] == doc["entry"]["entry_hash"]
    doc["entry"]["signature"] = ""
    with pytest.raises(IntegrityError, match="is the batch's seal entry but differs"):
        verify_proof(_bytes(doc), built.keyring)


@pytest.mark.parametrize("change, match", [
    (lambda d: d["batch"].update(inclusion_proof=["00" * 32] * (MAX_PATH + 1)), "at most 64"),
    (lambda d: d["batch"].pop("leaf_index"), "lacks member 'leaf_index'"),
    (lambda d: d["batch"]["seal"].update(extra=1), "unexpected member 'extra'"),
    (lambda d: d["batch"].update(first_seq="0"), "batch.first_seq must be an integer"),
    (lambda d: d.update(format=FORMAT), "unexpected member 'batch'"),
    (lambda d: d.pop("batch"), "lacks member 'batch'"),
])
def test_a_malformed_batch_part_is_not_a_proof(built: BuiltArchive, change: Any,
                                               match: str) -> None:
    """Structure and types are checked before any evidence: MalformedInputError (exit 2)."""
    doc = _proof(built, 4)
    change(doc)
    with pytest.raises(MalformedInputError, match=match):
        verify_proof(_bytes(doc), built.keyring)


def test_entries_signed_on_their_own_keep_v1_proofs(tmp_path: Path) -> None:
    """Record format 1: the proof is sealtrail-proof/v1, byte for byte the layout it always
    had (no batch part), and verifies with the entry's own key."""
    old = build_archive(tmp_path, chains=1, segments=2, records=3)
    records = old.records[old.chain_ids[0]]
    seq = 4
    data = build_proof(old.store, str(records[seq]["event"]["event_id"]), old.keyring)
    leaves = [r["entry_hash"] for r in records[3:6]]
    entry = json.loads(canonical_json({k: v for k, v in records[seq].items()
                                       if k not in ("entry_hash", "signature")}))
    entry.update(entry_hash=records[seq]["entry_hash"].hex(),
                 signature=records[seq]["signature"].hex())
    assert data == canonical_json({
        "format": "sealtrail-proof/v1", "how": HOW, "event_id": records[seq]["event"]["event_id"],
        "entry": entry, "leaf_index": 1, "tree_size": 3,
        "inclusion_proof": [h.hex() for h in merkle.inclusion_proof(leaves, 1)],
        "checkpoint_key": old.checkpoint_key(0, 1),
        "checkpoint": json.loads(old.checkpoint_path(0, 1).read_bytes())})
    result = verify_proof(data, old.keyring)
    assert (result.seq, result.checkpoint_index, result.key_id) == (
        seq, 1, old.sealers[0].key_id)
    doc = json.loads(data)
    doc.update(format=FORMAT_V2, how=HOW_V2, batch={  # passed off as a batch of one
        "first_seq": seq, "last_seq": seq, "leaf_index": 0, "inclusion_proof": [],
        "seal": {k: doc["entry"][k] for k in ("entry_hash", "key_id", "ingested_at",
                                              "signature")}})
    with pytest.raises(IntegrityError):
        verify_proof(_bytes(doc), old.keyring)


def test_cli_prove_and_verify_proof_of_a_batch_entry(
        built: BuiltArchive, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`prove` writes a v2 proof; `verify-proof` exits 0 for it, naming the seal's key, and
    1 once the batch part is altered."""
    monkeypatch.setenv("SEALTRAIL_HOME", str(tmp_path / "home"))
    keys = write_keyring(tmp_path / "public.json", built.keyring)
    out = tmp_path / "proof.json"
    assert main(["prove", _event_id(built, 5), "--archive", str(built.root), "--out", str(out),
                 "--keys", str(keys)]) == 0
    assert json.loads(out.read_bytes())["format"] == FORMAT_V2
    assert main(["verify-proof", str(out), "--keys", str(keys)]) == 0
    assert f"(its batch sealed by {built.sealers[0].key_id})" in capsys.readouterr().out
    out.write_bytes(out.read_bytes().replace(b'"leaf_index":1', b'"leaf_index":0', 1))
    assert main(["verify-proof", str(out), "--keys", str(keys)]) == 1
    assert "FAILED" in capsys.readouterr().out
