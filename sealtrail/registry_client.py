"""The stock confluent-kafka Schema Registry client, configured from sealtrail settings.

Works with any Confluent-compatible registry: sealtrail's embedded one, Confluent
Schema Registry, Karapace, Redpanda, Apicurio's ccompat API (docs/registry.md).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient

__all__ = ["registry_client"]


def registry_client(url: str, auth: str = "") -> SchemaRegistryClient:
    """A client for ``url``; ``auth`` is ``user:password`` for basic auth (never logged)."""
    conf: dict[str, Any] = {"url": url}
    if auth:
        conf["basic.auth.user.info"] = auth
    return SchemaRegistryClient(conf)
