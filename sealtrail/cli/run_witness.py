"""``sealtrail witness``: check that an archive only grew since the witness last saw it,
cosign its heads, and record them outside the archive."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from sealtrail.cli.common import (
    Location,
    archive_location,
    load_keyring_at,
    open_archive_at,
    print_json,
    settings_from,
    using,
)
from sealtrail.errors import VerificationFailedError


def configure_witness(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Check that ARCHIVE is an append-only extension of what the witness "
        "recorded in --state DIR last time: every chain at or past the checkpoint recorded, "
        "with the same hash there and an RFC 9162 consistency proof to the new tree; the "
        "index log likewise; no chain gone; a chain it never saw not dated before its last "
        "run. Then cosign the new heads with the witness's own Ed25519 key (C2SP "
        "tlog-cosignature, created in DIR on the first run) and record them in DIR. Keep "
        "DIR outside the archive (another machine, account or bucket). Exit 0 when recorded; "
        "1 on a rollback, fork or missing chain, and nothing is recorded; 2 for usage or "
        "I/O errors.")
    p.add_argument("archive", metavar="ARCHIVE", nargs="?",
                   help="archive URL: a directory, file:// or s3://bucket/prefix (default: "
                   "the archive_url setting, else <home>/archive)")
    p.add_argument("--keys", required=True, metavar="KEYRING",
                   help="public keyring JSON the archive must be signed by")
    p.add_argument("--state", required=True, metavar="DIR",
                   help="the witness's directory: its key, record, cosigned notes, proofs")
    p.add_argument("--name", default="sealtrail-witness",
                   help="the witness's key name in its cosignatures (a URL-like name you own)")
    p.add_argument("--origin", default="sealtrail",
                   help="origin prefix of the cosigned checkpoints (as export-note)")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=_witness)


def _witness(args: argparse.Namespace) -> None:
    from sealtrail.witness import run_witness

    settings = settings_from(args)
    where = archive_location(args, settings)
    store = open_archive_at(settings, where)
    keyring = load_keyring_at(Location("keyring", args.keys, "--keys"))
    state_dir = Path(args.state)
    with using(where):
        result = run_witness(store, keyring, state_dir,
                             name=args.name, origin=args.origin)
    if args.json:
        print_json({"ok": result.ok, "recorded": result.state is not None,
                    "findings": [f.to_json() for f in result.findings],
                    "chains": sorted(result.state.chains) if result.state else [],
                    "index": result.state.index.seq if result.state and result.state.index
                    else None, "consistency_proofs": result.proofs,
                    "witness_key": result.vkey})
    else:
        _print_result(args, result, state_dir, where)
    if not result.ok:
        raise VerificationFailedError(
            f"{where.where} does not extend what {args.name} recorded "
            f"({len(result.findings)} findings); nothing was recorded or cosigned")


def _print_result(args: argparse.Namespace, result: Any, state_dir: Path,
                  where: Location) -> None:
    for finding in result.findings:
        print(f"BROKEN {finding}")
    if not result.ok:
        print(f"REFUSED: the archive does not extend what {args.name} recorded "
              f"({len(result.findings)} findings); nothing was recorded or cosigned")
        return
    state = result.state
    assert state is not None
    print(f"WITNESSED: {len(state.chains)} chains ({result.new_chains} new), "
          + (f"index {state.index.seq}, " if state.index else "no archive index, ")
          + f"{result.proofs} consistency proofs checked; cosigned by {args.name} and "
          f"recorded in {state_dir}")
    print(f"witness key (give it to verifiers): {result.vkey}")
    print(f"witnessed {where}")
