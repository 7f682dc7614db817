"""Subcommands that run pipeline stages: seal, archive."""

from __future__ import annotations

import argparse
import logging

from prometheus_client import Histogram

from sealtrail.cli.common import (
    archive_location,
    archive_option,
    keys_hint,
    keys_location,
    open_archive_at,
    settings_from,
    stop_on_signals,
    using,
)
from sealtrail.observability import StageMetric, StageTelemetry
from sealtrail.runtime import dev

log = logging.getLogger("sealtrail")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def configure_seal(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Consume the raw topic, validate, deduplicate and redact each event, seal it into its "
        "partition's hash chain (Ed25519-signed, with the signing key of the keys directory: "
        "keys_dir, else <home>/keys) and produce it to the sealed topic, exactly once (Kafka "
        "transactions plus recovery from the chain). Runs until SIGTERM/SIGINT.")
    _metrics_option(p)
    p.set_defaults(func=_seal)


def configure_archive(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Consume the sealed topic (read_committed) and write one segment and one signed "
        "checkpoint per chain per flush to the archive (--archive URL, else the archive_url "
        "setting, else <home>/archive: a directory, file:// or s3://bucket/prefix). Offsets "
        "are committed only after the write is durable. Runs until SIGTERM/SIGINT, then "
        "flushes.")
    archive_option(p)
    _metrics_option(p)
    p.set_defaults(func=_archive)


def _metrics_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve /metrics, /healthz, /readyz on PORT (setting metrics_port; "
                   "0 or unset: off)")


#: The stages' metrics and health server (kept under this name for the callers here).
_Telemetry = StageTelemetry


def _seal(args: argparse.Namespace) -> None:
    from sealtrail.kafka.admin import ensure_topics
    from sealtrail.keys import ReloadingSigner
    from sealtrail.pipeline import Sealer
    from sealtrail.policy import RedactionMetrics, policy_for_sealer
    from sealtrail.schemas.registry_client import registry_client

    settings = settings_from(args, metrics_port=args.metrics_port).require_endpoints()
    keys = keys_location(settings)
    with using(keys, hint=keys_hint(settings)):
        signer = ReloadingSigner(settings.keys)  # follows `sealtrail keys rotate`
        redactions = RedactionMetrics()
        policy = policy_for_sealer(settings, redactions)
    dev.record_stage(settings.home, "seal", {"keys": keys.where})
    ensure_topics(settings)
    sealer = Sealer(settings, signer=signer, policy=policy,
                    registry=registry_client(settings.registry_url, settings.registry_auth))
    stop_on_signals(sealer.stop)
    telemetry = _Telemetry(settings, "sealer", settings.sealer_group, settings.raw_topic, [
        StageMetric("sealtrail_sealer_records_sealed_total",
                    "Raw records sealed as accepted events.", lambda: sealer.sealed),
        StageMetric("sealtrail_sealer_records_rejected_total",
                    "Raw records sealed as rejections (also copied to the DLQ).",
                    lambda: sealer.rejected),
    ])
    if telemetry.server is not None:
        telemetry.server.registry.register(redactions)
        batch = Histogram("sealtrail_sealer_batch_seconds", "Time from taking a batch of raw "
                          "records to its transaction being committed.",
                          registry=telemetry.server.registry, buckets=LATENCY_BUCKETS)
        sizes = Histogram("sealtrail_sealer_batch_records", "Raw records per sealed batch.",
                          registry=telemetry.server.registry,
                          buckets=(1, 10, 50, 100, 250, 500, 1000, 2000))

        def on_batch(records: int, seconds: float) -> None:
            batch.observe(seconds)
            sizes.observe(records)

        sealer.on_batch = on_batch
    log.info("sealer started: %s -> %s, key %s from %s, policy %s v%d", settings.raw_topic,
             settings.sealed_topic, signer.key_id, keys, policy.policy_id, policy.version)
    try:
        sealer.run()
    finally:
        telemetry.close()
    log.info("sealer stopped: %d sealed, %d rejected", sealer.sealed, sealer.rejected)


def _archive(args: argparse.Namespace) -> None:
    from sealtrail.consumers import Archiver
    from sealtrail.keys import ReloadingSigner
    from sealtrail.schemas.registry_client import registry_client

    settings = settings_from(args, archive_url=args.archive,
                             metrics_port=args.metrics_port).require_endpoints()
    where, keys = archive_location(args, settings), keys_location(settings)
    store = open_archive_at(settings, where, create=True)
    with using(keys, hint=keys_hint(settings)):
        signer = ReloadingSigner(settings.keys)
    with using(where):
        archiver = Archiver(settings, store=store, signer=signer,
                            registry=registry_client(settings.registry_url,
                                                     settings.registry_auth))
    dev.record_stage(settings.home, "archive", {"archive": where.where, "keys": keys.where})
    stop_on_signals(archiver.stop)
    writer = archiver.writer
    telemetry = _Telemetry(settings, "archiver", settings.archiver_group,
                           settings.sealed_topic, [
        StageMetric("sealtrail_archiver_records_archived_total",
                    "Sealed records written to the archive in segments.",
                    lambda: writer.records_archived),
        StageMetric("sealtrail_archiver_segments_written_total",
                    "Segments (each with its signed checkpoint) written to the archive.",
                    lambda: writer.segments_written),
        StageMetric("sealtrail_archiver_records_buffered",
                    "Sealed records consumed but not yet archived.",
                    lambda: writer.buffered, kind="gauge"),
        StageMetric("sealtrail_archiver_tail_check_failures_total",
                    "Chains whose tail in the archive did not check out before the archiver "
                    "would have written after it (nothing was written for them).",
                    lambda: writer.tail_failures),
        StageMetric("sealtrail_archiver_quarantined_chains",
                    "Chains the archiver does not write for (tail check failed); offsets are "
                    "not committed while any is.",
                    lambda: len(writer.quarantined), kind="gauge"),
        StageMetric("sealtrail_archiver_index_written_total",
                    "Signed archive indexes written.",
                    lambda: writer.index.written if writer.index else 0),
        StageMetric("sealtrail_archiver_index_broken",
                    "1 when the newest archive index did not check out and no index is "
                    "written on top of it.",
                    lambda: int(bool(writer.index and writer.index.broken)), kind="gauge"),
    ])
    if telemetry.server is not None:
        archiver.on_flush = Histogram(
            "sealtrail_archiver_flush_seconds", "Time to write the buffered segments and "
            "their signed checkpoints (offsets are committed after).",
            registry=telemetry.server.registry, buckets=LATENCY_BUCKETS).observe
    log.info("archiver started: %s -> %s (%s), keys from %s", settings.sealed_topic,
             store.url, where.origin, keys)
    try:
        archiver.run()
    finally:
        telemetry.close()
    log.info("archiver stopped: %d records in %d segments", archiver.writer.records_archived,
             archiver.writer.segments_written)
