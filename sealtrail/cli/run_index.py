"""``sealtrail index run | rebuild | status``: the search index."""

from __future__ import annotations

import argparse
import sys

from sealtrail.cli.common import (
    archive_and_keyring,
    archive_option,
    index_location,
    index_option,
    keyring_option,
    settings_from,
    stop_on_signals,
    using,
)
from sealtrail.core.disclosure import escape_control
from sealtrail.errors import VerificationFailedError


def configure_index(p: argparse.ArgumentParser) -> None:
    p.description = ("The search index (docs/search.md): the index_url setting, else "
                     "<home>/index.sqlite; --index overrides it for one run.")
    isub = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    k = isub.add_parser("run", help="index the sealed topic until SIGTERM")
    index_option(k)
    k.add_argument("--idle-exit", type=float, metavar="S",
                   help="exit after S seconds without new records")
    k.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve /metrics, /healthz, /readyz on PORT (setting metrics_port)")
    k.set_defaults(func=_index_run)
    k = isub.add_parser("rebuild", help="rebuild the index from the archive (verified)",
                        description="Read the archive, verifying as it reads, and index every "
                        "event up to the first break of each chain. Exit 1 when a chain "
                        "breaks (it is indexed up to the break).")
    index_option(k)
    archive_option(k)
    keyring_option(k)
    k.add_argument("--no-signatures", action="store_true")
    k.set_defaults(func=_index_rebuild)
    k = isub.add_parser("status", help="what the index holds")
    index_option(k)
    k.set_defaults(func=_index_status)


def _index_run(args: argparse.Namespace) -> None:
    from sealtrail.consumers.indexer import Indexer
    from sealtrail.observability import StageMetric, StageTelemetry
    from sealtrail.runtime import dev
    from sealtrail.schemas.registry_client import registry_client
    from sealtrail.search import counted, open_index

    settings = settings_from(args, metrics_port=args.metrics_port).require_endpoints()
    where = index_location(args, settings)
    with using(where):
        index = open_index(where.where)
    dev.record_stage(settings.home, "index", {"index": where.where})
    indexer = Indexer(settings, index=index, group=settings.indexer_group,
                      registry=registry_client(settings.registry_url, settings.registry_auth))
    stop_on_signals(indexer.stop)
    telemetry = StageTelemetry(settings, "indexer", settings.indexer_group,
                               settings.sealed_topic, [
                                   StageMetric("sealtrail_indexer_events_indexed_total",
                                               "Events written to the search index.",
                                               lambda: indexer.indexed),
                               ])
    print(f"indexer started: {settings.sealed_topic} -> {where}", file=sys.stderr)
    try:
        indexer.run(idle_exit=args.idle_exit)
    finally:
        telemetry.close()
        index.close()
    print(f"indexer stopped: {counted(indexer.indexed, 'event')} indexed "
          f"({counted(indexer.seen, 'record')} read)", file=sys.stderr)


def _index_rebuild(args: argparse.Namespace) -> None:
    from sealtrail.reading import ArchiveSource
    from sealtrail.search import counted, open_index
    from sealtrail.search._rebuild import rebuild_index

    settings = settings_from(args)
    where, keys, store, keyring = archive_and_keyring(args, settings)
    at = index_location(args, settings)
    source = ArchiveSource(store, keyring, check_signatures=not args.no_signatures)
    with using(at):
        index = open_index(at.where)
    try:
        with using(where, keys, at):
            result = rebuild_index(source, index)
            coverage = index.coverage()
    finally:
        index.close()
    for problem in result.breaks:
        print(escape_control(f"BROKEN {problem} (indexed up to the break)"), file=sys.stderr)
    print(f"index rebuilt from {store.url}: {counted(result.indexed, 'event')} of "
          f"{counted(result.chains, 'chain')} ({counted(result.checked, 'entry', 'entries')} "
          f"checked); {coverage.describe(None, None)} [{at}]")
    if result.breaks:
        raise VerificationFailedError(f"{len(result.breaks)} chains of {where} break; each "
                                      "is indexed up to its break")


def _index_status(args: argparse.Namespace) -> None:
    from sealtrail.search import open_index

    settings = settings_from(args)
    where = index_location(args, settings)
    with using(where):
        index = open_index(where.where)
    try:
        print(f"{index.url}: {index.coverage().describe(None, None)} ({where.origin})")
    finally:
        index.close()
