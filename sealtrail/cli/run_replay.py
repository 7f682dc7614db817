"""Subcommand: replay a time range from Kafka or the archive, verified, into a sink."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from sealtrail.cli.common import (
    Location,
    archive_location,
    archive_option,
    keyring_location,
    keyring_option,
    load_keyring_at,
    open_archive_at,
    operator_option,
    settings_from,
    using,
)
from sealtrail.config import Settings
from sealtrail.core.disclosure import escape_control
from sealtrail.errors import VerificationFailedError
from sealtrail.kafka.client import kafka_config


def configure_replay(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Read sealed records of an ingestion-time range from the sealed topic "
        "(--source kafka, positioned with offsets_for_times) or from the archive (--source "
        "archive, only the segments whose checkpoints cover the range), verifying hashes, "
        "links, signatures and checkpoints while reading, and write the matching events to "
        "--to. Stops at the first break (exit 1) unless --continue-on-error. Resumable: "
        "rerun the same command after an interruption. Exit 0 ok, 1 evidence broken, 2 usage "
        "or I/O. See docs/replay.md.")
    p.add_argument("--source", choices=("kafka", "archive"), default="archive")
    archive_option(p)
    keyring_option(p)
    p.add_argument("--since", metavar="T", help="ingested at or after T (2026-03-01, ISO "
                   "time or microseconds)")
    p.add_argument("--until", metavar="T", help="ingested before T")
    p.add_argument("--event-type", metavar="E")
    p.add_argument("--actor", metavar="A", help="actor id")
    p.add_argument("--service", metavar="S", help="emitting service")
    p.add_argument("--include-rejections", action="store_true",
                   help="also write rejection entries (only without event filters)")
    p.add_argument("--to", required=True, metavar="DEST",
                   help="topic:NAME | file:PATH.jsonl | file:PATH.avro | file:PATH.parquet "
                   "(needs pyarrow) | - (JSON lines)")
    p.add_argument("--continue-on-error", action="store_true",
                   help="list every break and go on with the other chains")
    p.add_argument("--no-signatures", action="store_true",
                   help="check hashes and links only (checkpoint signatures still checked)")
    p.add_argument("--workers", type=int, default=0, metavar="N",
                   help="check archive segments on N cores (default 0: all of them)")
    p.add_argument("--state", metavar="FILE", help="resume state (default DEST.replay-state."
                   "json for files; none for topics and stdout)")
    p.add_argument("--progress", action="store_true", help="progress on stderr even when it "
                   "is not a terminal")
    operator_option(p, "in the chain-of-custody event")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stderr")
    p.set_defaults(func=_replay)


def _replay(args: argparse.Namespace) -> None:
    from sealtrail.core.times import optional_time
    from sealtrail.custody import operator_name, record_access, require_access
    from sealtrail.replay import Query, replay

    settings = settings_from(args).with_stack()
    keys = keyring_location(args, settings)
    keyring = load_keyring_at(keys)
    query = Query(optional_time(args.since), optional_time(args.until), args.event_type, args.actor,
                  args.service, args.include_rejections)
    state = Path(args.state) if args.state else None
    if state is None and args.to.startswith("file:"):
        state = Path(args.to[5:] + ".replay-state.json")
    source, where = _source(args, settings, keyring)
    described = f"{args.source}: {query.describe()} -> {args.to}"
    operator = operator_name(settings, args.operator)
    if settings.custody_required:  # recorded before a single record is handed out
        print(require_access(settings, tool="replay", operator=operator, query=described,
                             count=None).message, file=sys.stderr)
    stopped = threading.Event()
    workers = args.workers if args.workers > 0 else (os.cpu_count() or 1)
    try:
        with using(*where, keys):
            result = replay(source, query, args.to, kafka=kafka_config(settings),
                            state_path=state, continue_on_error=args.continue_on_error,
                            workers=workers, progress=args.progress or sys.stderr.isatty(),
                            stop=stopped.is_set)
    except KeyboardInterrupt:
        print(f"sealtrail: replay interrupted; rerun the same command to resume"
              f"{f' (state {state})' if state else ''}", file=sys.stderr)
        raise
    for problem in result.breaks:
        print(escape_control(f"BROKEN {problem}"), file=sys.stderr)
    for note in result.notes:  # read but not evidence (yet), so not written; not a break
        print(escape_control(f"NOT REPLAYED {note}"), file=sys.stderr)
    status = "REPLAYED" if result.ok else "STOPPED AT A BREAK" if not args.continue_on_error \
        else "REPLAYED WITH BREAKS"
    print(f"{status}: {result.written} records written to {args.to} from {source.description}"
          f" ({result.checked} entries checked in {result.seconds:.1f} s"
          f"{', resumed' if result.resumed else ''}; query: {query.describe()})",
          file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_json(), sort_keys=True), file=sys.stderr)
    custody = record_access(settings, tool="replay", operator=operator, query=described,
                            count=result.written, outcome="SUCCESS" if result.ok else "FAILURE")
    print(custody.message, file=sys.stderr)
    if not result.ok:
        raise VerificationFailedError(f"replay found {len(result.breaks)} breaks in "
                                      f"{source.description}")


def _source(args: argparse.Namespace, settings: Settings, keyring: Any
            ) -> tuple[Any, tuple[Location, ...]]:
    """The source to replay from, and the locations it reads (the archive, if any)."""
    from sealtrail.archive.fast_segments import AVAILABLE, NOT_BUILT
    from sealtrail.replay import ArchiveSource, KafkaSource

    if args.source != "archive":
        return KafkaSource(settings.require_endpoints(), keyring,
                           check_signatures=not args.no_signatures), ()
    where = archive_location(args, settings)
    source = ArchiveSource(open_archive_at(settings, where), keyring,
                           check_signatures=not args.no_signatures,
                           s3_endpoint=settings.s3_endpoint_url or None)
    if not AVAILABLE:
        print(f"sealtrail: note: {NOT_BUILT}", file=sys.stderr)
    print(f"replaying from {where}, verified against the {keyring_location(args, settings)}",
          file=sys.stderr)
    return source, (where,)
