"""C2SP tlog-cosignature/v1 and tlog-witness add-checkpoint bodies, as the witness writes
them: the exact signed message, key ids, verifier keys, and refusals."""

from __future__ import annotations

import base64
import hashlib

import pytest

from sealtrail.core.note import (
    checkpoint_body,
    consistency_request,
    cosign,
    cosigner_key,
    parse_consistency_request,
    parse_verifier_key,
    verifier_key,
    verify_cosignature,
)
from sealtrail.core.signing import Ed25519Signer
from sealtrail.errors import IntegrityError, MalformedInputError

BODY = checkpoint_body("example.com/log", 7, bytes(range(32)), ["sealtrail-checkpoint 1 ab"])


def _signer_with_plus() -> Ed25519Signer:
    """A key whose base64 holds '+' (verifier keys are split on '+')."""
    for n in range(1000):
        signer = Ed25519Signer(hashlib.sha256(str(n).encode()).digest())
        if "+" in base64.b64encode(b"\x04" + signer.public_key).decode():
            return signer
    raise AssertionError("no such key in 1000 tries")


def test_cosignature_signs_the_header_time_and_body() -> None:
    """The line is '\u2014 name base64(key id || u64 time || sig)', key id = SHA-256(name ||
    0x0A || 0x04 || key)[:4], sig over 'cosignature/v1\\ntime <t>\\n' || body."""
    signer = _signer_with_plus()
    line = cosign(BODY, "w.example/1", signer, signer.public_key, 1_700_000_000)
    text = line.decode()
    assert text.startswith("\u2014 w.example/1 ") and text.endswith("\n")
    blob = base64.b64decode(text.split(" ")[2])
    kid = hashlib.sha256(b"w.example/1\n\x04" + signer.public_key).digest()[:4]
    assert blob[:4] == kid and int.from_bytes(blob[4:12], "big") == 1_700_000_000
    assert blob[12:] == signer.sign(b"cosignature/v1\ntime 1700000000\n" + BODY)
    cp, when = verify_cosignature(BODY + b"\n" + line, "w.example/1", signer.public_key)
    assert (cp.tree_size, when) == (7, 1_700_000_000)
    vkey = cosigner_key("w.example/1", signer.public_key)
    assert parse_verifier_key(vkey) == ("w.example/1", b"\x04", signer.public_key)
    assert parse_verifier_key(verifier_key("w.example/1", signer.public_key))[1] == b"\x01"


def test_cosignatures_are_refused_when_anything_differs() -> None:
    """Another body, another time, another key or name, or a key id that does not match."""
    signer, other = _signer_with_plus(), Ed25519Signer(bytes(32))
    line = cosign(BODY, "w1", signer, signer.public_key, 5)
    with pytest.raises(IntegrityError, match="invalid"):
        verify_cosignature(BODY.replace(b"\n7\n", b"\n8\n") + b"\n" + line, "w1",
                           signer.public_key)
    blob = bytearray(base64.b64decode(line.decode().split(" ")[2]))
    blob[11] ^= 1  # the timestamp
    forged = f"\u2014 w1 {base64.b64encode(bytes(blob)).decode()}\n".encode()
    with pytest.raises(IntegrityError, match="invalid"):
        verify_cosignature(BODY + b"\n" + forged, "w1", signer.public_key)
    with pytest.raises(IntegrityError, match="no cosignature"):
        verify_cosignature(BODY + b"\n" + line, "w1", other.public_key)
    with pytest.raises(IntegrityError, match="key id does not match"):
        parse_verifier_key(cosigner_key("w1", signer.public_key).replace("w1+", "w2+", 1))


def test_add_checkpoint_body_round_trips() -> None:
    """'old <m>', one base64 hash per line, an empty line, the note; malformed ones refused."""
    proof = [bytes([i]) * 32 for i in range(3)]
    data = consistency_request(5, proof, BODY)
    assert data.startswith(b"old 5\n") and data.count(b"\n\n") >= 1
    assert parse_consistency_request(data) == (5, proof, BODY)
    for bad in (b"old 05\n\n" + BODY, b"new 5\n\n" + BODY, b"old 5\nnot-base64!\n\n" + BODY,
                b"old 5\n" + BODY):
        with pytest.raises(MalformedInputError):
            parse_consistency_request(bad)
