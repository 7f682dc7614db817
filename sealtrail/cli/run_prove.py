"""``sealtrail prove`` and ``sealtrail verify-proof``: one event's offline proof."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sealtrail.cli.common import (
    Location,
    archive_and_keyring,
    archive_option,
    keyring_option,
    load_keyring_at,
    settings_from,
    using,
)
from sealtrail.errors import IntegrityError


def configure_prove(p: argparse.ArgumentParser) -> None:
    p.description = ("Find EVENT_ID in the archive and write its sealed record, its RFC 6962 "
                     "inclusion proof and the signed checkpoint covering it. The chain is "
                     "verified (against --keys) up to the segment holding the event; a break "
                     "before it exits 1, naming it.")
    p.add_argument("event_id", metavar="EVENT_ID")
    archive_option(p)
    keyring_option(p)
    p.add_argument("--out", required=True, metavar="FILE", help="proof file to write")
    p.set_defaults(func=_prove)


def configure_verify_proof(p: argparse.ArgumentParser) -> None:
    p.description = ("Exit 0 when the proof checks out against KEYRING, 1 when not, 2 when "
                     "the file cannot be read or is not a proof (too large, not JSON, nested "
                     "too deeply, members of the wrong type). Needs no archive and no network.")
    p.add_argument("proof", metavar="PROOF")
    p.add_argument("--keys", required=True, metavar="KEYRING", help="public keyring JSON")
    p.set_defaults(func=_verify_proof)


def _prove(args: argparse.Namespace) -> None:
    from sealtrail.runtime.durable import write_private_bytes
    from sealtrail.verify.proof import build_proof

    settings = settings_from(args)
    where, keys, store, keyring = archive_and_keyring(args, settings)
    with using(where, keys):
        data = build_proof(store, args.event_id, keyring)
    write_private_bytes(Path(args.out), data)
    doc = json.loads(data)
    print(f"proof for event {args.event_id}: chain {doc['entry']['chain_id']} seq "
          f"{doc['entry']['seq']}, {doc['checkpoint_key']}; written to {args.out} (from "
          f"{where})")


def _verify_proof(args: argparse.Namespace) -> None:
    from sealtrail.inputs import read_file
    from sealtrail.verify.proof import MAX_PROOF_BYTES, verify_proof

    keyring = load_keyring_at(Location("keyring", args.keys, "--keys"))
    data = read_file(args.proof, what="proof", max_bytes=MAX_PROOF_BYTES)
    try:
        result = verify_proof(data, keyring)  # not a proof at all: MalformedInputError, exit 2
    except IntegrityError as exc:
        print(f"FAILED: {exc}")
        raise
    signed = "its batch sealed by" if result.batch else "entry signed by"
    print(f"VERIFIED: event {result.event_id} is entry seq {result.seq} of chain "
          f"{result.chain_id}, covered by checkpoint {result.checkpoint_index} "
          f"({signed} {result.key_id})")
