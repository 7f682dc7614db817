"""A witness's state directory: its own key, its record, and what it cosigned.

    DIR/witness.key          the witness's Ed25519 seed, JSON, mode 0600
    DIR/witness.vkey         its C2SP cosigner verifier key (name+id+key), to publish
    DIR/state.json           the record (sealtrail-witness/v1), replaced atomically
    DIR/notes/<name>.note    the newest cosigned note of each chain and of the index log
    DIR/proofs/<name>.txt    the consistency proof the last run checked, as a C2SP
                             tlog-witness add-checkpoint body (old size, proof, note)

The directory must live outside the archive (another machine, account or bucket): it is
what proves that the archive's newest part was not removed.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from sealtrail.core.note import cosigner_key
from sealtrail.core.signing import Ed25519Signer
from sealtrail.core.witness import WitnessState
from sealtrail.errors import ConfigError, IntegrityError
from sealtrail.keys import read_private, write_private
from sealtrail.runtime.durable import fsync_dir

__all__ = ["load_or_create_key", "load_state", "safe_name", "save_state", "write_atomic"]

KEY_FILE = "witness.key"
VKEY_FILE = "witness.vkey"
STATE_FILE = "state.json"


def safe_name(text: str) -> str:
    """A file name for an origin or chain id (its safe characters)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:200]


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsynced, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def load_or_create_key(state_dir: Path, name: str) -> tuple[Ed25519Signer, str]:
    """The witness's signer and verifier key; created (0600) on the first run."""
    path = state_dir / KEY_FILE
    if not path.exists():
        signer = Ed25519Signer.generate()
        seed = signer._key.private_bytes_raw()
        write_private(path, {"algorithm": "ed25519", "name": name,
                             "seed": base64.b64encode(seed).decode()})
        write_atomic(state_dir / VKEY_FILE, (cosigner_key(name, signer.public_key) + "\n")
                     .encode())
        return signer, cosigner_key(name, signer.public_key)
    doc = read_private(path)
    try:
        signer = Ed25519Signer(base64.b64decode(doc["seed"], validate=True))
    except (KeyError, ValueError, TypeError):
        raise ConfigError(f"{path} is not a witness key") from None
    if doc.get("name") != name:
        raise ConfigError(f"{path} is the key of witness {doc.get('name')!r}, not {name!r}")
    return signer, cosigner_key(name, signer.public_key)


def load_state(state_dir: Path) -> WitnessState | None:
    """The record in ``state_dir`` (None before the first run)."""
    path = state_dir / STATE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return WitnessState.from_json(json.loads(data))
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntegrityError(f"{path} is not a witness record: {exc}") from None


def save_state(state_dir: Path, state: WitnessState) -> None:
    write_atomic(state_dir / STATE_FILE,
                 (json.dumps(state.to_json(), indent=1, sort_keys=True) + "\n").encode())
