"""What the client checks and learns once at start: the bootstrap address and the
AuditEvent schema id."""

from __future__ import annotations

import json
import socket
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from sealtrail.core.disclosure import mask_url
from sealtrail.errors import ConfigError, TransportError

__all__ = ["check_bootstrap", "register_schema", "safe_name"]


def check_bootstrap(bootstrap: str) -> None:
    """Raise ConfigError unless ``bootstrap`` is a list of resolvable host:port."""
    if not bootstrap:
        raise ConfigError("AuditClient needs a Kafka bootstrap address (bootstrap=...)")
    for entry in bootstrap.split(","):
        host, sep, port = entry.strip().rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"bootstrap address {entry.strip()!r} is not host:port "
                              "(e.g. kafka-1:9092,kafka-2:9092)")
        try:
            socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise ConfigError(f"bootstrap host {host!r} does not resolve: check the "
                              "bootstrap address (bootstrap=... / SEALTRAIL_BOOTSTRAP)") from None


def register_schema(schema: dict[str, Any], topic: str, url: str, auth: str) -> int:
    """Register the AuditEvent schema under ``<topic>-value``; returns its id."""
    avro = Schema(json.dumps(schema), "AVRO")
    try:
        return int(_registry(url, auth).register_schema(f"{topic}-value", avro))
    except SchemaRegistryError as exc:
        raise TransportError(
            f"schema registry at {mask_url(url)} refused the AuditEvent schema: {exc}"
        ) from None
    except Exception as exc:  # requests/httpx connection errors
        raise TransportError(
            f"schema registry at {mask_url(url)} is unreachable ({type(exc).__name__}); "
            "the client "
            "needs it once at start to learn the schema id"
        ) from None


def _registry(url: str, auth: str) -> SchemaRegistryClient:
    """A registry client that gives up after one retry: start-up fails fast."""
    conf: dict[str, Any] = {"url": url, "max.retries": 1, "retries.wait.ms": 200,
                            "timeout": 10}
    if auth:
        conf["basic.auth.user.info"] = auth
    return SchemaRegistryClient(conf)


def safe_name(name: str) -> str:
    """``name`` reduced to characters safe in a file name."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "_"
