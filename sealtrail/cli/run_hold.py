"""``sealtrail hold apply | release | list``: legal holds by case."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sealtrail.cli.common import (
    Location,
    archive_location,
    archive_option,
    open_archive_at,
    operator_option,
    print_json,
    settings_from,
    using,
)
from sealtrail.cli.run_retention import retention_policy
from sealtrail.config import Settings


def configure_hold(p: argparse.ArgumentParser) -> None:
    p.description = ("Legal holds freeze, per case, every archived object holding a matching "
                     "event, whatever its retention (docs/archive.md). Each action writes a "
                     "hold manifest into the archive and emits a legal_hold.* audit event "
                     "naming the operator (--operator, else the operator setting, else the "
                     "login name).")
    hsub = p.add_subparsers(dest="hold_command", metavar="ACTION", required=True)
    a = hsub.add_parser("apply", help="hold every object holding a matching event",
                        description="Put the case's legal hold on every segment (and its "
                        "checkpoint) holding an event that occurred in [--from, --to] and "
                        "matches the filters; then write a hold manifest into the archive and "
                        "emit a legal_hold.apply audit event. Resumable: rerun the same "
                        "command after an interruption.")
    a.add_argument("--case", required=True, help="case id")
    a.add_argument("--from", dest="start", required=True, metavar="T1",
                   help="ISO-8601 start (inclusive, UTC unless an offset is given)")
    a.add_argument("--to", dest="end", required=True, metavar="T2", help="ISO-8601 end (inclusive)")
    a.add_argument("--actor", help="actor id")
    a.add_argument("--resource", help="resource id, or type:id")
    a.add_argument("--event-type", help="event type (glob, e.g. 'payment.*')")
    _hold_common(a)
    a.set_defaults(func=_hold_apply)
    r = hsub.add_parser("release", help="remove this case's holds (other cases' stay)")
    r.add_argument("--case", required=True, help="case id")
    _hold_common(r)
    r.set_defaults(func=_hold_release)
    ls = hsub.add_parser("list", help="cases, their status and objects")
    archive_option(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_hold_list)


def _hold_common(p: argparse.ArgumentParser) -> None:
    archive_option(p)
    operator_option(p, "in the manifest and the hold event", who="who acts")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true")


def _bar(label: str, args: argparse.Namespace) -> Any:
    """The hold progress line (only when stderr is a terminal and not --no-progress)."""
    from sealtrail.runtime.progress import ProgressLine

    return ProgressLine(label, enabled=not args.no_progress and sys.stderr.isatty(),
                        unit="units", min_total=20)


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
    except Exception as exc:  # any failure must be reported, not raised
        return f"{type(exc).__name__}: {exc}"
    return None


def _report_hold(args: argparse.Namespace, settings: Settings, result: Any, operator: str,
                 where: Location, attrs: dict[str, str]) -> None:
    attrs = {**attrs, "objects": str(len(result.objects)), "manifest": result.manifest or ""}
    problem = emit_hold_event(settings, result.action, result.case, operator, attrs)
    doc = {**result.to_json(), "operator": operator, "audit_event_emitted": problem is None,
           "audit_event_problem": problem, "archive": where.where}
    if args.json:
        print_json(doc)
        return
    print(f"{result.action} legal hold {result.case!r}: {len(result.objects)} objects "
          f"({result.newly_changed} changed"
          + (", resumed an interrupted run" if result.resumed else "") + f") in {where}")
    print(f"manifest: {result.manifest}")
    if problem is None:
        print(f"audit event legal_hold.{result.action} emitted (operator {operator})")
    else:
        print(f"WARNING: audit event legal_hold.{result.action} NOT emitted: {problem}; "
              "record this action in the case file by other means")


def _hold_apply(args: argparse.Namespace) -> None:
    from sealtrail.core.times import parse_time
    from sealtrail.custody import operator_name
    from sealtrail.governance.holds import HoldSelector, apply_hold

    settings = settings_from(args)
    where = archive_location(args, settings)
    store = open_archive_at(settings, where)
    operator = operator_name(settings, args.operator)
    selector = HoldSelector(parse_time(args.start), parse_time(args.end), args.actor,
                            args.resource, args.event_type)
    bar = _bar(f"hold {args.case}", args)
    try:
        with using(where):
            result = apply_hold(store, args.case, selector, policy=retention_policy(settings),
                                progress_dir=_progress_dir(settings), operator=operator,
                                on_unit=bar)
    finally:
        bar.close()
    attrs = {"from": args.start, "to": args.end}
    attrs.update({k: v for k, v in (("actor", args.actor), ("resource", args.resource),
                                    ("event_type", args.event_type)) if v})
    _report_hold(args, settings, result, operator, where, attrs)


def _hold_release(args: argparse.Namespace) -> None:
    from sealtrail.custody import operator_name
    from sealtrail.governance.holds import release_hold

    settings = settings_from(args)
    where = archive_location(args, settings)
    store = open_archive_at(settings, where)
    operator = operator_name(settings, args.operator)
    bar = _bar(f"release {args.case}", args)
    try:
        with using(where):
            result = release_hold(store, args.case, policy=retention_policy(settings),
                                  progress_dir=_progress_dir(settings), operator=operator,
                                  on_unit=bar)
    finally:
        bar.close()
    _report_hold(args, settings, result, operator, where, {})


def _hold_list(args: argparse.Namespace) -> None:
    from sealtrail.governance.holds import list_holds

    settings = settings_from(args)
    where = archive_location(args, settings)
    store = open_archive_at(settings, where)
    with using(where):
        rows = list_holds(store)
    if args.json:
        print_json(rows)
        return
    if not rows:
        print(f"no legal holds recorded in {where}")
    for r in rows:
        print(f"{r['case']:24} {r['status']:9} {r['objects']:6} objects  last {r['last_action']} "
              f"by {r['operator']} at {r['at']}")
