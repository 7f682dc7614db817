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
    "MAX_NOTE_BYTES",
    "NoteCheckpoint",
    "NoteSignature",
    "checkpoint_body",
    "key_hash",
    "parse_checkpoint_body",
    "parse_note",
    "sign_note",
    "verifier_key",
    "verify_note",
]

ED25519_TYPE = b"\x01"
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
    if not size.isdigit() or (size != "0" and size.startswith("0")):
        raise IntegrityError(f"checkpoint note tree size {size!r} is not a decimal number")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
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
        except binascii.Error:
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
