"""Every ``sealtrail`` command: its name, the module that defines it, and a one-line summary.

The table is the one list of commands and also the order of ``sealtrail --help``: the
pipeline first, then the tools. ``sealtrail.cli.<module>.<configure>(parser)`` adds the
command's description, options and handler (``parser.set_defaults(func=...)``) to the
parser ``main`` created for it; a handler returns nothing and raises on failure, and
``main`` alone turns what it raises into an exit code. A new command: a module
``sealtrail/cli/run_<family>.py`` and a row here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COMMANDS", "Command"]


@dataclass(frozen=True)
class Command:
    module: str
    """The module under ``sealtrail.cli`` that defines the command."""
    configure: str
    """The function of that module that sets up the command's parser."""
    summary: str
    """One line for ``sealtrail --help``."""


COMMANDS: dict[str, Command] = {
    # -- the pipeline ----------------------------------------------------------------------
    "demo": Command("run_demo", "configure_demo",
                    "run the whole pipeline end to end on the embedded stack, then verify"),
    "broker": Command("run_stack", "configure_broker",
                      "run the embedded Kafka-compatible broker (Tansu, memory)"),
    "registry": Command("run_stack", "configure_registry",
                        "run the embedded Confluent-compatible schema registry"),
    "dev": Command("run_stack", "configure_dev",
                   "start or stop the embedded stack in the background"),
    "seal": Command("run_stages", "configure_seal",
                    "run the sealer: raw topic -> redact, sign, chain -> sealed topic"),
    "archive": Command("run_stages", "configure_archive",
                       "run the archiver: sealed topic -> segments + signed checkpoints"),
    # -- checking the evidence -----------------------------------------------------------------
    "verify": Command("run_verify", "configure_verify",
                      "verify an archive against a pinned public keyring"),
    "keys": Command("run_keys", "configure_keys",
                    "create and rotate signing keys, export the public keyring"),
    "policy": Command("run_policy", "configure_policy", "validate a redaction policy file"),
    "schemas": Command("run_schemas", "configure_schemas",
                       "check schema versions; publish them to a registry"),
    # -- compliance and legal ----------------------------------------------------------------
    "retention": Command("run_retention", "configure_retention",
                         "retention classes: report, purge, lifecycle rules"),
    "hold": Command("run_hold", "configure_hold", "legal holds by case: apply, release, list"),
    "prove": Command("run_prove", "configure_prove",
                     "write an offline proof that one event is archived"),
    "verify-proof": Command("run_prove", "configure_verify_proof",
                            "check a proof file offline"),
    "export-note": Command("run_notes", "configure_export_note",
                           "a checkpoint as a C2SP tlog-checkpoint signed note"),
    "verify-note": Command("run_notes", "configure_verify_note",
                           "check a C2SP checkpoint note's signature"),
    "witness": Command("run_witness", "configure_witness",
                       "check an archive only grew since last seen, cosign and record it"),
    # -- reading the trail -----------------------------------------------------------------------
    "replay": Command("run_replay", "configure_replay",
                      "replay a time range from Kafka or the archive, verified, to a topic "
                      "or a file"),
    "search": Command("run_search", "configure_search",
                      "search the index: who did what, when, on what"),
    "index": Command("run_index", "configure_index",
                     "build the search index: run the indexer, rebuild from the archive, "
                     "show coverage"),
    "export": Command("run_export", "configure_export",
                      "export matching events with inclusion proofs to a zip"),
    "verify-export": Command("run_export", "configure_verify_export",
                             "check an export bundle offline"),
    "report": Command("run_report", "configure_report",
                      "HTML report of a period: volume, rejections, redaction, retention, "
                      "holds, verification"),
    # -- privacy -----------------------------------------------------------------------------
    "forget": Command("run_forget", "configure_forget",
                      "destroy a data subject's key: their encrypted fields become unreadable"),
    "dlq": Command("run_dlq", "configure_dlq",
                   "read the dead-letter topic (rejected raw records, encrypted)"),
    # -- operations ------------------------------------------------------------------------------
    "monitor": Command("run_monitor", "configure_monitor",
                       "run the monitor: sealed topic -> windowed stats, alerts, metrics"),
    "status": Command("run_status", "configure_status",
                      "the pipeline at a glance: processes and their locations, lag, chain "
                      "heads, alerts"),
    "kafka": Command("run_kafka", "configure_kafka",
                     "Apache Kafka: the pipeline's ACLs; fetch the dev broker"),
    "config": Command("run_config", "configure_config", "show the effective configuration"),
}
