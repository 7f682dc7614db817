"""The ``sealtrail demo`` subcommand."""

from __future__ import annotations

import argparse

from sealtrail.cli.common import settings_from


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help="run the whole pipeline end to end on the embedded stack, then verify",
        description="Start the embedded broker and registry (unless `dev up` is running), the "
        "sealer and the archiver as separate processes; emit events from three simulated "
        "services plus malformed records; wait until all is archived; verify; print a "
        "summary; stop what it started. The archive stays in <home>/archive.",
    )
    p.add_argument("--events", type=int, default=10_200, help="events to emit in all")
    p.add_argument("--broker", choices=("tansu", "kafka"), default="tansu",
                   help="kafka: on single-node Apache Kafka (java 17+ and mvn needed; see "
                   "`sealtrail dev up --broker kafka`); default: the embedded Tansu")
    p.add_argument("--secure", action="store_true",
                   help="with --broker kafka: SASL/SCRAM and ACLs, each stage its own user")
    p.set_defaults(func=_demo)


def _demo(args: argparse.Namespace) -> int:
    from sealtrail.demo.run import main_demo

    return main_demo(settings_from(args), args.events, args.broker, args.secure)
