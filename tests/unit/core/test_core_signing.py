"""Ed25519 signers and the pinned public keyring."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from sealtrail.core.signing import Ed25519Signer, Keyring, PublicKey, key_id_for
from sealtrail.errors import DataError, KeyMaterialError

SEED = bytes(range(32))
SIGNER = Ed25519Signer(SEED)


def _entry(signer: Ed25519Signer = SIGNER, **overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key_id": signer.key_id,
        "algorithm": "ed25519",
        "public_key": base64.b64encode(signer.public_key).decode(),
        "not_before": 0,
        "not_after": None,
    }
    entry.update(overrides)
    return entry


def _doc(*entries: Any) -> dict[str, Any]:
    return {"format": "sealtrail-keyring/v1", "keys": list(entries)}


# -- signers -------------------------------------------------------------------------


def test_key_id_is_derived_from_public_key() -> None:
    """The default key id is "ed25519:" plus the first 16 hex digits of SHA-256(public key)."""
    expected = "ed25519:" + hashlib.sha256(SIGNER.public_key).hexdigest()[:16]
    assert key_id_for(SIGNER.public_key) == expected
    assert SIGNER.key_id == expected
    assert Ed25519Signer(SEED, key_id="mine").key_id == "mine"


@pytest.mark.parametrize("length", [0, 31, 33, 64])
def test_signer_needs_a_32_byte_seed(length: int) -> None:
    """A seed that is not 32 bytes is refused with KeyMaterialError."""
    with pytest.raises(KeyMaterialError, match="32-byte seed"):
        Ed25519Signer(bytes(length))


@settings(max_examples=50, deadline=None)
@given(message=st.binary(max_size=300))
def test_signature_verifies_with_public_key(message: bytes) -> None:
    """sign() is deterministic and verifies under the signer's public key."""
    signature = SIGNER.sign(message)
    assert len(signature) == 64
    assert SIGNER.sign(message) == signature
    Ed25519PublicKey.from_public_bytes(SIGNER.public_key).verify(signature, message)


def test_repr_never_shows_the_key() -> None:
    """repr shows the key id only; the signer has no __dict__ that could leak the seed."""
    text = repr(SIGNER)
    assert text == f"Ed25519Signer(key_id={SIGNER.key_id!r})"
    assert SEED.hex() not in text
    assert not hasattr(SIGNER, "__dict__")


def test_generated_signers_differ() -> None:
    """generate() gives a fresh key each time."""
    a, b = Ed25519Signer.generate(), Ed25519Signer.generate()
    assert a.public_key != b.public_key and a.key_id != b.key_id


# -- public keys ---------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 31, 33])
def test_public_key_must_be_32_bytes(length: int) -> None:
    """A public key of the wrong length is refused, naming the key."""
    with pytest.raises(KeyMaterialError, match=r"'k'.*32 bytes"):
        PublicKey("k", bytes(length))


def test_public_key_window_must_not_be_inverted() -> None:
    """not_after before not_before is refused."""
    with pytest.raises(KeyMaterialError, match="not_after is before not_before"):
        PublicKey("k", SIGNER.public_key, not_before=10, not_after=9)


@pytest.mark.parametrize(
    ("not_before", "not_after", "when", "valid"),
    [(0, None, 0, True), (0, None, 2**62, True), (10, None, 9, False), (10, 20, 10, True),
     (10, 20, 20, True), (10, 20, 21, False), (10, 10, 10, True)],
)
def test_validity_window_is_inclusive(
    not_before: int, not_after: int | None, when: int, valid: bool
) -> None:
    """valid_at is true exactly on not_before..not_after, both ends included; open-ended
    when not_after is None."""
    assert PublicKey("k", SIGNER.public_key, not_before, not_after).valid_at(when) is valid


# -- keyring verification ------------------------------------------------------------


def test_keyring_accepts_valid_signature() -> None:
    """A signature by a trusted key inside its window verifies (None)."""
    keyring = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key)])
    assert keyring.verify(SIGNER.key_id, b"m", SIGNER.sign(b"m"), at_us=5) is None


def test_keyring_refuses_unknown_key_id() -> None:
    """A key id that is not in the keyring is refused, saying it is unknown."""
    keyring = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key)])
    problem = keyring.verify("ed25519:nobody", b"m", SIGNER.sign(b"m"), at_us=5)
    assert problem == "unknown key 'ed25519:nobody' (not in the trusted keyring)"
    assert Keyring().verify(SIGNER.key_id, b"m", SIGNER.sign(b"m"), at_us=5) is not None


@pytest.mark.parametrize("when", [99, 201, -1])
def test_keyring_refuses_signature_outside_window(when: int) -> None:
    """A signature made before not_before or after not_after is refused as outside the key's
    validity window, even though it is cryptographically valid."""
    keyring = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key, 100, 200)])
    problem = keyring.verify(SIGNER.key_id, b"m", SIGNER.sign(b"m"), at_us=when)
    assert problem is not None
    assert f"was not valid at {when}" in problem and "outside its validity window" in problem
    assert keyring.verify(SIGNER.key_id, b"m", SIGNER.sign(b"m"), at_us=150) is None


@settings(max_examples=50, deadline=None)
@given(message=st.binary(max_size=64), position=st.integers(0, 63), mask=st.integers(1, 255))
def test_keyring_refuses_altered_signature(message: bytes, position: int, mask: int) -> None:
    """Any single-byte change to the signature makes it invalid."""
    keyring = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key)])
    signature = bytearray(SIGNER.sign(message))
    signature[position] ^= mask
    problem = keyring.verify(SIGNER.key_id, message, bytes(signature), at_us=0)
    assert problem == f"signature by {SIGNER.key_id!r} is invalid"


@pytest.mark.parametrize("signature", [b"", b"\x00" * 63, b"\x00" * 65, b"\x00" * 64])
def test_keyring_refuses_malformed_signature_without_raising(signature: bytes) -> None:
    """Signatures of the wrong length or all zeros are reported invalid, not raised."""
    keyring = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key)])
    assert "is invalid" in (keyring.verify(SIGNER.key_id, b"m", signature, at_us=0) or "")


def test_keyring_refuses_other_key_under_same_id() -> None:
    """A signature by a different private key presented under the trusted key id fails."""
    impostor = Ed25519Signer(bytes(range(1, 33)), key_id=SIGNER.key_id)
    keyring = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key)])
    assert keyring.verify(SIGNER.key_id, b"m", impostor.sign(b"m"), at_us=0) is not None


def test_rotation_keeps_old_signatures_verifiable() -> None:
    """With an old key closed and a new key open, each verifies signatures of its period."""
    old, new = SIGNER, Ed25519Signer(bytes(range(1, 33)))
    keyring = Keyring.of([PublicKey(old.key_id, old.public_key, 0, 999),
                          PublicKey(new.key_id, new.public_key, 1000)])
    assert keyring.verify(old.key_id, b"m", old.sign(b"m"), at_us=500) is None
    assert keyring.verify(new.key_id, b"m", new.sign(b"m"), at_us=1500) is None
    assert keyring.verify(old.key_id, b"m", old.sign(b"m"), at_us=1500) is not None


# -- keyring file format -------------------------------------------------------------


def test_keyring_json_round_trip() -> None:
    """to_json gives the documented format and from_json/loads read it back unchanged."""
    other = Ed25519Signer(bytes(range(1, 33)))
    keyring = Keyring.of([PublicKey(SIGNER.key_id, SIGNER.public_key, 5, 10),
                          PublicKey(other.key_id, other.public_key)])
    doc = keyring.to_json()
    assert doc["format"] == "sealtrail-keyring/v1"
    assert [k["key_id"] for k in doc["keys"]] == sorted([SIGNER.key_id, other.key_id])
    assert all(k["algorithm"] == "ed25519" for k in doc["keys"])
    assert Keyring.from_json(doc) == keyring
    assert Keyring.loads(json.dumps(doc)) == keyring


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "not a sealtrail keyring"),
        ({"keys": [_entry()]}, "not a sealtrail keyring"),
        ({"format": "sealtrail-keyring/v2", "keys": [_entry()]}, "not a sealtrail keyring"),
        (_doc(_entry(public_key="not base64!")), "keyring entry 0 is malformed"),
        (_doc(_entry(public_key="AAA")), "keyring entry 0 is malformed"),
        (_doc(_entry(public_key=base64.b64encode(bytes(31)).decode())), "32 bytes"),
        (_doc(_entry(public_key=base64.b64encode(bytes(33)).decode())), "32 bytes"),
        ({"format": "sealtrail-keyring/v1"}, "holds no keys"),
        (_doc(), "holds no keys"),
        (_doc(_entry(algorithm="rsa")), "keyring entry 0: unsupported algorithm"),
        (_doc(_entry(), {"key_id": "x"}), "keyring entry 1 is malformed"),
        (_doc("ed25519:abc"), "keyring entry 0 is malformed"),
        (_doc(_entry(not_before="soon")), "keyring entry 0 is malformed"),
        (_doc(_entry(not_before=10, not_after=5)), "not_after is before not_before"),
        (_doc(_entry(), _entry()), "keyring entry 1: key id .* is listed twice"),
        ({"format": "sealtrail-keyring/v1", "keys": 5}, "'keys' must be a list"),
        (_doc([_entry()]), "keyring entry 0 is malformed"),
    ],
    ids=["not-a-dict", "no-format", "wrong-format", "bad-base64", "bad-padding", "short-key",
         "long-key", "no-keys-field", "empty-keys", "algorithm", "missing-fields",
         "entry-not-object", "bad-time", "inverted-window", "duplicate-id", "keys-not-list",
         "entry-a-list"],
)
def test_keyring_from_json_errors(doc: Any, message: str) -> None:
    """Malformed keyring documents raise KeyMaterialError (a DataError) saying what is wrong."""
    with pytest.raises(KeyMaterialError, match=message) as caught:
        Keyring.from_json(doc)
    assert isinstance(caught.value, DataError)


def test_keyring_loads_refuses_invalid_json() -> None:
    """Text that is not JSON is refused with KeyMaterialError."""
    with pytest.raises(KeyMaterialError, match="not valid JSON"):
        Keyring.loads("{not json")
