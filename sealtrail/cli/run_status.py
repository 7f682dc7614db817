"""Subcommand ``sealtrail status``: the pipeline at a glance."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from sealtrail.cli.common import print_json, settings_from
from sealtrail.config import Settings
from sealtrail.errors import VerificationFailedError
from sealtrail.kafka.client import kafka_config

STAGES = ("seal", "archive", "monitor", "index")


def configure_status(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Shows the embedded stack's processes and the sealtrail stage processes on this host "
        "with the archive, keys directory and index each was started with, each stage's "
        "consumer lag (committed offsets vs high watermarks), every chain's newest archived "
        "checkpoint (head seq and age) and the alerts the monitor has firing (latest state "
        "per alert on the alerts topic). The chains are read from --archive, else the "
        "archive_url setting, else the archive the running archiver writes to, else "
        "<home>/archive. Exit 0 when it could look, 2 when the broker cannot be reached; "
        "--strict exits 1 while any alert fires.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--archive", metavar="URL",
                   help="archive whose chains are shown (default: see above)")
    p.add_argument("--strict", action="store_true", help="exit 1 while an alert fires")
    p.set_defaults(func=_status)


def _environ(entry: Path) -> dict[str, str]:
    try:
        raw = (entry / "environ").read_bytes().split(b"\0")
    except OSError:
        return {}
    pairs = (r.decode(errors="replace").split("=", 1) for r in raw if b"=" in r)
    return {k: v for k, v in pairs if k.startswith("SEALTRAIL_")}


def _same_pipeline(entry: Path, settings: Settings) -> bool:
    """Whether the process at ``entry`` works on this pipeline: same bootstrap, or (no
    bootstrap set) the same home, hence the same embedded stack."""
    env = _environ(entry)
    if env.get("SEALTRAIL_BOOTSTRAP"):
        return env["SEALTRAIL_BOOTSTRAP"] == settings.bootstrap
    try:
        cwd = Path(os.readlink(entry / "cwd"))
    except OSError:
        return False
    home = cwd / env.get("SEALTRAIL_HOME", ".sealtrail")
    return home.resolve() == settings.home.resolve()


def stage_processes(settings: Settings) -> list[dict[str, Any]]:
    """``sealtrail <stage>`` processes on this host working on this pipeline (Linux
    /proc; processes of other users are not visible, nor anything on other hosts)."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        joined = " ".join(args)
        if ("sealtrail" not in joined or int(entry.name) == os.getpid()
                or not _same_pipeline(entry, settings)):
            continue
        for stage in STAGES:
            if stage in args[1:] and any(a.endswith(("sealtrail", "sealtrail.cli.main"))
                                         for a in args):
                found.append({"pid": int(entry.name), "stage": stage})
                break
    return sorted(found, key=lambda p: (p["stage"], p["pid"]))


def firing_alerts(settings: Settings, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Alerts whose latest record on the alerts topic is FIRING."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer({**kafka_config(settings),
                         "group.id": "sealtrail-status", "enable.auto.commit": False})
    latest: dict[str, dict[str, Any]] = {}
    try:
        meta = consumer.list_topics(settings.alerts_topic, timeout=timeout)
        topic = meta.topics.get(settings.alerts_topic)
        if topic is None or topic.error is not None:
            return []
        ends = {}
        for p in topic.partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(settings.alerts_topic, p), timeout=timeout)
            if high > low:
                ends[p] = high
        if not ends:
            return []
        consumer.assign([TopicPartition(settings.alerts_topic, p, 0) for p in ends])
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    break
                continue
            try:
                doc = json.loads(msg.value() or b"")
                latest[f"{doc['alert']}/{doc['subject']}"] = doc
            except (ValueError, KeyError, TypeError):
                pass
            partition, offset = msg.partition() or 0, msg.offset() or 0
            if offset + 1 >= ends.get(partition, 0):
                ends.pop(partition, None)
    finally:
        consumer.close()
    return [d for _, d in sorted(latest.items()) if d.get("state") == "FIRING"]


def _with_locations(found: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """The stage processes, each with the locations it recorded when it started (the
    processes of this home record them: sealtrail.runtime.dev.record_stage)."""
    from sealtrail.runtime import dev

    recorded = {(r["stage"], r["pid"]): r for r in dev.recorded_stages(settings.home)}
    out = []
    for proc in found:
        entry = recorded.pop((proc["stage"], proc["pid"]), None)
        out.append({**proc, **(entry or {})} if entry else {**proc, "recorded": False})
    out += recorded.values()  # recorded and alive, though /proc showed another command line
    return sorted(out, key=lambda p: (str(p["stage"]), int(p["pid"])))


def _archive_to_show(explicit: str | None, settings: Settings,
                     processes: list[dict[str, Any]]) -> tuple[str, str]:
    """The archive whose chains status shows, and why that one."""
    if explicit:
        return explicit, "--archive"
    if settings.archive_url:
        return settings.archive_url, "setting archive_url"
    writers = [p for p in processes if p["stage"] == "archive" and p.get("archive")]
    if writers:
        return str(writers[0]["archive"]), f"the running archiver's, pid {writers[0]['pid']}"
    return settings.archive, "the default <home>/archive"


def collect(settings: Settings, archive: str | None = None) -> dict[str, Any]:
    from sealtrail.archive import open_archive
    from sealtrail.monitor.probes import archive_heads, stage_lags
    from sealtrail.runtime import dev

    stack = dev.running_stack(settings.home)
    now_us = time.time_ns() // 1000
    processes = _with_locations(stage_processes(settings), settings)
    doc: dict[str, Any] = {
        "embedded_stack": stack.to_json() if stack else None,
        "processes": processes,
        "bootstrap": settings.bootstrap,
        "lag": [{"stage": lag.stage, "group": lag.group, "topic": lag.topic,
                 "lag": lag.lag, "partitions": lag.partitions} for lag in stage_lags(settings)],
    }
    url, origin = _archive_to_show(archive, settings, processes)
    try:
        store = open_archive(settings, url)
        doc["chains"] = [{"chain_id": h.chain_id, "head_seq": h.last_seq,
                          "checkpoint_index": h.index,
                          "checkpoint_age_seconds": round((now_us - h.created_at_us) / 1e6, 1)}
                         for h in archive_heads(store)]
        doc["archive"] = {"url": url, "origin": origin, "error": None}
    except Exception as exc:
        doc["chains"] = []
        doc["archive"] = {"url": url, "origin": origin, "error": f"{type(exc).__name__}: {exc}"}
    doc["alerts_firing"] = firing_alerts(settings)
    return doc


def _status(args: argparse.Namespace) -> None:
    settings = settings_from(args).require_endpoints()
    doc = collect(settings, args.archive)
    if args.json:
        print_json(doc)
    else:
        print(render(doc))
    if args.strict and doc["alerts_firing"]:
        raise VerificationFailedError(f"{len(doc['alerts_firing'])} alerts firing (--strict)")


def _process_line(p: dict[str, Any]) -> str:
    where = [f"{name} {p[name]}" for name in ("archive", "keys", "index") if p.get(name)]
    if p.get("recorded") is False:
        where = ["locations not recorded"]
    return f"{p['stage']} (pid {p['pid']}" + "".join(f", {w}" for w in where) + ")"


def render(doc: dict[str, Any]) -> str:
    lines = []
    stack = doc["embedded_stack"]
    lines.append("embedded stack: " + (
        f"broker {stack['bootstrap']} (pid {stack['broker_pid']}), registry "
        f"{stack['registry']} (pid {stack['registry_pid']})" if stack
        else f"not running (broker {doc['bootstrap']})"))
    procs = doc["processes"]
    lines.append("processes:      " + (", ".join(_process_line(p) for p in procs)
                                       or "no sealtrail stage process on this host"))
    lines.append("lag:")
    for lag in doc["lag"]:
        lines.append(f"  {lag['stage']:<9} {lag['lag']:>8} records behind on {lag['topic']} "
                     f"(group {lag['group']})")
    arch = doc["archive"]
    lines.append(f"chains in {arch['url']} ({arch['origin']}):"
                 + (f" unreadable: {arch['error']}" if arch["error"] else ""))
    for c in doc["chains"]:
        lines.append(f"  {c['chain_id']}  head seq {c['head_seq']}, checkpoint "
                     f"{c['checkpoint_index']} is {c['checkpoint_age_seconds']} s old")
    if not doc["chains"] and not arch["error"]:
        lines.append("  (none archived yet)")
    alerts = doc["alerts_firing"]
    lines.append(f"alerts firing:  {len(alerts)}")
    for a in alerts:
        lines.append(f"  {a['alert']} [{a['subject']}]: {a['detail']}")
    return "\n".join(lines)
