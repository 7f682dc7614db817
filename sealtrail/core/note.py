"""C2SP signed notes and tlog-checkpoint bodies (https://c2sp.org/signed-note,
https://c2sp.org/tlog-checkpoint), Ed25519 only. Pure: bytes in, bytes out.

A checkpoint body is three lines, then optional extension lines::

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, standard base64>\\n
    [<extension>\\n ...]

A signed note is the body, an empty line, and one signature line per signer::

    \\u2014 <key name> <base64(key hash (4 bytes) || Ed25519 signature (64 bytes))>\\n

The key hash is the first 4 bytes of SHA-256(key name || 0x0A || 0x01 || public key),
0x01 being the signature type of Ed25519; the signature is over the body bytes.
docs/format.md ("C2SP checkpoint notes") gives the mapping from sealtrail checkpoints.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sealtrail.core.hashing import HASH_SIZE, sha256
from sealtrail.core.signing import Signer
from sealtrail.errors import IntegrityError, MalformedInputError

__all__ = [
    "COSIGNATURE_TYPE",
    "MAX_NOTE_BYTES",
    "NoteCheckpoint",
    "NoteSignature",
    "checkpoint_body",
    "consistency_request",
    "cosign",
    "cosigner_key",
    "key_hash",
    "parse_checkpoint_body",
    "parse_consistency_request",
    "parse_note",
    "parse_verifier_key",
    "sign_note",
    "verifier_key",
    "verify_cosignature",
    "verify_note",
]

ED25519_TYPE = b"\x01"
#: Signature type of a C2SP tlog-cosignature/v1 (Ed25519): https://c2sp.org/tlog-cosignature
COSIGNATURE_TYPE = b"\x04"
#: The largest note verify-note reads (a tlog-checkpoint body and its signature lines).
MAX_NOTE_BYTES = 1024 * 1024
MAX_SIGNATURES = 100
_DASH = "\u2014"


def _check_name(name: str) -> None:
    if not name or any(c.isspace() for c in name) or "+" in name:
        raise ValueError(f"note key name must be non-empty, without spaces or '+': {name!r}")


def key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte key hash of an Ed25519 note key."""
    _check_name(name)
    return sha256(name.encode("utf-8"), b"\n", ED25519_TYPE, public_key)[:4]


def verifier_key(name: str, public_key: bytes) -> str:
    """The note verifier key string: ``<name>+<hex key hash>+<base64(0x01 || key)>``."""
    return (f"{name}+{key_hash(name, public_key).hex()}+"
            f"{base64.b64encode(ED25519_TYPE + public_key).decode()}")


@dataclass(frozen=True)
class NoteCheckpoint:
    """A parsed tlog-checkpoint body."""

    origin: str
    tree_size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def checkpoint_body(origin: str, tree_size: int, root_hash: bytes,
                    extensions: Sequence[str] = ()) -> bytes:
    """The tlog-checkpoint body for a log ``origin`` of ``tree_size`` leaves."""
    if not origin or "\n" in origin:
        raise ValueError("origin must be one non-empty line")
    if tree_size < 0 or len(root_hash) != HASH_SIZE:
        raise ValueError("tree size must be >= 0 and the root a 32-byte hash")
    lines = [origin, str(tree_size), base64.b64encode(root_hash).decode()]
    for ext in extensions:
        if not ext or "\n" in ext:
            raise ValueError("extension lines must be non-empty single lines")
        lines.append(ext)
    return ("\n".join(lines) + "\n").encode("utf-8")


def parse_checkpoint_body(body: bytes) -> NoteCheckpoint:
    """The fields of a tlog-checkpoint body; IntegrityError when it is not one."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise IntegrityError("checkpoint note body is not UTF-8") from None
    if not text.endswith("\n"):
        raise IntegrityError("checkpoint note body must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or not lines[0] or any(not line for line in lines):
        raise IntegrityError("checkpoint note body needs origin, size and root lines")
    size = lines[1]
    if (not (size.isascii() and size.isdigit()) or len(size) > 20
            or (size != "0" and size.startswith("0"))):
        raise IntegrityError(f"checkpoint note tree size {size[:24]!r} is not a decimal number")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except ValueError:  # binascii.Error, and non-ASCII text
        raise IntegrityError("checkpoint note root hash is not base64") from None
    if len(root) != HASH_SIZE or base64.b64encode(root).decode() != lines[2]:
        raise IntegrityError("checkpoint note root hash is not 32 bytes of standard base64")
    return NoteCheckpoint(lines[0], int(size), root, tuple(lines[3:]))


@dataclass(frozen=True)
class NoteSignature:
    name: str
    key_hash: bytes
    signature: bytes


def sign_note(body: bytes, name: str, signer: Signer, public_key: bytes) -> bytes:
    """``body`` as a signed note with one Ed25519 signature line by ``signer``."""
    if not body.endswith(b"\n"):
        raise ValueError("a note body ends with a newline")
    blob = key_hash(name, public_key) + signer.sign(body)
    line = f"{_DASH} {name} {base64.b64encode(blob).decode()}\n"
    return body + b"\n" + line.encode("utf-8")


def parse_note(note: bytes) -> tuple[bytes, list[NoteSignature]]:
    """(body, signatures) of a signed note; MalformedInputError when it is not one."""
    if len(note) > MAX_NOTE_BYTES:
        raise MalformedInputError(f"signed note is {len(note)} bytes, at most {MAX_NOTE_BYTES}")
    split = note.rfind(b"\n\n")
    if split < 0:
        raise MalformedInputError("signed note has no blank line before its signatures")
    body, sig_text = note[: split + 1], note[split + 2 :]
    try:
        lines = sig_text.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise MalformedInputError("signed note signatures are not UTF-8") from None
    if not lines or lines[-1] != "" or len(lines) < 2:
        raise MalformedInputError("signed note must end with a newline after its signatures")
    if len(lines) - 1 > MAX_SIGNATURES:
        raise MalformedInputError(f"signed note has {len(lines) - 1} signature lines, at most "
                                  f"{MAX_SIGNATURES}")
    sigs = []
    for number, line in enumerate(lines[:-1], 1):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != _DASH:
            raise MalformedInputError(f"signature line {number} is not "
                                      "'\u2014 <name> <base64>'")
        try:
            blob = base64.b64decode(parts[2], validate=True)
        except ValueError:  # binascii.Error, and non-ASCII text (found by fuzzing)
            raise MalformedInputError(f"signature line {number} is not base64") from None
        if len(blob) < 5 or base64.b64encode(blob).decode() != parts[2]:
            raise MalformedInputError(f"signature line {number} is too short or not "
                                      "canonical base64")
        sigs.append(NoteSignature(parts[1], blob[:4], blob[4:]))
    return body, sigs


def verify_note(note: bytes, name: str, public_key: bytes) -> NoteCheckpoint:
    """The checkpoint of ``note`` once a signature by key ``name`` verifies: IntegrityError
    when none does, MalformedInputError when ``note`` is not a signed note at all."""
    body, sigs = parse_note(note)
    want = key_hash(name, public_key)
    for sig in sigs:
        if sig.name == name and sig.key_hash == want:
            try:
                Ed25519PublicKey.from_public_bytes(public_key).verify(sig.signature, body)
            except InvalidSignature:
                raise IntegrityError(f"note signature by {name!r} is invalid") from None
            return parse_checkpoint_body(body)
    raise IntegrityError(f"note carries no signature by key {name!r} ({want.hex()})")


# -- C2SP tlog-cosignature/v1 (a witness's timestamped cosignature) -------------------------


def cosigner_key(name: str, public_key: bytes) -> str:
    """The verifier key of a cosigner: ``<name>+<hex key id>+<base64(0x04 || key)>``."""
    _check_name(name)
    kid = sha256(name.encode("utf-8"), b"\n", COSIGNATURE_TYPE, public_key)[:4]
    return f"{name}+{kid.hex()}+{base64.b64encode(COSIGNATURE_TYPE + public_key).decode()}"


def parse_verifier_key(vkey: str) -> tuple[str, bytes, bytes]:
    """(name, signature type, public key) of a verifier key string; IntegrityError when it is
    not one, or its key id does not match."""
    parts = vkey.strip().split("+", 2)  # base64 may hold "+"; names and ids do not
    if len(parts) != 3:
        raise IntegrityError("a verifier key is <name>+<hex key id>+<base64 key>")
    name, kid, b64 = parts
    try:
        raw = base64.b64decode(b64, validate=True)
        want = bytes.fromhex(kid)
    except (binascii.Error, ValueError):
        raise IntegrityError("verifier key is not <name>+<hex>+<base64>") from None
    if len(raw) != 33 or raw[:1] not in (ED25519_TYPE, COSIGNATURE_TYPE):
        raise IntegrityError("verifier key is not an Ed25519 note or cosignature key")
    if sha256(name.encode("utf-8"), b"\n", raw[:1], raw[1:])[:4] != want:
        raise IntegrityError("verifier key id does not match its name and key")
    return name, raw[:1], raw[1:]


def _cosigned_message(body: bytes, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + body


def cosign(body: bytes, name: str, signer: Signer, public_key: bytes, timestamp: int) -> bytes:
    """The C2SP cosignature line (``\u2014 <name> base64(key id || u64 timestamp ||
    signature)``) of ``signer`` over checkpoint ``body`` at POSIX time ``timestamp``."""
    if not body.endswith(b"\n") or not 0 <= timestamp < 2**63:
        raise ValueError("a note body ends with a newline; the timestamp is a u63")
    kid = sha256(name.encode("utf-8"), b"\n", COSIGNATURE_TYPE, public_key)[:4]
    blob = kid + timestamp.to_bytes(8, "big") + signer.sign(_cosigned_message(body, timestamp))
    return f"{_DASH} {name} {base64.b64encode(blob).decode()}\n".encode()


def verify_cosignature(note: bytes, name: str, public_key: bytes) -> tuple[NoteCheckpoint, int]:
    """The checkpoint of ``note`` and the time of the cosignature by ``name``'s key, once it
    verifies; IntegrityError otherwise."""
    body, sigs = parse_note(note)
    kid = sha256(name.encode("utf-8"), b"\n", COSIGNATURE_TYPE, public_key)[:4]
    for sig in sigs:
        if sig.name == name and sig.key_hash == kid:
            if len(sig.signature) != 72:
                raise IntegrityError(f"cosignature by {name!r} is not 8 + 64 bytes")
            timestamp = int.from_bytes(sig.signature[:8], "big")
            try:
                Ed25519PublicKey.from_public_bytes(public_key).verify(
                    sig.signature[8:], _cosigned_message(body, timestamp))
            except InvalidSignature:
                raise IntegrityError(f"cosignature by {name!r} is invalid") from None
            return parse_checkpoint_body(body), timestamp
    raise IntegrityError(f"note carries no cosignature by {name!r} ({kid.hex()})")


def consistency_request(old_size: int, proof: Sequence[bytes], note: bytes) -> bytes:
    """A consistency proof and the checkpoint it leads to, in the form of a C2SP tlog-witness
    add-checkpoint request body: ``old <size>``, one base64 hash per line, an empty line,
    the note."""
    if old_size < 0 or len(proof) > 63:
        raise ValueError("old size must be >= 0 and a proof at most 63 hashes")
    lines = [f"old {old_size}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n").encode() + note


def parse_consistency_request(data: bytes) -> tuple[int, list[bytes], bytes]:
    """(old size, proof hashes, note) of an add-checkpoint body; IntegrityError if not one."""
    head, sep, note = data.partition(b"\n\n")
    if not sep:
        raise MalformedInputError("no empty line between the proof and the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise MalformedInputError("proof lines are not ASCII") from None
    first = lines[0].split(" ")
    if len(first) != 2 or first[0] != "old" or not first[1].isdigit() or \
            (first[1] != "0" and first[1].startswith("0")):
        raise MalformedInputError("the first line must be 'old <size>'")
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise MalformedInputError("a proof line is not base64") from None
        if len(h) != HASH_SIZE:
            raise MalformedInputError("a proof line is not a 32-byte hash")
        proof.append(h)
    return int(first[1]), proof, note
