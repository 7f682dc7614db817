"""Subcommand ``sealtrail monitor``: the faust-streaming monitor."""

from __future__ import annotations

import argparse
import logging
import sys

from sealtrail.cli.common import archive_location, settings_from
from sealtrail.errors import TransportError
from sealtrail.runtime import dev

log = logging.getLogger("sealtrail")


def configure_monitor(p: argparse.ArgumentParser) -> None:
    p.description = (
        "A faust-streaming worker (at_least_once) that reads the sealed topic, keeps tumbling "
        "windows per service, event type, rejection reason, redaction and schema id, and "
        "writes alert records (JSON) to the alerts topic: volume drop or stop, rejection "
        "rate, new schema id, stale checkpoint, clock skew, consumer lag. Thresholds are the "
        "monitor_* settings (docs/configuration.md). Runs until SIGTERM/SIGINT.")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve /metrics, /healthz, /readyz on PORT (setting metrics_port)")
    p.add_argument("--archive", metavar="URL",
                   help="archive whose checkpoints are probed (default: the archive_url "
                   "setting, else <home>/archive)")
    p.set_defaults(func=_monitor)


def _monitor(args: argparse.Namespace) -> None:
    import faust
    from prometheus_client import CollectorRegistry

    from sealtrail.monitor.app import build_app, ensure_alerts_topic
    from sealtrail.observability import Health, start_metrics_server

    settings = settings_from(args, metrics_port=args.metrics_port,
                             archive_url=args.archive).require_endpoints()
    where = archive_location(args, settings)
    ensure_alerts_topic(settings)
    dev.record_stage(settings.home, "monitor", {"archive": where.where})
    registry = CollectorRegistry()
    health = Health(ready_for=max(60.0, settings.monitor_probe_seconds * 3))
    server = None
    if settings.metrics_port:
        server = start_metrics_server(settings.metrics_host, settings.metrics_port, registry,
                                      health)
    app = build_app(settings, registry, health)
    log.info("monitor started: %s -> %s, windows of %.1f s, probing %s", settings.sealed_topic,
             settings.alerts_topic, settings.monitor_window_seconds, where)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, stdout=sys.stderr,
                          redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:  # faust's worker ends by exiting; a failure is a stage error
        if exc.code:
            raise TransportError(f"the monitor's faust worker stopped with status "
                                 f"{exc.code} (its log above says why)") from None
    finally:
        health.stopped()
        if server is not None:
            server.stop()
