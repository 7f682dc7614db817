"""Printing and applying the pipeline's ACLs (:func:`sealtrail.kafka.principals.acls_for`)
through Kafka's AdminClient, and the per-principal settings of a secured dev stack."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from sealtrail.config import Settings
from sealtrail.errors import ConfigError, TransportError
from sealtrail.kafka.client import kafka_config
from sealtrail.kafka.principals import Acl

__all__ = ["apply_acls", "as_user", "binding", "provision"]


def binding(acl: Acl) -> AclBinding:
    """The AdminClient's form of ``acl`` (any host)."""
    return AclBinding(ResourceType[acl.resource], acl.name, ResourcePatternType[acl.pattern],
                      f"User:{acl.principal}", "*", AclOperation[acl.operation],
                      AclPermissionType.ALLOW)


def apply_acls(admin_settings: Settings, acls: list[Acl], timeout: float = 30.0) -> int:
    """Create every binding of ``acls`` (creating an existing one is a no-op) as the
    principal of ``admin_settings``, which must be allowed to ALTER the cluster's ACLs."""
    admin = AdminClient(kafka_config(admin_settings))
    try:
        futures = admin.create_acls([binding(a) for a in acls], request_timeout=timeout)
    except KafkaException as exc:
        raise TransportError(f"cannot create ACLs on {admin_settings.bootstrap}: {exc}") from None
    for bound, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            err = exc.args[0]
            hint = ""
            if "SECURITY_DISABLED" in err.name() or "no authorizer" in str(err).lower():
                hint = " (the broker runs without an authorizer: set authorizer.class.name)"
            elif "AUTHORIZATION" in err.name():
                hint = " (the configured user may not alter ACLs: use an admin principal)"
            raise TransportError(f"ACL {bound} refused: {err.str()}{hint}") from None
    _await_visible(admin, acls, timeout)
    return len(acls)


def _await_visible(admin: AdminClient, acls: list[Acl], timeout: float) -> None:
    """Wait until the broker's authorizer lists every binding of ``acls``: CreateAcls is
    answered once the controller has them, a moment before the broker enforces them."""
    wanted = {binding(a) for a in acls}
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = set(admin.describe_acls(everything, request_timeout=timeout).result())
        except KafkaException as exc:
            raise TransportError(f"cannot list ACLs: {exc}") from None
        if wanted <= found:
            return
        time.sleep(0.1)
    raise TransportError(f"the broker did not list the new ACLs within {timeout:.0f} s")


def as_user(settings: Settings, users_file: str | Path, user: str) -> Settings:
    """``settings`` authenticating as ``user`` of a secured dev stack's users file."""
    try:
        users = json.loads(Path(users_file).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the dev stack's users file {users_file}: {exc}") from None
    if user not in users:
        raise ConfigError(f"the dev stack has no Kafka user {user!r} ({', '.join(users)})")
    return dataclasses.replace(settings, kafka_security_protocol="SASL_PLAINTEXT",
                               kafka_sasl_mechanism="SCRAM-SHA-256",
                               kafka_sasl_username=user, kafka_sasl_password=users[user])


def provision(settings: Settings, users_file: str) -> None:
    """Create the pipeline's topics of ``settings`` (and the monitor's alerts topic) and, on
    a secured stack (``users_file`` set), grant each principal its ACLs, all as the stack's
    admin: no stage needs the right to create topics."""
    from confluent_kafka.admin import NewTopic

    from sealtrail.kafka.admin import ensure_topics
    from sealtrail.kafka.principals import acls_for

    admin = as_user(settings, users_file, "admin") if users_file else settings
    ensure_topics(admin)
    client = AdminClient(kafka_config(admin))
    if settings.alerts_topic not in client.list_topics(timeout=30).topics:
        for future in client.create_topics([NewTopic(settings.alerts_topic, 1, 1)]).values():
            try:
                future.result(30)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise TransportError(f"cannot create topic {settings.alerts_topic}: "
                                         f"{exc}") from None
    if users_file:
        apply_acls(admin, acls_for(settings))
