"""``sealtrail verify``: check a whole archive against a pinned public keyring."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
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


def configure_verify(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Check every chain of the archive: entry hashes and links, signatures, "
        "checkpoints and their chain, segment digests and contiguity, and that every raw "
        "offset is accounted for. Only keys in --keys are trusted; keys found in the archive "
        "are not. ARCHIVE defaults to the configured archive (archive_url, else "
        "<home>/archive). Exit 0 when intact, 1 when anything is wrong (naming the chain, "
        "segment and seq where the evidence first breaks), 2 for usage or I/O errors.")
    p.add_argument("archive_pos", nargs="?", metavar="ARCHIVE",
                   help="archive URL: a directory, file:// or s3://bucket/prefix (default: "
                   "the archive_url setting, else <home>/archive)")
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
    p.add_argument("--witness", action="append", default=[], metavar="DIR_OR_NOTES",
                   help="hold the archive to a witness's record (repeatable): its state "
                   "directory, or notes it cosigned (a .note file or a directory of them, "
                   "with --witness-key); fails when anything it saw is missing or behind")
    p.add_argument("--witness-key", action="append", default=[], metavar="VKEY",
                   help="the verifier key (witness.vkey) of a witness whose exported notes "
                   "--witness names (repeatable)")
    p.add_argument("--completeness", action="store_true",
                   help="also report, per raw partition, the source offsets the chains cover "
                   "and any hole or offset sealed twice (fails when there is one)")
    p.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> None:
    from sealtrail.archive import open_archive
    from sealtrail.archive.fast_segments import AVAILABLE, NOT_BUILT

    settings = settings_from(args)
    where = archive_location(args, settings, args.archive_pos)
    store = open_archive_at(settings, where)
    keyring = load_keyring_at(Location("keyring", args.keys, "--keys"))
    if not args.json:
        print(f"verifying {where} against {args.keys}")
        if not AVAILABLE:
            print(f"note: {NOT_BUILT}")
    shown: dict[str, int] = {}  # chain id -> findings printed
    show = _shower(args.json, shown)
    with using(where):
        report = _run(args, settings, store, keyring, show,
                      reopen=lambda: open_archive(settings, where.where))
    if not args.json:  # what the index and the witnesses found after the walks
        _show_later(report, shown, show)
    if args.metrics_file:
        from sealtrail.verify.metrics import write_verify_metrics

        write_verify_metrics(Path(args.metrics_file), report, where.where)
    _print_result(args, report, store, where)
    complete = True
    if args.completeness:  # per raw partition, every offset accounted for
        from sealtrail.verify.completeness import print_completeness

        complete = print_completeness(report, as_json=args.json)
    if not report.ok or not complete:
        broken = sum(not c.ok for c in report.chains)
        raise VerificationFailedError(
            f"verification FAILED for {where}: " + (
                f"{broken} of {len(report.chains)} chains broken, "
                f"{len(report.findings)} archive findings" if report.chains
                else "it holds no chains") + ("" if complete else "; raw offsets unaccounted"))


def _run(args: argparse.Namespace, settings: Any, store: Any, keyring: Any, show: Any,
         reopen: Any) -> Any:
    """Walk the archive: the chains, the index, the witnesses' records."""
    from sealtrail.governance.retention import RetentionPolicy
    from sealtrail.verify import verify_archive
    from sealtrail.witness import apply_records, load_record

    locks = store.enforces_retention if args.locks is None else args.locks
    records = [load_record(Path(w), args.witness_key) for w in args.witness]
    anchors: dict[str, list[Any]] = {}
    for record in records:
        for chain_id, found in record.anchors().items():
            anchors.setdefault(chain_id, []).extend(found)
    report = verify_archive(store, keyring, check_signatures=not args.no_signatures,
                            progress=show, now_us=int(datetime.now(UTC).timestamp() * 1e6),
                            max_age_seconds=args.max_age,
                            locks=RetentionPolicy.from_settings(settings) if locks else None,
                            workers=args.workers if args.workers > 0 else (os.cpu_count() or 1),
                            reopen=reopen, anchors=anchors)
    apply_records(store, report, records)
    return report


def _print_result(args: argparse.Namespace, report: Any, store: Any, where: Location) -> None:
    for finding in report.findings:
        if not args.json:
            print(f"BROKEN {finding}")
    if args.json:
        print_json(report.to_json())
    elif not report.chains:
        print(f"FAILED: {where.where} holds no chains")
    else:
        broken = sum(not c.ok for c in report.chains)
        print(f"{'VERIFIED' if report.ok else 'FAILED'}: {len(report.chains)} chains, "
              f"{sum(c.entries for c in report.chains)} entries, {broken} broken "
              f"({datetime.now(UTC).isoformat(timespec='seconds')})")
        print(checked_summary(report, signatures=not args.no_signatures,
                              local=not store.enforces_retention))
        for note in report.notes:
            print(f"note: {note}")


def _shower(as_json: bool, shown: dict[str, int]) -> Any:
    """The per-chain progress line printer (it notes what it printed in ``shown``)."""

    def show(report: Any) -> None:
        if as_json:
            return
        shown[report.chain_id] = len(report.findings)
        status = "OK" if report.ok else "BROKEN"
        print(f"{status:6} chain {report.chain_id}: {report.entries} entries "
              f"({report.events} events, {sum(report.rejections.values())} rejections) in "
              f"{report.segments} segments; head seq {report.head_seq}"
              + (f"; newest checkpoint {report.age_seconds:.0f} s old"
                 if report.age_seconds is not None else "")
              + (f"; {report.purged} entries purged after retention" if report.purged else ""))
        for finding in report.findings:
            print(f"       {finding}")

    return show


def _show_later(report: Any, shown: dict[str, int], show: Any) -> None:
    """Chains, and chain findings, added after a chain's line was printed (the index's and
    the witnesses' findings): gone chains get their line, others their new findings."""
    for chain in report.chains:
        if chain.chain_id not in shown:
            show(chain)
        elif len(chain.findings) > shown[chain.chain_id]:
            print(f"BROKEN chain {chain.chain_id}:")
            for finding in chain.findings[shown[chain.chain_id]:]:
                print(f"       {finding}")


def checked_summary(report: Any, *, signatures: bool, local: bool) -> str:
    """What a verify run checked, in one paragraph (and what it did not)."""
    chains = report.chains
    parts = [f"checked: {sum(c.checkpoints for c in chains)} signed checkpoints and "
             f"{sum(c.segments for c in chains)} segments (SHA-256, Merkle roots and chain "
             f"trees, entry hashes and links, "
             + ("entry signatures" if signatures else "NOT entry signatures (--no-signatures)")
             + ", raw offsets)"]
    purged = sum(c.purged for c in chains)
    if purged:
        parts.append(f"{purged} entries purged after their signed retain-until")
    if report.index_seq is not None:
        parts.append(f"signed archive index {report.index_seq} ({report.index_chains} chains: "
                     "none gone, behind or unlisted unless said above)")
    if report.schemas_checked:
        parts.append(f"{report.schemas_checked} schema files the index lists")
    if report.witnesses:
        parts.append("witness records " + ", ".join(report.witnesses))
    if report.locks:
        parts.append(f"object locks of {report.locks_checked} objects and the legal holds "
                     "the hold manifests call for")
    else:
        parts.append("object locks: NOT checked" + (
            " (a local directory does not enforce retention; --locks checks what it records)"
            if local else " (--no-locks)"))
    return "; ".join(parts)
