"""``sealtrail export`` and ``sealtrail verify-export``: matching events with their
inclusion proofs, as a bundle an outside auditor checks offline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sealtrail.cli.common import (
    Location,
    archive_and_keyring,
    archive_option,
    index_location,
    index_option,
    keyring_option,
    load_keyring_at,
    operator_option,
    settings_from,
    using,
)
from sealtrail.cli.run_search import QUERY_HELP, search_index
from sealtrail.errors import IntegrityError, VerificationFailedError


def configure_export(p: argparse.ArgumentParser) -> None:
    p.description = ("Search, then prove every matching event against the archive's signed "
                     "checkpoints (RFC 6962 inclusion proofs) and write a bundle an outside "
                     "auditor checks offline with `sealtrail verify-export`. The index, the "
                     "archive and the keyring are the configured ones (index_url, "
                     "archive_url, keys_dir) unless given. " + QUERY_HELP)
    p.add_argument("query", help="the query (quote it)")
    p.add_argument("--out", required=True, metavar="BUNDLE.zip")
    p.add_argument("--limit", type=int, default=100_000)
    index_option(p)
    archive_option(p)
    keyring_option(p)
    operator_option(p, "in the manifest and the chain-of-custody event", who="who exports")
    p.set_defaults(func=_export)


def configure_verify_export(p: argparse.ArgumentParser) -> None:
    p.description = ("Check every proof of an export bundle against a keyring you obtained "
                     "yourself (never the one inside the bundle). Exit 0 when every proof "
                     "checks, 1 otherwise, 2 when the file cannot be read or is not an export "
                     "bundle (not a zip, members that would inflate beyond the caps, a "
                     "manifest of the wrong structure).")
    p.add_argument("bundle", metavar="BUNDLE.zip")
    p.add_argument("--keys", required=True, metavar="KEYRING")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_verify_export)


def _export(args: argparse.Namespace) -> None:
    from sealtrail.custody import operator_name, require_access
    from sealtrail.export import build_export
    from sealtrail.runtime.durable import write_private_bytes
    from sealtrail.search import counted, parse_query

    settings = settings_from(args).with_stack()
    where, keys, store, keyring = archive_and_keyring(args, settings)
    at = index_location(args, settings)
    operator = operator_name(settings, args.operator)
    query = parse_query(args.query, limit=args.limit + 1)
    rows, coverage = search_index(at, query)
    truncated = len(rows) > args.limit
    rows = rows[: args.limit]
    with using(where, keys, at):
        data, result = build_export(store, keyring, rows, query, coverage=coverage,
                                    operator=operator, truncated=truncated)
    custody = require_access(settings, tool="export", operator=operator, query=args.query,
                             count=result.count)
    write_private_bytes(Path(args.out), data)
    print(f"exported {counted(result.count, 'event')} with inclusion proofs to {args.out} "
          f"({counted(result.chains, 'chain')}, {counted(result.checkpoints, 'checkpoint')}"
          f"{', TRUNCATED at --limit' if truncated else ''}); {result.manifest['index_coverage']}",
          file=sys.stderr)
    print(f"read {at}; {where}; {keys}", file=sys.stderr)
    print(custody.message, file=sys.stderr)


def _verify_export(args: argparse.Namespace) -> None:
    from sealtrail.export import MAX_BUNDLE_BYTES, verify_export
    from sealtrail.inputs import read_file

    keyring = load_keyring_at(Location("keyring", args.keys, "--keys"))
    data = read_file(args.bundle, what="bundle", max_bytes=MAX_BUNDLE_BYTES)
    try:
        result = verify_export(data, keyring)  # not a bundle at all: MalformedInputError, exit 2
    except IntegrityError as exc:
        print(f"FAILED: {exc}")
        raise
    if args.json:
        print(json.dumps(_as_json(result), sort_keys=True))
    else:
        _print_result(result)
    if not result.ok:
        raise VerificationFailedError(f"{len(result.problems)} proofs of {args.bundle} do not "
                                      "check out")


def _as_json(result: Any) -> dict[str, Any]:
    manifest = result.manifest
    return {"ok": result.ok, "count": result.count, "problems": result.problems,
            "events_jsonl_checked": result.events_checked,
            "unsigned_context": {"query": manifest.get("query"),
                                 "time_range_asked": manifest.get("time_range_asked"),
                                 "operator": manifest.get("operator")}}


def _print_result(result: Any) -> None:
    manifest = result.manifest
    for problem in result.problems:
        print(f"BROKEN {problem}")
    asked = manifest.get("time_range_asked", {})
    print(f"{'VERIFIED' if result.ok else 'FAILED'}: {result.count} of "
          f"{manifest.get('count')} events proven against signed checkpoints (entry "
          "hash, entry signature, inclusion proof, checkpoint signature)"
          + ("; events.jsonl is exactly the proven entries" if result.events_checked
             else "; no events.jsonl"))
    print(f"unsigned context (the manifest; not evidence): query "
          f"{manifest.get('query')!r}, time range {asked.get('since_utc')} .. "
          f"{asked.get('until_utc')}, exported by {manifest.get('operator')}")
