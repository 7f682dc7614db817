"""The librdkafka configuration every sealtrail Kafka client starts from: where the broker
is and how to authenticate (Settings.kafka_*), so that a secured cluster is configuration,
not code."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sealtrail.config import Settings

__all__ = ["kafka_config", "security_config"]


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
