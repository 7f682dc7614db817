"""Subcommand: report, a self-contained HTML page for compliance staff."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sealtrail.cli.common import settings_from
from sealtrail.core.disclosure import escape_control


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report", help="HTML report of a period: volume, rejections, redaction, retention, "
        "holds, verification",
        description="Read the period from the archive (verifying as it reads) and write one "
        "self-contained HTML page: events per day by service and type (charts as inline "
        "images), rejection and redaction rates, retention expirations ahead, legal holds and "
        "the verification result per chain. Exit 0 when every chain checks out, 1 otherwise.")
    p.add_argument("--since", metavar="T")
    p.add_argument("--until", metavar="T")
    p.add_argument("--out", required=True, metavar="report.html")
    p.add_argument("--archive", metavar="URL")
    p.add_argument("--keys", metavar="KEYRING")
    p.add_argument("--no-signatures", action="store_true")
    p.add_argument("--operator")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from sealtrail.archive import open_archive
    from sealtrail.core.times import optional_time
    from sealtrail.custody import operator_name, require_access
    from sealtrail.keys import PUBLIC_KEYRING, load_keyring
    from sealtrail.report import collect, render_html
    from sealtrail.runtime.durable import write_private_bytes
    from sealtrail.verify import ArchiveReader

    settings = settings_from(args, archive_url=args.archive).with_stack()
    keyring = load_keyring(Path(args.keys) if args.keys else settings.keys / PUBLIC_KEYRING)
    store = open_archive(settings)
    since, until = optional_time(args.since), optional_time(args.until)
    operator = operator_name(args.operator)
    data = collect(ArchiveReader(store, keyring, check_signatures=not args.no_signatures),
                   since, until)
    html = render_html(data, generated_by=operator)
    custody = require_access(settings, tool="report", operator=operator,
                             query=f"report since={args.since} until={args.until}",
                             count=data.events)
    write_private_bytes(Path(args.out), html.encode("utf-8"))
    broken = [c for c in data.chains if c.problem is not None]
    print(f"report written to {args.out}: {data.events} events, {len(data.chains)} chains, "
          f"{len(broken)} broken", file=sys.stderr)
    for chain in broken:
        print(escape_control(f"BROKEN {chain.problem}"), file=sys.stderr)
    print(custody.message, file=sys.stderr)
    return 0 if data.chains and not broken else 1
