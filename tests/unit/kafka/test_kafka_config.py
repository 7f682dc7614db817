"""Kafka client settings without a broker: SASL credentials in the typed Settings (masked,
passed to child processes), the group configuration of each protocol, and a secured dev
stack's default user."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.paths import REPO

from sealtrail.cli.run_config import MASK, masked
from sealtrail.config import Settings, load_settings
from sealtrail.errors import ConfigError
from sealtrail.kafka.client import group_config, kafka_config


def test_the_sasl_password_is_masked_and_reaches_children_only_through_the_environment(
) -> None:
    """`config show` masks kafka_sasl_password; the child-process environment carries it
    (that is how stages get it); librdkafka gets it as sasl.password."""
    s = load_settings(env={"SEALTRAIL_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                           "SEALTRAIL_KAFKA_SASL_USERNAME": "sealer",
                           "SEALTRAIL_KAFKA_SASL_PASSWORD": "pa55-w0rd"})
    shown = masked(s)
    assert shown["kafka_sasl_password"] == MASK and "pa55-w0rd" not in json.dumps(shown)
    assert shown["kafka_sasl_username"] == "sealer"
    assert s.to_env()["SEALTRAIL_KAFKA_SASL_PASSWORD"] == "pa55-w0rd"
    conf = kafka_config(s)
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.password"] == "pa55-w0rd"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-256"
    assert kafka_config(Settings(bootstrap="b:9092")) == {"bootstrap.servers": "b:9092"}


def test_unknown_protocols_and_mechanisms_are_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match="SASL_PLAINTEXT"):
        Settings(kafka_security_protocol="SASL")
    with pytest.raises(ConfigError, match="SCRAM-SHA-512"):
        Settings(kafka_sasl_mechanism="GSSAPI")
    with pytest.raises(ConfigError, match="KIP-848"):
        Settings(kafka_group_protocol="eager")


def test_group_config_per_protocol() -> None:
    """Classic groups: cooperative-sticky and the session timeout; KIP-848: neither (the
    broker owns both, and librdkafka refuses them); static membership in both."""
    classic = group_config(Settings(session_timeout_ms=7000, kafka_group_instance_id="p-0"),
                           "g")
    assert classic == {"group.id": "g", "partition.assignment.strategy": "cooperative-sticky",
                       "session.timeout.ms": 7000, "group.instance.id": "p-0"}
    kip848 = group_config(Settings(kafka_group_protocol="consumer"), "g")
    assert kip848 == {"group.id": "g", "group.protocol": "consumer"}


def test_the_sealer_hands_producers_no_consumer_properties() -> None:
    """The sealer's producers and recovery readers start from kafka_config alone: no
    group settings, so librdkafka has no consumer property to warn about (CONFWARN)."""
    source = (REPO / "pipeline" / "sealer.py").read_text()
    assert "self._base = kafka_config(settings)" in source
    assert '"session.timeout.ms"' not in source


def test_a_secured_dev_stack_makes_commands_authenticate_as_tools(tmp_path: Path) -> None:
    """With `dev up --secure` running, a command without a configured user authenticates as
    the least-privileged `tools` principal; a configured user is kept."""
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"admin": "a", "tools": "t", "sealer": "s"}))
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "stack.json").write_text(json.dumps(
        {"bootstrap": "127.0.0.1:1", "registry": "http://127.0.0.1:2",
         "users_file": str(users)}))
    s = Settings(home=tmp_path).with_stack()
    assert (s.kafka_sasl_username, s.kafka_sasl_password) == ("tools", "t")
    assert s.kafka_security_protocol == "SASL_PLAINTEXT"
    kept = Settings(home=tmp_path, kafka_sasl_username="sealer",
                    kafka_sasl_password="s").with_stack()
    assert kept.kafka_sasl_username == "sealer"
