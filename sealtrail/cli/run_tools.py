"""Subcommands for operators and auditors: verify, keys, policy."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from sealtrail.cli.common import print_json, settings_from
from sealtrail.errors import KeyMaterialError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify", help="verify an archive against a pinned public keyring",
        description="Check every chain of the archive: entry hashes and links, signatures, "
        "checkpoints and their chain, segment digests and contiguity, and that every raw "
        "offset is accounted for. Only keys in --keys are trusted; keys found in the archive "
        "are not. Exit 0 when intact, 1 when anything is wrong (naming the chain, segment and "
        "seq where the evidence first breaks), 2 for usage or I/O errors.",
    )
    p.add_argument("archive_pos", nargs="?", metavar="ARCHIVE",
                   help="archive URL: a directory, file:// or s3://bucket/prefix")
    p.add_argument("--archive", metavar="URL", help="same as ARCHIVE")
    p.add_argument("--keys", required=True, metavar="KEYRING",
                   help="public keyring JSON (e.g. .sealtrail/keys/public.json)")
    p.add_argument("--no-signatures", action="store_true",
                   help="check hashes and links only (faster; signatures of checkpoints are "
                   "still checked)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument("--locks", action=argparse.BooleanOptionalAction, default=None,
                   help="check Object Lock mode, retain-until per retention class and legal "
                   "holds of every object (default: on for s3:// archives)")
    p.add_argument("--max-age", type=float, metavar="SECONDS",
                   help="fail when a chain's newest checkpoint (heartbeats included) is older")
    p.add_argument("--metrics-file", metavar="PATH",
                   help="also write the result as Prometheus metrics (verify ok, broken "
                   "chains, failures by kind) for node_exporter's textfile collector")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="verify chains in N processes (default 0: one per core)")
    p.add_argument("--completeness", action="store_true",
                   help="also report, per raw partition, the source offsets the chains cover "
                   "and any hole or offset sealed twice (fails when there is one)")
    p.set_defaults(func=_verify)

    pol = sub.add_parser("policy", help="validate a redaction policy file")
    psub = pol.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    k = psub.add_parser("check", help="check a policy file; print what each rule does")
    k.add_argument("file", nargs="?", help="policy YAML (default: the configured policy)")
    k.set_defaults(func=_policy_check)


def _verify(args: argparse.Namespace) -> int:
    from sealtrail.archive import open_archive
    from sealtrail.keys import load_keyring
    from sealtrail.verify import ChainReport, verify_archive

    settings = settings_from(args)
    url = args.archive_pos or args.archive or settings.archive
    if not url.startswith("s3://") and not Path(url.removeprefix("file://")).is_dir():
        print(f"sealtrail: no archive at {url}", file=sys.stderr)
        return 2
    try:
        keyring = load_keyring(Path(args.keys))
    except KeyMaterialError as exc:  # a bad keyring is a usage error, not failed evidence
        print(f"sealtrail: {exc}", file=sys.stderr)
        return 2
    store = open_archive(settings, url)
    from sealtrail.fast_segments import AVAILABLE, NOT_BUILT

    if not AVAILABLE and not args.json:
        print(f"note: {NOT_BUILT}")

    def show(report: ChainReport) -> None:
        if args.json:
            return
        status = "OK" if report.ok else "BROKEN"
        print(f"{status:6} chain {report.chain_id}: {report.entries} entries "
              f"({report.events} events, {sum(report.rejections.values())} rejections) in "
              f"{report.segments} segments; head seq {report.head_seq}"
              + (f"; newest checkpoint {report.age_seconds:.0f} s old"
                 if report.age_seconds is not None else "")
              + (f"; {report.purged} entries purged after retention" if report.purged else ""))
        for finding in report.findings:
            print(f"       {finding}")

    from sealtrail.retention import RetentionPolicy  # lock checks and staleness: issue 8

    locks = store.enforces_retention if args.locks is None else args.locks
    report = verify_archive(store, keyring, check_signatures=not args.no_signatures,
                            progress=show, now_us=int(datetime.now(UTC).timestamp() * 1e6),
                            max_age_seconds=args.max_age,
                            locks=RetentionPolicy.from_settings(settings) if locks else None,
                            workers=args.workers if args.workers > 0 else (os.cpu_count() or 1),
                            reopen=lambda: open_archive(settings, url))
    if args.metrics_file:
        from sealtrail.verify_metrics import write_verify_metrics

        write_verify_metrics(Path(args.metrics_file), report, url)
    for finding in report.findings:
        if not args.json:
            print(f"BROKEN {finding}")
    if args.json:
        print_json(report.to_json())
    elif not report.chains:
        print(f"FAILED: {url} holds no chains")
    else:
        broken = sum(not c.ok for c in report.chains)
        print(f"{'VERIFIED' if report.ok else 'FAILED'}: {len(report.chains)} chains, "
              f"{sum(c.entries for c in report.chains)} entries, {broken} broken "
              f"({datetime.now(UTC).isoformat(timespec='seconds')})")
    if args.completeness:  # issue 7: per raw partition, every offset accounted for
        from sealtrail.completeness import print_completeness

        return max(0 if report.ok else 1, print_completeness(store, as_json=args.json))
    return 0 if report.ok else 1


def _policy_check(args: argparse.Namespace) -> int:
    from sealtrail.policy import load_policy

    settings = settings_from(args)
    path = args.file or settings.policy_file or None
    policy = load_policy(path, None, check_only=True)
    print(f"policy {policy.policy_id} v{policy.version} ({path or 'shipped default'}): "
          f"{len(policy.rules)} rules, unknown attributes: {policy.unknown_attributes}, "
          f"subject field: {policy.subject_field}")
    for rule in policy.rules:
        scope = ", ".join(sorted(rule.event_types)) or "all event types"
        print(f"  {rule.selector:28} {rule.action:12} ({scope}): {rule.describe()}")
    print("OK: per field and per attribute key, the first rule that selects it and applies "
          "to the event's type wins; detectors look at what no rule changed")
    return 0
