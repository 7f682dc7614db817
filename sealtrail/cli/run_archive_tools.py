"""Subcommands for compliance and legal: retention, hold, prove, verify-proof, and C2SP
checkpoint notes (export-note, verify-note)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sealtrail.cli.common import print_json, settings_from
from sealtrail.config import Settings
from sealtrail.errors import IntegrityError, SealtrailError
from sealtrail.runtime.durable import write_private_bytes

_Sub = argparse._SubParsersAction  # type: ignore[type-arg]


def _archive_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--archive", metavar="URL",
                   help="archive: a directory, file:// or s3://bucket/prefix (default: the "
                   "configured archive)")


def register(sub: _Sub) -> None:
    ret = sub.add_parser("retention", help="retention classes: report, purge, lifecycle rules",
                         description="Retention classes come from retention_classes, "
                         "retention_map and retention_default_class (docs/archive.md).")
    rsub = ret.add_subparsers(dest="retention_command", metavar="ACTION", required=True)
    p = rsub.add_parser("report", help="what expires when, per class")
    _archive_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_retention_report)
    p = rsub.add_parser("purge", help="local: delete expired, unheld objects; S3: print the "
                        "lifecycle configuration to apply",
                        description="On a local archive, delete each chain's oldest objects "
                        "whose retention has passed and that carry no legal hold (stopping at "
                        "the first that must be kept). On S3 nothing is deleted: the lifecycle "
                        "configuration (JSON for put-bucket-lifecycle-configuration) is "
                        "printed; deploy/terraform/retention.tf applies the same rules.")
    _archive_arg(p)
    p.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    p.add_argument("--lifecycle", action="store_true",
                   help="print the S3 lifecycle configuration and do nothing else")
    p.set_defaults(func=_retention_purge)

    hold = sub.add_parser("hold", help="legal holds by case: apply, release, list")
    hsub = hold.add_subparsers(dest="hold_command", metavar="ACTION", required=True)
    p = hsub.add_parser("apply", help="hold every object holding a matching event",
                        description="Put the case's legal hold on every segment (and its "
                        "checkpoint) holding an event that occurred in [--from, --to] and "
                        "matches the filters; then write a hold manifest into the archive and "
                        "emit a legal_hold.apply audit event. Resumable: rerun the same "
                        "command after an interruption.")
    p.add_argument("--case", required=True, help="case id")
    p.add_argument("--from", dest="start", required=True, metavar="T1",
                   help="ISO-8601 start (inclusive, UTC unless an offset is given)")
    p.add_argument("--to", dest="end", required=True, metavar="T2", help="ISO-8601 end (inclusive)")
    p.add_argument("--actor", help="actor id")
    p.add_argument("--resource", help="resource id, or type:id")
    p.add_argument("--event-type", help="event type (glob, e.g. 'payment.*')")
    _hold_common(p)
    p.set_defaults(func=_hold_apply)
    p = hsub.add_parser("release", help="remove this case's holds (other cases' stay)")
    p.add_argument("--case", required=True, help="case id")
    _hold_common(p)
    p.set_defaults(func=_hold_release)
    p = hsub.add_parser("list", help="cases, their status and objects")
    _archive_arg(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_hold_list)

    p = sub.add_parser("prove", help="write an offline proof that one event is archived",
                       description="Find EVENT_ID in the archive and write its sealed record, "
                       "its RFC 6962 inclusion proof and the signed checkpoint covering it. "
                       "The chain is verified (against --keys) up to the segment holding the "
                       "event; a break before it exits 1, naming it.")
    p.add_argument("event_id", metavar="EVENT_ID")
    _archive_arg(p)
    _keys_arg(p)
    p.add_argument("--out", required=True, metavar="FILE", help="proof file to write")
    p.set_defaults(func=_prove)
    p = sub.add_parser("verify-proof", help="check a proof file offline",
                       description="Exit 0 when the proof checks out against KEYRING, 1 when "
                       "not, 2 when the file cannot be read or is not a proof (too large, not "
                       "JSON, nested too deeply, members of the wrong type). Needs no archive "
                       "and no network.")
    p.add_argument("proof", metavar="PROOF")
    p.add_argument("--keys", required=True, metavar="KEYRING", help="public keyring JSON")
    p.set_defaults(func=_verify_proof)

    p = sub.add_parser("export-note", help="a checkpoint as a C2SP tlog-checkpoint signed note",
                       description="Sign (with the configured signing key) the chain's "
                       "checkpoint as a C2SP signed note: origin <ORIGIN>/<chain>, tree size "
                       "= entries through the checkpoint, RFC 6962 root of all their entry "
                       "hashes. Prints the note verifier key on stderr.")
    p.add_argument("chain_id", metavar="CHAIN")
    p.add_argument("--index", type=int, help="checkpoint index (default: the newest)")
    p.add_argument("--since", type=int, metavar="INDEX",
                   help="also prove consistency from this earlier checkpoint: write a C2SP "
                   "tlog-witness add-checkpoint body (old size, RFC 9162 proof, the note)")
    p.add_argument("--origin", default="sealtrail", help="origin prefix (a log name you own)")
    p.add_argument("--name", help="note key name (default: the origin prefix)")
    _archive_arg(p)
    _keys_arg(p)
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=_export_note)
    p = sub.add_parser("verify-note", help="check a C2SP checkpoint note's signature",
                       description="Exit 0 when a signature by --key-id (from KEYRING) "
                       "verifies, 1 when none does, 2 when the file cannot be read or is not "
                       "a signed note.")
    p.add_argument("note", metavar="NOTE")
    p.add_argument("--keys", required=True, metavar="KEYRING", help="public keyring JSON")
    p.add_argument("--key-id", required=True, help="keyring key id that signed the note")
    p.add_argument("--name", default="sealtrail", help="note key name")
    p.set_defaults(func=_verify_note)


def _keys_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", metavar="KEYRING",
                   help="public keyring the archive is verified against (default: "
                   "<keys_dir>/public.json)")


def _keyring_of(args: argparse.Namespace, settings: Settings) -> Any:
    from sealtrail.keys import PUBLIC_KEYRING, load_keyring

    return load_keyring(Path(args.keys) if args.keys else settings.keys / PUBLIC_KEYRING)


def _hold_common(p: argparse.ArgumentParser) -> None:
    _archive_arg(p)
    p.add_argument("--operator", help="who acts (default: $USER); recorded and emitted")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true")


def _open(args: argparse.Namespace) -> tuple[Settings, Any]:
    from sealtrail.archive import open_archive

    settings = settings_from(args)
    url = getattr(args, "archive", None) or settings.archive
    return settings, open_archive(settings, url)


def _policy(settings: Settings) -> Any:
    from sealtrail.governance.retention import RetentionPolicy

    return RetentionPolicy.from_settings(settings)


# -- retention ----------------------------------------------------------------------------


def _retention_report(args: argparse.Namespace) -> int:
    from sealtrail.governance.retention import report

    settings, store = _open(args)
    rows = report(store, _policy(settings))
    if args.json:
        print_json({"archive": store.url, "enforced": store.enforces_retention,
                    "classes": [r.to_json() for r in rows]})
        return 0
    print(f"retention of {store.url}"
          + ("" if store.enforces_retention else " (recorded, not enforced by the file system)"))
    print(f"{'class':12} {'duration':9} {'objects':>8} {'events':>8} {'expired':>8} "
          f"{'held':>5}  earliest expiry        latest expiry")
    for r in rows:
        j = r.to_json()
        print(f"{r.name:12} {r.duration:9} {r.objects:8} {r.events:8} {r.expired:8} "
              f"{r.held:5}  {j['earliest_expiry'] or '-':22} {j['latest_expiry'] or '-'}")
    return 0


def _retention_purge(args: argparse.Namespace) -> int:
    from sealtrail.governance.retention import lifecycle_configuration, purge

    settings, store = _open(args)
    if args.lifecycle or store.enforces_retention:
        prefix = getattr(store, "prefix", "")
        print_json(lifecycle_configuration(_policy(settings), prefix))
        if store.enforces_retention:
            print(f"{store.url} enforces Object Lock: nothing deleted. Apply the configuration "
                  "above with `aws s3api put-bucket-lifecycle-configuration --bucket "
                  f"{getattr(store, 'bucket', 'BUCKET')} --lifecycle-configuration file://...` "
                  "or deploy/terraform/retention.tf", file=sys.stderr)
        return 0
    result = purge(store, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for key in result.deleted:
        print(f"{verb} {key}")
    for chain_id, why in sorted(result.kept.items()):
        print(f"kept chain {chain_id} from there on: {why}")
    print(f"{verb} {len(result.deleted)} objects from {store.url}")
    return 0


# -- holds --------------------------------------------------------------------------------


def _bar(label: str, args: argparse.Namespace) -> Any:
    """The hold progress line (only when stderr is a terminal and not --no-progress)."""
    from sealtrail.runtime.progress import ProgressLine

    return ProgressLine(label, enabled=not args.no_progress and sys.stderr.isatty(),
                        unit="units", min_total=20)


def _operator(args: argparse.Namespace) -> str:
    if args.operator:
        return str(args.operator)
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _progress_dir(settings: Settings) -> Path:
    return settings.home / "holds"


def emit_hold_event(settings: Settings, action: str, case_id: str, operator: str,
                    attributes: dict[str, str]) -> str | None:
    """Emit the hold action as an audit event; None when delivered, else why not."""
    s = settings.with_stack()
    if not s.bootstrap or not s.registry_url:
        return "no broker/registry configured (start `sealtrail dev up` or set " \
               "SEALTRAIL_BOOTSTRAP and SEALTRAIL_REGISTRY_URL)"
    try:
        from sealtrail.producers import AuditClient

        client = AuditClient.from_settings(s, service="sealtrail-holds")
        try:
            client.emit(f"legal_hold.{action}", action, actor_id=operator,
                        resource_type="legal_hold", resource_id=case_id,
                        attributes=attributes, classification="CONFIDENTIAL")
            remaining = client.flush(10.0)
        finally:
            client.close(5.0)
        if remaining or client.failed:
            return "the broker did not acknowledge the event within 10 s"
    except (SealtrailError, Exception) as exc:  # any failure must be reported, not raised
        return f"{type(exc).__name__}: {exc}"
    return None


def _report_hold(args: argparse.Namespace, settings: Settings, result: Any,
                 attrs: dict[str, str]) -> int:
    operator = _operator(args)
    attrs = {**attrs, "objects": str(len(result.objects)), "manifest": result.manifest or ""}
    problem = emit_hold_event(settings, result.action, result.case, operator, attrs)
    doc = {**result.to_json(), "operator": operator, "audit_event_emitted": problem is None,
           "audit_event_problem": problem}
    if args.json:
        print_json(doc)
    else:
        print(f"{result.action} legal hold {result.case!r}: {len(result.objects)} objects "
              f"({result.newly_changed} changed"
              + (", resumed an interrupted run" if result.resumed else "") + ")")
        print(f"manifest: {result.manifest}")
        if problem is None:
            print(f"audit event legal_hold.{result.action} emitted (operator {operator})")
        else:
            print(f"WARNING: audit event legal_hold.{result.action} NOT emitted: {problem}; "
                  "record this action in the case file by other means")
    return 0


def _hold_apply(args: argparse.Namespace) -> int:
    from sealtrail.core.times import parse_time
    from sealtrail.governance.holds import HoldSelector, apply_hold

    settings, store = _open(args)
    selector = HoldSelector(parse_time(args.start), parse_time(args.end), args.actor,
                            args.resource, args.event_type)
    bar = _bar(f"hold {args.case}", args)
    try:
        result = apply_hold(store, args.case, selector, policy=_policy(settings),
                            progress_dir=_progress_dir(settings), operator=_operator(args),
                            on_unit=bar)
    finally:
        bar.close()
    attrs = {"from": args.start, "to": args.end}
    attrs.update({k: v for k, v in (("actor", args.actor), ("resource", args.resource),
                                    ("event_type", args.event_type)) if v})
    return _report_hold(args, settings, result, attrs)


def _hold_release(args: argparse.Namespace) -> int:
    from sealtrail.governance.holds import release_hold

    settings, store = _open(args)
    bar = _bar(f"release {args.case}", args)
    try:
        result = release_hold(store, args.case, policy=_policy(settings),
                              progress_dir=_progress_dir(settings), operator=_operator(args),
                              on_unit=bar)
    finally:
        bar.close()
    return _report_hold(args, settings, result, {})


def _hold_list(args: argparse.Namespace) -> int:
    from sealtrail.governance.holds import list_holds

    _, store = _open(args)
    rows = list_holds(store)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print(f"no legal holds recorded in {store.url}")
    for r in rows:
        print(f"{r['case']:24} {r['status']:9} {r['objects']:6} objects  last {r['last_action']} "
              f"by {r['operator']} at {r['at']}")
    return 0


# -- proofs and notes -----------------------------------------------------------------------


def _prove(args: argparse.Namespace) -> int:
    from sealtrail.verify.proof import build_proof

    settings, store = _open(args)
    data = build_proof(store, args.event_id, _keyring_of(args, settings))
    write_private_bytes(Path(args.out), data)
    doc = json.loads(data)
    print(f"proof for event {args.event_id}: chain {doc['entry']['chain_id']} seq "
          f"{doc['entry']['seq']}, {doc['checkpoint_key']}; written to {args.out}")
    return 0


def _keyring(path: str) -> Any:
    from sealtrail.keys import load_keyring

    return load_keyring(Path(path))


def _verify_proof(args: argparse.Namespace) -> int:
    from sealtrail.inputs import read_file
    from sealtrail.verify.proof import MAX_PROOF_BYTES, verify_proof

    keyring = _keyring(args.keys)
    data = read_file(args.proof, what="proof", max_bytes=MAX_PROOF_BYTES)
    try:
        result = verify_proof(data, keyring)  # not a proof at all: MalformedInputError, exit 2
    except IntegrityError as exc:
        print(f"FAILED: {exc}")
        return 1
    print(f"VERIFIED: event {result.event_id} is entry seq {result.seq} of chain "
          f"{result.chain_id}, covered by checkpoint {result.checkpoint_index} "
          f"(entry signed by {result.key_id})")
    return 0


def _export_note(args: argparse.Namespace) -> int:
    from sealtrail.core.note import verifier_key
    from sealtrail.keys import load_signer
    from sealtrail.verify.proof import chain_note

    settings, store = _open(args)
    signer = load_signer(settings.keys)
    name = args.name or args.origin
    note = chain_note(store, args.chain_id, origin=args.origin, name=name, signer=signer,
                      public_key=signer.public_key, index=args.index,
                      keyring=_keyring_of(args, settings), since=args.since)
    if args.out:
        write_private_bytes(Path(args.out), note)
    else:
        sys.stdout.write(note.decode())
    print(f"verifier key: {verifier_key(name, signer.public_key)}", file=sys.stderr)
    return 0


def _verify_note(args: argparse.Namespace) -> int:
    from sealtrail.core.note import MAX_NOTE_BYTES, verify_note
    from sealtrail.inputs import read_file

    keyring = _keyring(args.keys)
    key = keyring.keys.get(args.key_id)
    if key is None:
        print(f"sealtrail: key {args.key_id!r} is not in {args.keys}", file=sys.stderr)
        return 2
    data = read_file(args.note, what="note", max_bytes=MAX_NOTE_BYTES)
    try:
        cp = verify_note(data, args.name, key.public_key)  # malformed: exit 2
    except IntegrityError as exc:
        print(f"FAILED: {exc}")
        return 1
    print(f"VERIFIED: {cp.origin} size {cp.tree_size} at "
          f"{datetime.now(UTC).isoformat(timespec='seconds')}")
    return 0
