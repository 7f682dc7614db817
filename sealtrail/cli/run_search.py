"""Subcommands for auditors: search, index (run, rebuild, status), export, verify-export."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sealtrail.cli.common import settings_from, stop_on_signals
from sealtrail.config import Settings
from sealtrail.core.disclosure import escape_control

QUERY_HELP = ("query: actor:ID action:A type:EVENT_TYPE resource:TYPE/ID outcome:O service:S "
              "tenant:T trace:ID request:ID event:ID chain:C since:T until:T and free-text "
              "words (docs/search.md)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("search", help="search the index: who did what, when, on what",
                       description="Search the index (SQLite by default, PostgreSQL with "
                       "index_url=postgresql://...). since:/until: select on occurred_at. "
                       "Prints a table, or JSON lines with --json, and which part of the "
                       "asked time range the index covers. " + QUERY_HELP)
    p.add_argument("query", nargs="?", default="", help="the query (quote it)")
    p.add_argument("--json", action="store_true", help="JSON lines, one event per line")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--index", metavar="URL", help="index (default: index_url setting)")
    p.add_argument("--operator", help="who runs this (for the chain-of-custody event)")
    p.set_defaults(func=_search)

    idx = sub.add_parser("index", help="build the search index: run the indexer, rebuild "
                         "from the archive, show coverage")
    isub = idx.add_subparsers(dest="index_command", metavar="ACTION", required=True)
    k = isub.add_parser("run", help="index the sealed topic until SIGTERM")
    k.add_argument("--index", metavar="URL")
    k.add_argument("--idle-exit", type=float, metavar="S",
                   help="exit after S seconds without new records")
    k.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve /metrics, /healthz, /readyz on PORT (setting metrics_port)")
    k.set_defaults(func=_index_run)
    k = isub.add_parser("rebuild", help="rebuild the index from the archive (verified)")
    k.add_argument("--index", metavar="URL")
    k.add_argument("--archive", metavar="URL")
    k.add_argument("--keys", metavar="KEYRING")
    k.add_argument("--no-signatures", action="store_true")
    k.set_defaults(func=_index_rebuild)
    k = isub.add_parser("status", help="what the index holds")
    k.add_argument("--index", metavar="URL")
    k.set_defaults(func=_index_status)

    p = sub.add_parser("export", help="export matching events with inclusion proofs to a zip",
                       description="Search, then prove every matching event against the "
                       "archive's signed checkpoints (RFC 6962 inclusion proofs) and write a "
                       "bundle an outside auditor checks offline with `sealtrail "
                       "verify-export`. " + QUERY_HELP)
    p.add_argument("query", help="the query (quote it)")
    p.add_argument("--out", required=True, metavar="BUNDLE.zip")
    p.add_argument("--limit", type=int, default=100_000)
    p.add_argument("--index", metavar="URL")
    p.add_argument("--archive", metavar="URL")
    p.add_argument("--keys", metavar="KEYRING")
    p.add_argument("--operator")
    p.set_defaults(func=_export)

    p = sub.add_parser("verify-export", help="check an export bundle offline",
                       description="Check every proof of an export bundle against a keyring "
                       "you obtained yourself (never the one inside the bundle). Exit 0 when "
                       "every proof checks, 1 otherwise, 2 when the file cannot be read or is "
                       "not an export bundle (not a zip, members that would inflate beyond "
                       "the caps, a manifest of the wrong structure).")
    p.add_argument("bundle", metavar="BUNDLE.zip")
    p.add_argument("--keys", required=True, metavar="KEYRING")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_verify_export)


def index_url(settings: Settings, explicit: str | None) -> str:
    return explicit or settings.index_url or str(settings.home / "index.sqlite")


def _keyring(settings: Settings, explicit: str | None) -> Any:
    from sealtrail.keys import PUBLIC_KEYRING, load_keyring

    return load_keyring(Path(explicit) if explicit else settings.keys / PUBLIC_KEYRING)


def _search(args: argparse.Namespace) -> int:
    from sealtrail.core.times import format_time
    from sealtrail.custody import operator_name, require_access
    from sealtrail.search import counted, parse_query

    settings = settings_from(args).with_stack()
    query = parse_query(args.query, limit=args.limit)
    rows, coverage = _search_index(index_url(settings, args.index), query)
    # Custody first: with custody_required nothing is shown unless it is recorded.
    custody = require_access(settings, tool="search", operator=operator_name(args.operator),
                             query=args.query, count=len(rows))
    if args.json:
        for row in rows:
            print(json.dumps(row.to_json(), sort_keys=True))
    else:
        header = ("OCCURRED (UTC)", "ACTOR", "ACTION", "TYPE", "RESOURCE", "OUTCOME",
                  "SERVICE", "WHERE")
        table: list[tuple[str, ...]] = [header, *[
            tuple(escape_control(v) for v in (
                format_time(r.occurred_at), r.actor, r.action, r.event_type,
                f"{r.resource_type}/{r.resource_id}", r.outcome, r.service,
                f"{r.chain_id}#{r.seq}")) for r in rows]]
        widths = [min(max(len(str(line[i])) for line in table), 48)
                  for i in range(len(header))]
        for line in table:
            print("  ".join(str(v)[:48].ljust(w) for v, w in zip(line, widths, strict=True))
                  .rstrip())
    more = " (limit reached: there may be more; use --limit)" if len(rows) >= query.limit else ""
    print(f"{counted(len(rows), 'event')}{more}; {coverage.describe(query.since, query.until)}",
          file=sys.stderr)
    print(custody.message, file=sys.stderr)
    return 0


def _search_index(url: str, query: Any) -> tuple[list[Any], Any]:
    """The rows matching ``query`` in the index at ``url``, and what time the index covers."""
    from sealtrail.search import open_index

    index = open_index(url)
    try:
        return index.search(query), index.coverage()
    finally:
        index.close()


def _index_run(args: argparse.Namespace) -> int:
    from sealtrail.consumers.indexer import Indexer
    from sealtrail.observability import StageMetric, StageTelemetry
    from sealtrail.schemas.registry_client import registry_client
    from sealtrail.search import counted, open_index

    settings = settings_from(args, metrics_port=args.metrics_port).require_endpoints()
    index = open_index(index_url(settings, args.index))
    indexer = Indexer(settings, index=index, group=settings.indexer_group,
                      registry=registry_client(settings.registry_url, settings.registry_auth))
    stop_on_signals(indexer.stop)
    telemetry = StageTelemetry(settings, "indexer", settings.indexer_group,
                               settings.sealed_topic, [
                                   StageMetric("sealtrail_indexer_events_indexed_total",
                                               "Events written to the search index.",
                                               lambda: indexer.indexed),
                               ])
    try:
        indexer.run(idle_exit=args.idle_exit)
    finally:
        telemetry.close()
        index.close()
    print(f"indexer stopped: {counted(indexer.indexed, 'event')} indexed "
          f"({counted(indexer.seen, 'record')} read)",
          file=sys.stderr)
    return 0


def _index_rebuild(args: argparse.Namespace) -> int:
    from sealtrail.archive import open_archive
    from sealtrail.reading import ArchiveSource
    from sealtrail.search import counted, open_index
    from sealtrail.search._rebuild import rebuild_index

    settings = settings_from(args, archive_url=args.archive)
    store = open_archive(settings)
    source = ArchiveSource(store, _keyring(settings, args.keys),
                           check_signatures=not args.no_signatures)
    index = open_index(index_url(settings, args.index))
    try:
        result = rebuild_index(source, index)
        coverage = index.coverage()
    finally:
        index.close()
    for problem in result.breaks:
        print(escape_control(f"BROKEN {problem} (indexed up to the break)"), file=sys.stderr)
    print(f"index rebuilt from {store.url}: {counted(result.indexed, 'event')} of "
          f"{counted(result.chains, 'chain')} ({counted(result.checked, 'entry', 'entries')} "
          f"checked); {coverage.describe(None, None)}")
    return 0 if not result.breaks else 1


def _index_status(args: argparse.Namespace) -> int:
    from sealtrail.search import open_index

    settings = settings_from(args)
    index = open_index(index_url(settings, args.index))
    try:
        print(f"{index.url}: {index.coverage().describe(None, None)}")
    finally:
        index.close()
    return 0


def _export(args: argparse.Namespace) -> int:
    from sealtrail.archive import open_archive
    from sealtrail.custody import operator_name, require_access
    from sealtrail.export import build_export
    from sealtrail.runtime.durable import write_private_bytes
    from sealtrail.search import counted, parse_query

    settings = settings_from(args, archive_url=args.archive).with_stack()
    operator = operator_name(args.operator)
    query = parse_query(args.query, limit=args.limit + 1)
    rows, coverage = _search_index(index_url(settings, args.index), query)
    truncated = len(rows) > args.limit
    rows = rows[: args.limit]
    store = open_archive(settings)
    data, result = build_export(store, _keyring(settings, args.keys), rows, query,
                                coverage=coverage, operator=operator, truncated=truncated)
    custody = require_access(settings, tool="export", operator=operator, query=args.query,
                             count=result.count)
    write_private_bytes(Path(args.out), data)
    print(f"exported {counted(result.count, 'event')} with inclusion proofs to {args.out} "
          f"({counted(result.chains, 'chain')}, {counted(result.checkpoints, 'checkpoint')}"
          f"{', TRUNCATED at --limit' if truncated else ''}); {result.manifest['index_coverage']}",
          file=sys.stderr)
    print(custody.message, file=sys.stderr)
    return 0


def _verify_export(args: argparse.Namespace) -> int:
    from sealtrail.errors import IntegrityError
    from sealtrail.export import MAX_BUNDLE_BYTES, verify_export
    from sealtrail.inputs import read_file
    from sealtrail.keys import load_keyring

    keyring = load_keyring(Path(args.keys))
    data = read_file(args.bundle, what="bundle", max_bytes=MAX_BUNDLE_BYTES)
    try:
        result = verify_export(data, keyring)  # not a bundle at all: MalformedInputError, exit 2
    except IntegrityError as exc:
        print(f"FAILED: {exc}")
        return 1
    manifest = result.manifest
    if args.json:
        print(json.dumps({"ok": result.ok, "count": result.count, "problems": result.problems,
                          "events_jsonl_checked": result.events_checked,
                          "unsigned_context": {"query": manifest.get("query"),
                                               "time_range_asked":
                                               manifest.get("time_range_asked"),
                                               "operator": manifest.get("operator")}},
                         sort_keys=True))
    else:
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
    return 0 if result.ok else 1
