"""``sealtrail export-note`` and ``sealtrail verify-note``: checkpoints as C2SP signed
notes."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from sealtrail.cli.common import (
    Location,
    archive_and_keyring,
    archive_option,
    keyring_option,
    keys_location,
    load_keyring_at,
    settings_from,
    using,
)
from sealtrail.errors import IntegrityError, KeyMaterialError


def configure_export_note(p: argparse.ArgumentParser) -> None:
    p.description = ("Sign (with the configured signing key) the chain's checkpoint as a "
                     "C2SP signed note: origin <ORIGIN>/<chain>, tree size = entries through "
                     "the checkpoint, RFC 6962 root of all their entry hashes. Prints the note "
                     "verifier key on stderr.")
    p.add_argument("chain_id", metavar="CHAIN")
    p.add_argument("--index", type=int, help="checkpoint index (default: the newest)")
    p.add_argument("--since", type=int, metavar="INDEX",
                   help="also prove consistency from this earlier checkpoint: write a C2SP "
                   "tlog-witness add-checkpoint body (old size, RFC 9162 proof, the note)")
    p.add_argument("--origin", default="sealtrail", help="origin prefix (a log name you own)")
    p.add_argument("--name", help="note key name (default: the origin prefix)")
    archive_option(p)
    keyring_option(p)
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=_export_note)


def configure_verify_note(p: argparse.ArgumentParser) -> None:
    p.description = ("Exit 0 when a signature by --key-id (from KEYRING) verifies, 1 when "
                     "none does, 2 when the file cannot be read or is not a signed note.")
    p.add_argument("note", metavar="NOTE")
    p.add_argument("--keys", required=True, metavar="KEYRING", help="public keyring JSON")
    p.add_argument("--key-id", required=True, help="keyring key id that signed the note")
    p.add_argument("--name", default="sealtrail", help="note key name")
    p.set_defaults(func=_verify_note)


def _export_note(args: argparse.Namespace) -> None:
    from sealtrail.core.note import verifier_key
    from sealtrail.keys import load_signer
    from sealtrail.runtime.durable import write_private_bytes
    from sealtrail.verify.proof import chain_note

    settings = settings_from(args)
    with using(keys_location(settings), hint="create keys with `sealtrail keys init`"):
        signer = load_signer(settings.keys)
    where, keys, store, keyring = archive_and_keyring(args, settings)
    name = args.name or args.origin
    with using(where, keys):
        note = chain_note(store, args.chain_id, origin=args.origin, name=name, signer=signer,
                          public_key=signer.public_key, index=args.index, keyring=keyring,
                          since=args.since)
    if args.out:
        write_private_bytes(Path(args.out), note)
    else:
        sys.stdout.write(note.decode())
    print(f"verifier key: {verifier_key(name, signer.public_key)} (chain {args.chain_id} of "
          f"{where})", file=sys.stderr)


def _verify_note(args: argparse.Namespace) -> None:
    from sealtrail.core.note import MAX_NOTE_BYTES, verify_note
    from sealtrail.inputs import read_file

    keyring = load_keyring_at(Location("keyring", args.keys, "--keys"))
    key = keyring.keys.get(args.key_id)
    if key is None:
        raise KeyMaterialError(f"key {args.key_id!r} is not in {args.keys}")
    data = read_file(args.note, what="note", max_bytes=MAX_NOTE_BYTES)
    try:
        cp = verify_note(data, args.name, key.public_key)  # malformed: exit 2
    except IntegrityError as exc:
        print(f"FAILED: {exc}")
        raise
    print(f"VERIFIED: {cp.origin} size {cp.tree_size} at "
          f"{datetime.now(UTC).isoformat(timespec='seconds')}")
