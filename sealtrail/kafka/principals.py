"""Least privilege on Apache Kafka (G8): who sealtrail's processes authenticate as, and the
ACLs that let each do its job and nothing more. Pure data, derived from the Settings' topic,
group and transactional-id names; :mod:`sealtrail.kafka.acls` prints and applies them.

- producer: write (idempotently) the raw topic.
- sealer: read raw; read and transactionally write sealed; write the DLQ; its group; its
  transactional ids (by prefix).
- archiver, indexer: read sealed; their groups.
- monitor: read sealed; write alerts; its own (faust) topics and group; describe the
  stages' groups (lag).
- triage: read the DLQ (`sealtrail dlq read`); nobody else may (docs/operations.md).
- tools: read sealed and alerts (replay, status); describe topics and the stages' groups.
- tools and triage also write the raw topic: every read of audit data by a tool is itself
  an audit event (chain of custody, sealtrail.custody), emitted like any service's.

Topic creation and ACL changes are the admin's (a super user), never a stage's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sealtrail.config import Settings

__all__ = ["PRINCIPALS", "Acl", "Principal", "acls_for", "transactional_id_prefix"]


@dataclass(frozen=True)
class Principal:
    user: str
    """SCRAM user name; the Kafka principal is ``User:<user>``."""
    role: str
    """What the process that authenticates as this user does."""


PRINCIPALS = (
    Principal("producer", "services emitting audit events (AuditClient)"),
    Principal("sealer", "sealtrail seal"),
    Principal("archiver", "sealtrail archive"),
    Principal("indexer", "sealtrail index"),
    Principal("monitor", "sealtrail monitor"),
    Principal("tools", "operators' commands: status, replay from Kafka"),
    Principal("triage", "operators who triage rejections: sealtrail dlq read"),
)


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding: ``principal`` may ``operation`` on ``resource`` ``name``."""

    principal: str
    resource: str  # TOPIC, GROUP, TRANSACTIONAL_ID, CLUSTER
    name: str
    pattern: str  # LITERAL or PREFIXED
    operation: str  # READ, WRITE, DESCRIBE, CREATE, ...

    def __str__(self) -> str:
        return (f"User:{self.principal:<9} ALLOW {self.operation:<8} {self.resource:<16} "
                f"{self.name} ({self.pattern})")


def transactional_id_prefix(settings: Settings) -> str:
    """The prefix of every transactional.id the sealer uses for ``settings.raw_topic``."""
    return f"sealtrail-sealer.{settings.raw_topic}."


def _topic(user: str, name: str, *ops: str, pattern: str = "LITERAL") -> list[Acl]:
    return [Acl(user, "TOPIC", name, pattern, op) for op in ("DESCRIBE", *ops)]


def _group(user: str, name: str, op: str = "READ", pattern: str = "LITERAL") -> Acl:
    return Acl(user, "GROUP", name, pattern, op)


def acls_for(settings: Settings) -> list[Acl]:
    """Every ACL the pipeline of ``settings`` needs, sorted; nothing else is allowed."""
    s = settings
    acls = [
        *_topic("producer", s.raw_topic, "WRITE"),
        *_topic("sealer", s.raw_topic, "READ"),
        *_topic("sealer", s.sealed_topic, "READ", "WRITE"),
        *_topic("sealer", s.dlq_topic, "WRITE"),
        _group("sealer", s.sealer_group),
        # The read-only helpers that recover a chain and check a first write assign
        # partitions by hand; their group ids are only looked up, never joined.
        _group("sealer", "sealtrail-recovery"),
        _group("sealer", "sealtrail-sealer-probe"),
        *[Acl("sealer", "TRANSACTIONAL_ID", transactional_id_prefix(s), "PREFIXED", op)
          for op in ("DESCRIBE", "WRITE")],
        *_topic("archiver", s.sealed_topic, "READ"),
        _group("archiver", s.archiver_group),
        *_topic("indexer", s.sealed_topic, "READ"),
        _group("indexer", s.indexer_group),
        _group("indexer", f"{s.archiver_group}-indexer"),
        *_topic("monitor", s.sealed_topic, "READ"),
        *_topic("monitor", s.raw_topic),
        *_topic("monitor", s.alerts_topic, "WRITE"),
        *_topic("monitor", s.monitor_group, "READ", "WRITE", "CREATE", pattern="PREFIXED"),
        _group("monitor", s.monitor_group, pattern="PREFIXED"),
        *_topic("tools", s.raw_topic, "WRITE"),
        *_topic("tools", s.sealed_topic, "READ"),
        *_topic("tools", s.alerts_topic, "READ"),
        _group("tools", "sealtrail-status"),
        _group("tools", "sealtrail-replay-", pattern="PREFIXED"),
        *_topic("triage", s.raw_topic, "WRITE"),
        *_topic("triage", s.dlq_topic, "READ"),
        _group("triage", "sealtrail-dlq-read-", pattern="PREFIXED"),
    ]
    for user in ("monitor", "tools"):
        acls += [_group(user, g, "DESCRIBE") for g in (s.sealer_group, s.archiver_group)]
    return sorted(set(acls))
