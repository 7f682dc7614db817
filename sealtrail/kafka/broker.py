"""A single-node Apache Kafka (KRaft, combined broker and controller) for development, the
demo and the tests, run from the jars that :mod:`sealtrail.kafka._fetch` caches.

Plain mode listens on one PLAINTEXT port. Secure mode (``secure=True``) is what G8 is tested
against: clients must authenticate with SASL/SCRAM-SHA-256 and the StandardAuthorizer
allows only what an ACL grants (``allow.everyone.if.no.acl.found=false``); the controller
listener uses SASL/PLAIN with the admin user, the broker talks to itself as admin over SCRAM,
and ``User:admin`` is the only super user (no anonymous super user, no unauthenticated
port). Every principal's SCRAM credentials are created when the storage is formatted, with
random passwords kept in a 0600 file of the stack's directory.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from sealtrail.errors import TransportError
from sealtrail.kafka._fetch import KafkaRuntime, fetch_kafka
from sealtrail.kafka.principals import PRINCIPALS

__all__ = ["KafkaBroker", "broker_properties", "start_kafka"]

#: JVM options: a small heap (the dev broker holds little), quick start.
JVM_OPTS = ("-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true")
#: SCRAM mechanism of the client listener.
SCRAM = "SCRAM-SHA-256"
ADMIN = "admin"

#: Settings the tests, the dev stack and deploy/ share
#: (tests/integration/deploy/test_deploy.py checks deploy/).
#: Group timings are short so that a dead member's partitions move in seconds; a
#: replication factor of 1 because there is one node.
BROKER_SETTINGS: dict[str, str] = {
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "10",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
    # KIP-848 consumer groups: the broker owns session and heartbeat timing.
    "group.consumer.min.session.timeout.ms": "3000",
    "group.consumer.session.timeout.ms": "6000",
    "group.consumer.min.heartbeat.interval.ms": "500",
    "group.consumer.heartbeat.interval.ms": "1000",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "5000",
}

_LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = STDOUT
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = INFO
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = INFO
"""


@dataclass(frozen=True)
class KafkaBroker:
    """A started broker process and where its clients connect."""

    proc: subprocess.Popen[bytes]
    bootstrap: str
    users_file: str
    """JSON file (0600) of every principal's SCRAM password; empty when not secure."""


def _jaas(module: str, user: str, password: str, extra: str = "") -> str:
    return (f'org.apache.kafka.common.security.{module} required username="{user}" '
            f'password="{password}"{extra};')


def broker_properties(data_dir: Path, port: int, controller_port: int,
                      admin_password: str = "") -> dict[str, str]:
    """server.properties of a single combined node; secured when ``admin_password`` is set."""
    client = "SASL_PLAINTEXT" if admin_password else "PLAINTEXT"
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"{client}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"{client}://127.0.0.1:{port},"
                                f"CONTROLLER://127.0.0.1:{controller_port}",
        "inter.broker.listener.name": client,
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": f"CONTROLLER:{client},{client}:{client}",
        "log.dirs": str(data_dir),
        **BROKER_SETTINGS,
    }
    if admin_password:
        props.update({
            "sasl.enabled.mechanisms": SCRAM,
            "sasl.mechanism.inter.broker.protocol": SCRAM,
            "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config":
                _jaas("scram.ScramLoginModule", ADMIN, admin_password),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": _jaas(
                "plain.PlainLoginModule", ADMIN, admin_password,
                f' user_{ADMIN}="{admin_password}"'),
            "authorizer.class.name":
                "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
        })
    return props


def _cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` makes one (base64url, 16 bytes),
    without starting a JVM for it."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _java(runtime: KafkaRuntime, devdir: Path, *args: str) -> list[str]:
    return [runtime.java(), *JVM_OPTS, f"-Dlog4j2.configurationFile={devdir / 'log4j2.properties'}",
            "-cp", runtime.classpath, *args]


def start_kafka(devdir: Path, port: int, controller_port: int, *, secure: bool = False,
                runtime: KafkaRuntime | None = None) -> KafkaBroker:
    """Format fresh storage under ``devdir`` and start the broker in the background (its
    own session, output to ``devdir/kafka.log``). Returns without waiting for the port."""
    runtime = runtime or fetch_kafka()
    devdir.mkdir(parents=True, exist_ok=True)
    devdir = devdir.resolve()
    data = devdir / "kafka-data"
    shutil.rmtree(data, ignore_errors=True)  # fresh storage, like the embedded broker's
    (devdir / "log4j2.properties").write_text(_LOG4J2)
    users: dict[str, str] = {}
    if secure:
        users = {ADMIN: secrets.token_urlsafe(18)}
        users.update({p.user: secrets.token_urlsafe(18) for p in PRINCIPALS})
    props = broker_properties(data, port, controller_port, users.get(ADMIN, ""))
    config = devdir / "server.properties"
    config.touch(mode=0o600)
    config.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    users_file = ""
    if secure:
        users_path = devdir / "kafka-users.json"
        users_path.touch(mode=0o600)
        os.chmod(users_path, 0o600)
        users_path.write_text(json.dumps(users, indent=2) + "\n")
        users_file = str(users_path)
    fmt = ["kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(config),
           "--standalone"]
    for user, password in users.items():
        fmt += ["--add-scram", f"{SCRAM}=[name={user},password={password}]"]
    with open(devdir / "kafka.log", "ab") as log:
        done = subprocess.run(_java(runtime, devdir, *fmt), stdout=log, stderr=log,
                              stdin=subprocess.DEVNULL, timeout=180)
        if done.returncode != 0:
            raise TransportError(f"formatting Kafka's storage failed (exit {done.returncode}); "
                                 f"see {devdir / 'kafka.log'}")
        proc = subprocess.Popen(_java(runtime, devdir, "kafka.Kafka", str(config)),
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    return KafkaBroker(proc, f"127.0.0.1:{port}", users_file)
