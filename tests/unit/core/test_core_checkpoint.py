"""Signed checkpoints: statement, digest, signature and the archived byte form."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core.canonical import canonical_json
from sealtrail.core.checkpoint import Checkpoint, SignedCheckpoint
from sealtrail.core.hashing import CHECKPOINT_DOMAIN, SIG_CHECKPOINT_DOMAIN, ZERO_HASH, sha256
from sealtrail.core.signing import Ed25519Signer, Keyring, PublicKey
from sealtrail.errors import IntegrityError

SIGNER = Ed25519Signer(bytes(range(32)))
KEYRING = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key, 0, 10**18)])
FIELDS = [f.name for f in dataclasses.fields(Checkpoint)][:12]  # version 1; v2 adds six


def _checkpoint(**overrides: Any) -> Checkpoint:
    values: dict[str, Any] = {
        "chain_id": "raw.0.abc", "index": 3, "first_seq": 100, "last_seq": 149,
        "head_hash": b"\x01" * 32, "merkle_root": b"\x02" * 32,
        "prev_checkpoint_hash": b"\x03" * 32, "segment_key": "chains/raw.0.abc/00000003.avro",
        "segment_sha256": b"\x04" * 32, "segment_size": 4096, "created_at": 1_700_000_000_000_000,
        "key_id": SIGNER.key_id,
    }
    values.update(overrides)
    return Checkpoint(**values)


def _tampered_value(name: str, value: Any) -> Any:
    """A different value of the same type for field ``name``."""
    if isinstance(value, bytes):
        return bytes([value[0] ^ 0x80]) + value[1:]
    if isinstance(value, str):
        return value + "x"
    return value + 1


checkpoints = st.builds(
    Checkpoint,
    chain_id=st.text(max_size=20), index=st.integers(1, 2**40),
    first_seq=st.integers(0, 2**40), last_seq=st.just(2**41),
    head_hash=st.binary(min_size=32, max_size=32), merkle_root=st.binary(min_size=32, max_size=32),
    prev_checkpoint_hash=st.binary(min_size=32, max_size=32), segment_key=st.text(max_size=40),
    segment_sha256=st.binary(min_size=32, max_size=32), segment_size=st.integers(0, 2**40),
    created_at=st.integers(0, 10**18), key_id=st.just(SIGNER.key_id),
)


def test_digest_and_signature_definition() -> None:
    """checkpoint_hash = SHA-256(checkpoint domain || canonical JSON of the statement); the
    signature is over the checkpoint signature domain || checkpoint_hash."""
    cp = _checkpoint()
    signed = cp.sign(SIGNER)
    assert signed.checkpoint_hash == sha256(CHECKPOINT_DOMAIN, canonical_json(cp.to_json()))
    assert signed.signature == SIGNER.sign(SIG_CHECKPOINT_DOMAIN + signed.checkpoint_hash)
    assert signed.problem(KEYRING) is None


def test_statement_json_has_hex_hashes_and_every_field() -> None:
    """to_json lists every field once, hashes as lowercase hex, and from_json inverts it."""
    cp = _checkpoint()
    doc = cp.to_json()
    assert sorted(doc) == sorted(FIELDS)
    assert doc["head_hash"] == "01" * 32 and doc["segment_sha256"] == "04" * 32
    assert Checkpoint.from_json(doc) == cp


@settings(max_examples=60, deadline=None)
@given(cp=checkpoints)
def test_to_bytes_from_bytes_round_trip(cp: Checkpoint) -> None:
    """from_bytes(to_bytes(x)) == x and the archived bytes are canonical JSON."""
    signed = cp.sign(SIGNER)
    data = signed.to_bytes()
    assert SignedCheckpoint.from_bytes(data) == signed
    assert SignedCheckpoint.from_bytes(data).to_bytes() == data
    assert canonical_json(json.loads(data)) == data
    assert json.loads(data)["format"] == "sealtrail-checkpoint/v1"
    assert signed.problem(KEYRING) is None


@pytest.mark.parametrize("name", FIELDS)
def test_tampering_any_field_is_reported(name: str) -> None:
    """Changing any statement field changes the digest; problem() reports the stale hash and,
    when the hash is recomputed too, the signature (or the unknown key)."""
    signed = _checkpoint().sign(SIGNER)
    tampered = dataclasses.replace(
        signed.checkpoint, **{name: _tampered_value(name, getattr(signed.checkpoint, name))}
    )
    assert tampered.digest() != signed.checkpoint_hash
    stale = SignedCheckpoint(tampered, signed.checkpoint_hash, signed.signature)
    problem = stale.problem(KEYRING)
    assert problem is not None
    assert "does not match its content" in problem
    assert signed.checkpoint_hash.hex() in problem and tampered.digest().hex() in problem
    rehashed = SignedCheckpoint(tampered, tampered.digest(), signed.signature)
    problem = rehashed.problem(KEYRING)
    assert problem is not None
    assert ("unknown key" if name == "key_id" else "is invalid") in problem


@pytest.mark.parametrize("name", FIELDS)
def test_tampering_archived_bytes_is_reported(name: str) -> None:
    """Editing a field inside the archived JSON is caught by problem() after from_bytes."""
    signed = _checkpoint().sign(SIGNER)
    doc = json.loads(signed.to_bytes())
    value = doc["checkpoint"][name]
    if isinstance(value, str) and name not in ("chain_id", "segment_key", "key_id"):
        doc["checkpoint"][name] = ("0" if value[0] != "0" else "1") + value[1:]
    else:
        doc["checkpoint"][name] = _tampered_value(name, value)
    reread = SignedCheckpoint.from_bytes(json.dumps(doc).encode())
    assert reread.checkpoint != signed.checkpoint
    assert reread.problem(KEYRING) is not None


@pytest.mark.parametrize("part", ["checkpoint_hash", "signature"])
def test_tampering_hash_or_signature_is_reported(part: str) -> None:
    """A changed checkpoint_hash or signature is reported."""
    signed = _checkpoint().sign(SIGNER)
    value = getattr(signed, part)
    tampered = dataclasses.replace(signed, **{part: bytes([value[0] ^ 1]) + value[1:]})
    assert tampered.problem(KEYRING) is not None


def test_other_key_under_same_key_id_is_invalid() -> None:
    """A checkpoint signed by a different private key under the trusted key id is refused."""
    impostor = Ed25519Signer(bytes(range(1, 33)), key_id=SIGNER.key_id)
    signed = _checkpoint().sign(impostor)
    assert signed.checkpoint_hash == _checkpoint().digest()
    assert signed.problem(KEYRING) == f"signature by {SIGNER.key_id!r} is invalid"


def test_untrusted_key_is_refused() -> None:
    """A checkpoint signed by a key that is not in the keyring is refused as unknown."""
    other = Ed25519Signer(bytes(range(1, 33)))
    signed = _checkpoint(key_id=other.key_id).sign(other)
    assert "unknown key" in (signed.problem(KEYRING) or "")


def test_created_outside_key_window_is_refused() -> None:
    """A checkpoint whose created_at lies outside the key's window is refused saying so."""
    keyring = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key, 0, 1000)])
    signed = _checkpoint(created_at=1001).sign(SIGNER)
    assert "outside its validity window" in (signed.problem(keyring) or "")
    assert _checkpoint(created_at=1000).sign(SIGNER).problem(keyring) is None


def test_sign_requires_matching_key_id() -> None:
    """A signer may only sign a statement that names its own key id."""
    other = Ed25519Signer(bytes(range(1, 33)))
    with pytest.raises(ValueError, match="key_id"):
        _checkpoint().sign(other)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"index": -1}, "impossible range"),
        ({"first_seq": -1}, "impossible range"),
        ({"first_seq": 10, "last_seq": 9}, "impossible range"),
        ({"index": 0, "prev_checkpoint_hash": b"\x03" * 32}, "must link to the zero hash"),
        ({"segment_size": -1}, "negative size"),
        ({"head_hash": b"\x01" * 31}, "'head_hash' must be a 32-byte hash"),
        ({"merkle_root": "02" * 32}, "'merkle_root' must be a 32-byte hash"),
        ({"created_at": "1700000000000000"}, "'created_at' must be an integer"),
        ({"index": True}, "'index' must be an integer"),
        ({"chain_id": 7}, "'chain_id' must be a string"),
        ({"key_id": None}, "'key_id' must be a string"),
    ],
)
def test_impossible_statements_are_refused(overrides: dict[str, Any], message: str) -> None:
    """Statements with impossible ranges, a broken first link or wrongly typed fields raise
    IntegrityError at construction."""
    with pytest.raises(IntegrityError, match=message):
        _checkpoint(**overrides)


def test_first_checkpoint_links_to_zero_hash() -> None:
    """Checkpoint 0 with the zero hash as predecessor is valid; its size counts both ends."""
    cp = _checkpoint(index=0, prev_checkpoint_hash=ZERO_HASH, first_seq=0, last_seq=0)
    assert cp.size == 1
    assert _checkpoint().size == 50


def _archived(**checkpoint_changes: Any) -> bytes:
    doc = json.loads(_checkpoint().sign(SIGNER).to_bytes())
    doc["checkpoint"].update(checkpoint_changes)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    "data",
    [
        b"", b"not json", b"\xff\xfe", b"[]", b'"text"',
        json.dumps({"format": "other", "checkpoint": {}}).encode(),
        json.dumps({"format": "sealtrail-checkpoint/v1"}).encode(),
        _archived(head_hash="zz"),
        _archived(extra_field=1),
        _archived(created_at="soon"),
        _archived(index=None),
        json.dumps({"format": "sealtrail-checkpoint/v1", "checkpoint": [],
                    "checkpoint_hash": "", "signature": ""}).encode(),
        _checkpoint().sign(SIGNER).to_bytes().replace(b'"signature":"', b'"signature":"x'),
    ],
    ids=["empty", "not-json", "not-utf8", "list", "string", "wrong-format", "missing-parts",
         "bad-hex", "unknown-field", "wrong-type", "null-index", "checkpoint-not-object",
         "bad-signature-hex"],
)
def test_from_bytes_refuses_malformed_input(data: bytes) -> None:
    """Anything that is not a well-formed archived checkpoint raises IntegrityError."""
    with pytest.raises(IntegrityError, match=r"malformed checkpoint|checkpoint field"):
        SignedCheckpoint.from_bytes(data)


# -- version 2: signed retention and the chain's tree -------------------------------------


def _v2(**overrides: Any) -> Checkpoint:
    from sealtrail.core.merkle import Frontier, leaf_hashes

    tree = Frontier()
    tree.extend(leaf_hashes([bytes([i]) * 32 for i in range(150)]))
    values: dict[str, Any] = {
        "retention_mode": "COMPLIANCE", "retention_class": "pci_dss",
        "retain_until": 1_731_536_000_000_000, "tree_size": 150, "tree_root": tree.root(),
        "tree_frontier": tuple(tree.nodes)}
    values.update(overrides)
    return _checkpoint(**values)


def test_v2_signs_retention_and_tree_under_its_own_domain() -> None:
    """A v2 statement has the twelve v1 fields and six more, is hashed under
    sealtrail:checkpoint:v2 and archived as sealtrail-checkpoint/v2; it round-trips."""
    from sealtrail.core.hashing import CHECKPOINT_V2_DOMAIN

    cp = _v2()
    assert cp.version == 2 and cp.inconsistency() is None
    doc = cp.to_json()
    assert set(doc) == set(FIELDS) | {"retention_mode", "retention_class", "retain_until",
                                      "tree_size", "tree_root", "tree_frontier"}
    assert doc["tree_frontier"] == [h.hex() for h in cp.tree_frontier or ()]
    signed = cp.sign(SIGNER)
    assert signed.checkpoint_hash == sha256(CHECKPOINT_V2_DOMAIN, canonical_json(doc))
    data = signed.to_bytes()
    assert json.loads(data)["format"] == "sealtrail-checkpoint/v2"
    assert SignedCheckpoint.from_bytes(data) == signed and signed.problem(KEYRING) is None
    assert cp.frontier is not None and cp.frontier.root() == cp.tree_root


def test_v2_statements_must_be_whole_and_consistent() -> None:
    """Half a v2 statement is refused; a tree whose size is not last_seq + 1 or whose root is
    not its compact range's is reported by inconsistency() (checked after the signature)."""
    with pytest.raises(IntegrityError, match="states all of"):
        _checkpoint(retain_until=1)
    assert "tree_size 151" in (_v2(tree_size=151).inconsistency() or "")
    assert "tree_root" in (_v2(tree_root=b"\x09" * 32).inconsistency() or "")
    v1_doc = json.loads(_checkpoint().sign(SIGNER).to_bytes())
    v1_doc["format"] = "sealtrail-checkpoint/v2"
    with pytest.raises(IntegrityError, match="exactly the fields"):
        SignedCheckpoint.from_bytes(canonical_json(v1_doc))
    v2_doc = json.loads(_v2().sign(SIGNER).to_bytes())
    v2_doc["format"] = "sealtrail-checkpoint/v1"
    with pytest.raises(IntegrityError, match="exactly the fields"):
        SignedCheckpoint.from_bytes(canonical_json(v2_doc))
