"""The stock confluent-kafka Schema Registry client, configured from sealtrail settings.

Works with any Confluent-compatible registry: sealtrail's embedded one, Confluent
Schema Registry, Karapace, Redpanda, Apicurio's ccompat API (docs/schemas.md).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from confluent_kafka.schema_registry import SchemaRegistryClient

from sealtrail.errors import ConfigError

__all__ = ["BEARER_PREFIX", "registry_client", "safe_url"]

BEARER_PREFIX = "Bearer "


def registry_client(url: str, auth: str = "", *, logical_cluster: str = "") -> SchemaRegistryClient:
    """A client for ``url``. ``auth`` is ``user:password`` for HTTP basic auth or
    ``Bearer <token>`` for a static bearer token (sent as ``Authorization: Bearer``);
    empty for none. ``logical_cluster`` is Confluent Cloud's ``target-sr-cluster`` for
    bearer tokens; other registries ignore it. Credentials never appear in errors."""
    conf: dict[str, Any] = {"url": url}
    if auth[: len(BEARER_PREFIX)].lower() == BEARER_PREFIX.lower():
        token = auth[len(BEARER_PREFIX):].strip()
        if not token or any(c.isspace() for c in token):
            raise ConfigError("registry auth: a bearer token is 'Bearer <token>', one word "
                              "after 'Bearer '")
        conf.update({
            "bearer.auth.credentials.source": "STATIC_TOKEN",
            "bearer.auth.token": token,
            "bearer.auth.logical.cluster": logical_cluster,
        })
    elif auth:
        if ":" not in auth:
            raise ConfigError("registry auth must be 'user:password' (basic auth) or "
                              "'Bearer <token>'")
        conf["basic.auth.user.info"] = auth
    try:
        return SchemaRegistryClient(conf)
    except (ValueError, TypeError) as exc:
        # The client's messages name configuration keys, never their values.
        raise ConfigError(f"invalid schema registry configuration for {safe_url(url)}: "
                          f"{exc}") from None


def safe_url(url: str) -> str:
    """``url`` without any ``user:password@`` part, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable registry URL>"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
