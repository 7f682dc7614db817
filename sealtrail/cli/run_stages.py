"""Subcommands that run pipeline stages: seal, archive."""

from __future__ import annotations

import argparse
import logging

from sealtrail.cli.common import settings_from, stop_on_signals

log = logging.getLogger("sealtrail")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "seal", help="run the sealer: raw topic -> redact, sign, chain -> sealed topic",
        description="Consume the raw topic, validate, deduplicate and redact each event, seal "
        "it into its partition's hash chain (Ed25519-signed) and produce it to the sealed "
        "topic, exactly once (Kafka transactions plus recovery from the chain). Runs until "
        "SIGTERM/SIGINT.",
    )
    p.set_defaults(func=_seal)
    p = sub.add_parser(
        "archive", help="run the archiver: sealed topic -> segments + signed checkpoints",
        description="Consume the sealed topic (read_committed) and write one segment and one "
        "signed checkpoint per chain per flush to the archive (--archive URL: a directory, "
        "file:// or s3://bucket/prefix). Offsets are committed only after the write is "
        "durable. Runs until SIGTERM/SIGINT, then flushes.",
    )
    p.add_argument("--archive", metavar="URL", help="archive root (default <home>/archive)")
    p.set_defaults(func=_archive)


def _seal(args: argparse.Namespace) -> int:
    from sealtrail.kafka_admin import ensure_topics
    from sealtrail.keys import load_hmac_key, load_signer
    from sealtrail.pipeline import Sealer
    from sealtrail.policy import load_policy
    from sealtrail.registry_client import registry_client

    settings = settings_from(args).require_endpoints()
    signer = load_signer(settings.keys)
    hmac_key, hmac_key_id = load_hmac_key(settings.keys)
    policy = load_policy(settings.policy_file, hmac_key, hmac_key_id)
    ensure_topics(settings)
    sealer = Sealer(settings, signer=signer, policy=policy,
                    registry=registry_client(settings.registry_url, settings.registry_auth))
    stop_on_signals(sealer.stop)
    log.info("sealer started: %s -> %s, key %s, policy %s v%d", settings.raw_topic,
             settings.sealed_topic, signer.key_id, policy.policy_id, policy.version)
    sealer.run()
    log.info("sealer stopped: %d sealed, %d rejected", sealer.sealed, sealer.rejected)
    return 0


def _archive(args: argparse.Namespace) -> int:
    from sealtrail.archive import open_store
    from sealtrail.consumers import Archiver
    from sealtrail.keys import load_signer
    from sealtrail.registry_client import registry_client

    settings = settings_from(args, archive_url=args.archive).require_endpoints()
    store = open_store(settings.archive, s3_endpoint_url=settings.s3_endpoint_url or None)
    archiver = Archiver(settings, store=store, signer=load_signer(settings.keys),
                        registry=registry_client(settings.registry_url, settings.registry_auth))
    stop_on_signals(archiver.stop)
    log.info("archiver started: %s -> %s", settings.sealed_topic, store.url)
    archiver.run()
    log.info("archiver stopped: %d records in %d segments", archiver.writer.records_archived,
             archiver.writer.segments_written)
    return 0
