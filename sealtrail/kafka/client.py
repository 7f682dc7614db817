"""The librdkafka configuration every sealtrail Kafka client starts from: where the broker
is and how to authenticate (Settings.kafka_*), so that a secured cluster is configuration,
not code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sealtrail.config import Settings

__all__ = ["group_config", "kafka_config", "security_config"]


def security_config(settings: Settings) -> dict[str, Any]:
    """security.protocol and SASL credentials; empty for PLAINTEXT (the embedded default)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    conf: dict[str, Any] = {"security.protocol": protocol}
    if protocol.startswith("SASL_"):
        conf.update({"sasl.mechanism": settings.kafka_sasl_mechanism,
                     "sasl.username": settings.kafka_sasl_username,
                     "sasl.password": settings.kafka_sasl_password})
    return conf


def kafka_config(settings: Settings) -> dict[str, Any]:
    """``bootstrap.servers`` plus :func:`security_config`: what every client starts from."""
    return {"bootstrap.servers": settings.bootstrap, **security_config(settings)}


def group_config(settings: Settings, group: str) -> dict[str, Any]:
    """How a subscribing consumer joins ``group``, for recovery in seconds:

    * ``classic`` protocol: cooperative-sticky assignment (a rebalance moves only the
      partitions that change owner; the others keep being consumed) and the session timeout
      of the settings;
    * ``consumer`` protocol (KIP-848, Apache Kafka 4.0+): the broker assigns incrementally
      and owns session and heartbeat timing (group.consumer.* broker settings);
    * with ``kafka_group_instance_id``, static membership: a restarted process rejoins as
      the same member and gets its partitions back without a rebalance."""
    conf: dict[str, Any] = {"group.id": group}
    if settings.kafka_group_protocol == "consumer":
        conf["group.protocol"] = "consumer"
    else:
        conf["partition.assignment.strategy"] = "cooperative-sticky"
        conf["session.timeout.ms"] = settings.session_timeout_ms
    if settings.kafka_group_instance_id:
        conf["group.instance.id"] = settings.kafka_group_instance_id
    return conf
