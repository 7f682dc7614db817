"""``sealtrail report``: a self-contained HTML page of a period, for compliance staff."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sealtrail.cli.common import (
    archive_and_keyring,
    archive_option,
    keyring_option,
    operator_option,
    settings_from,
    using,
)
from sealtrail.core.disclosure import escape_control
from sealtrail.errors import VerificationFailedError


def configure_report(p: argparse.ArgumentParser) -> None:
    p.description = ("Read the period from the archive (verifying as it reads) and write one "
                     "self-contained HTML page: events per day by service and type (charts as "
                     "inline images), rejection and redaction rates, retention expirations "
                     "ahead, legal holds and the verification result per chain. Exit 0 when "
                     "every chain checks out, 1 otherwise.")
    p.add_argument("--since", metavar="T")
    p.add_argument("--until", metavar="T")
    p.add_argument("--out", required=True, metavar="report.html")
    archive_option(p)
    keyring_option(p)
    p.add_argument("--no-signatures", action="store_true")
    operator_option(p, "in the report and the chain-of-custody event")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> None:
    from sealtrail.core.times import optional_time
    from sealtrail.custody import operator_name, require_access
    from sealtrail.report import collect, render_html
    from sealtrail.runtime.durable import write_private_bytes
    from sealtrail.verify import ArchiveReader

    settings = settings_from(args).with_stack()
    where, keys, store, keyring = archive_and_keyring(args, settings)
    since, until = optional_time(args.since), optional_time(args.until)
    operator = operator_name(settings, args.operator)
    with using(where, keys):
        data = collect(ArchiveReader(store, keyring, check_signatures=not args.no_signatures),
                       since, until)
    html = render_html(data, generated_by=operator)
    custody = require_access(settings, tool="report", operator=operator,
                             query=f"report since={args.since} until={args.until}",
                             count=data.events)
    write_private_bytes(Path(args.out), html.encode("utf-8"))
    broken = [c for c in data.chains if c.problem is not None]
    print(f"report written to {args.out}: {data.events} events, {len(data.chains)} chains, "
          f"{len(broken)} broken, read from {where}", file=sys.stderr)
    for chain in broken:
        print(escape_control(f"BROKEN {chain.problem}"), file=sys.stderr)
    print(custody.message, file=sys.stderr)
    if not data.chains or broken:
        raise VerificationFailedError(
            f"{len(broken)} of {len(data.chains)} chains of {where} broken" if data.chains
            else f"no chains in {where}")
