"""``sealtrail search``: who did what, when, on what, from the search index."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sealtrail.cli.common import (
    Location,
    index_location,
    index_option,
    operator_option,
    settings_from,
    using,
)
from sealtrail.core.disclosure import escape_control

QUERY_HELP = ("query: actor:ID action:A type:EVENT_TYPE resource:TYPE/ID outcome:O service:S "
              "tenant:T trace:ID request:ID event:ID chain:C since:T until:T and free-text "
              "words (docs/search.md)")


def configure_search(p: argparse.ArgumentParser) -> None:
    p.description = ("Search the index (SQLite by default, PostgreSQL with "
                     "index_url=postgresql://...). since:/until: select on occurred_at. "
                     "Prints a table, or JSON lines with --json, and which part of the asked "
                     "time range the index covers. " + QUERY_HELP)
    p.add_argument("query", nargs="?", default="", help="the query (quote it)")
    p.add_argument("--json", action="store_true", help="JSON lines, one event per line")
    p.add_argument("--limit", type=int, default=1000)
    index_option(p)
    operator_option(p, "in the chain-of-custody event")
    p.set_defaults(func=_search)


def search_index(where: Location, query: Any) -> tuple[list[Any], Any]:
    """The rows matching ``query`` in the index at ``where``, and what time it covers."""
    from sealtrail.search import open_index

    with using(where):
        index = open_index(where.where)
        try:
            return index.search(query), index.coverage()
        finally:
            index.close()


def _search(args: argparse.Namespace) -> None:
    from sealtrail.custody import operator_name, require_access
    from sealtrail.search import counted, parse_query

    settings = settings_from(args).with_stack()
    where = index_location(args, settings)
    query = parse_query(args.query, limit=args.limit)
    rows, coverage = search_index(where, query)
    # Custody first: with custody_required nothing is shown unless it is recorded.
    custody = require_access(settings, tool="search",
                             operator=operator_name(settings, args.operator),
                             query=args.query, count=len(rows))
    if args.json:
        for row in rows:
            print(json.dumps(row.to_json(), sort_keys=True))
    else:
        _print_table(rows)
    more = " (limit reached: there may be more; use --limit)" if len(rows) >= query.limit else ""
    print(f"{counted(len(rows), 'event')}{more}; {coverage.describe(query.since, query.until)} "
          f"[{where}]", file=sys.stderr)
    print(custody.message, file=sys.stderr)


def _print_table(rows: list[Any]) -> None:
    from sealtrail.core.times import format_time

    header = ("OCCURRED (UTC)", "ACTOR", "ACTION", "TYPE", "RESOURCE", "OUTCOME",
              "SERVICE", "WHERE")
    table: list[tuple[str, ...]] = [header, *[
        tuple(escape_control(v) for v in (
            format_time(r.occurred_at), r.actor, r.action, r.event_type,
            f"{r.resource_type}/{r.resource_id}", r.outcome, r.service,
            f"{r.chain_id}#{r.seq}")) for r in rows]]
    widths = [min(max(len(str(line[i])) for line in table), 48) for i in range(len(header))]
    for line in table:
        print("  ".join(str(v)[:48].ljust(w) for v, w in zip(line, widths, strict=True))
              .rstrip())
