"""``sealtrail retention report | purge``: retention classes of the archive."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sealtrail.cli.common import (
    archive_location,
    archive_option,
    open_archive_at,
    print_json,
    settings_from,
    using,
)
from sealtrail.config import Settings


def configure_retention(p: argparse.ArgumentParser) -> None:
    p.description = ("Retention classes come from retention_classes, retention_map and "
                     "retention_default_class (docs/archive.md).")
    rsub = p.add_subparsers(dest="retention_command", metavar="ACTION", required=True)
    r = rsub.add_parser("report", help="what expires when, per class")
    archive_option(r)
    r.add_argument("--json", action="store_true")
    r.set_defaults(func=_retention_report)
    r = rsub.add_parser("purge", help="local: delete expired, unheld objects; S3: print the "
                        "lifecycle configuration to apply",
                        description="On a local archive, delete each chain's oldest objects "
                        "whose retention has passed and that carry no legal hold (stopping at "
                        "the first that must be kept). On S3 nothing is deleted: the lifecycle "
                        "configuration (JSON for put-bucket-lifecycle-configuration) is "
                        "printed; deploy/terraform/retention.tf applies the same rules.")
    archive_option(r)
    r.add_argument("--dry-run", action="store_true", help="list what would be deleted")
    r.add_argument("--lifecycle", action="store_true",
                   help="print the S3 lifecycle configuration and do nothing else")
    r.set_defaults(func=_retention_purge)


def retention_policy(settings: Settings) -> Any:
    from sealtrail.governance.retention import RetentionPolicy

    return RetentionPolicy.from_settings(settings)


def _retention_report(args: argparse.Namespace) -> None:
    from sealtrail.governance.retention import report

    settings = settings_from(args)
    where = archive_location(args, settings)
    store = open_archive_at(settings, where)
    with using(where):
        rows = report(store, retention_policy(settings))
    if args.json:
        print_json({"archive": store.url, "enforced": store.enforces_retention,
                    "classes": [r.to_json() for r in rows]})
        return
    print(f"retention of {store.url} ({where.origin})"
          + ("" if store.enforces_retention else " (recorded, not enforced by the file system)"))
    print(f"{'class':12} {'duration':9} {'objects':>8} {'events':>8} {'expired':>8} "
          f"{'held':>5}  earliest expiry        latest expiry")
    for r in rows:
        j = r.to_json()
        print(f"{r.name:12} {r.duration:9} {r.objects:8} {r.events:8} {r.expired:8} "
              f"{r.held:5}  {j['earliest_expiry'] or '-':22} {j['latest_expiry'] or '-'}")


def _retention_purge(args: argparse.Namespace) -> None:
    from sealtrail.governance.retention import lifecycle_configuration, purge

    settings = settings_from(args)
    where = archive_location(args, settings)
    store = open_archive_at(settings, where)
    if args.lifecycle or store.enforces_retention:
        prefix = getattr(store, "prefix", "")
        print_json(lifecycle_configuration(retention_policy(settings), prefix))
        if store.enforces_retention:
            print(f"{store.url} enforces Object Lock: nothing deleted. Apply the configuration "
                  "above with `aws s3api put-bucket-lifecycle-configuration --bucket "
                  f"{getattr(store, 'bucket', 'BUCKET')} --lifecycle-configuration file://...` "
                  "or deploy/terraform/retention.tf", file=sys.stderr)
        return
    with using(where):
        result = purge(store, dry_run=args.dry_run)
    verb = "would delete" if args.dry_run else "deleted"
    for key in result.deleted:
        print(f"{verb} {key}")
    for chain_id, why in sorted(result.kept.items()):
        print(f"kept chain {chain_id} from there on: {why}")
    print(f"{verb} {len(result.deleted)} objects from {store.url} ({where.origin})")
