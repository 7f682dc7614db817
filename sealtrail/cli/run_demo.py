"""The ``sealtrail demo`` subcommand."""

from __future__ import annotations

import argparse

from sealtrail.cli.common import settings_from
from sealtrail.errors import VerificationFailedError


def configure_demo(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Start the embedded broker and registry (unless `dev up` is running), the sealer and "
        "the archiver as separate processes; emit events from three simulated services plus "
        "malformed records; wait until all is archived; verify; print a summary; stop what it "
        "started. The archive stays where the archive_url setting says (default "
        "<home>/archive).")
    p.add_argument("--events", type=int, default=10_200, help="events to emit in all")
    p.add_argument("--broker", choices=("tansu", "kafka"), default="tansu",
                   help="kafka: on single-node Apache Kafka (java 17+ and mvn needed; see "
                   "`sealtrail dev up --broker kafka`); default: the embedded Tansu")
    p.add_argument("--secure", action="store_true",
                   help="with --broker kafka: SASL/SCRAM and ACLs, each stage its own user")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> None:
    from sealtrail.demo.run import run_demo

    result = run_demo(settings_from(args), events=args.events, broker=args.broker,
                      secure=args.secure)  # a failure to run raises: main says why, exit 2
    if not result.ok:
        raise VerificationFailedError("the demo's archive did not verify, or not every event "
                                      "emitted was sealed (see the summary above)")
