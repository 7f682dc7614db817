"""Apache Kafka on one command, as a user runs it: `dev up --broker kafka`, `dev down`,
`demo --broker kafka`, and the errors when Java, Maven or the fetch are missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from helpers.cli import run
from helpers.paths import REPO

from sealtrail.errors import TransportError
from sealtrail.kafka._fetch import (
    KAFKA_VERSION,
    cache_root,
    fetch_kafka,
    missing_tools,
    pom_xml,
)

needs_kafka = pytest.mark.skipif(missing_tools() is not None,
                                 reason=f"Apache Kafka cannot run here: {missing_tools()}")


def test_the_pom_names_the_broker_and_a_logging_binding_only() -> None:
    """The fetched broker is kafka_2.13 at the pinned version, plus the SLF4J binding that
    makes it log; nothing is vendored in the repository."""
    pom = pom_xml()
    assert f"<artifactId>kafka_2.13</artifactId>\n      <version>{KAFKA_VERSION}</version>" in pom
    assert "<artifactId>log4j-slf4j-impl</artifactId>" in pom
    assert pom.count("<dependency>") == 2
    assert not list(REPO.rglob("kafka_2.13*.jar"))
    assert not cache_root({"HOME": "/h"}).is_relative_to(REPO)
    assert cache_root({"XDG_CACHE_HOME": "/x"}) == Path("/x/sealtrail")
    assert cache_root({"SEALTRAIL_KAFKA_CACHE": "/c"}) == Path("/c")


def test_secure_needs_kafka(tmp_path: Path) -> None:
    """--secure on the embedded broker is a usage error that says what to add."""
    up = run(["dev", "up", "--secure"], tmp_path)
    assert up.returncode == 2 and "--secure needs --broker kafka" in up.stderr


def test_without_java_dev_up_says_what_to_install(tmp_path: Path) -> None:
    """With no java on the PATH, `dev up --broker kafka` exits 2 naming what is missing and
    how to get it; nothing is left running."""
    bare = tmp_path / "bin"
    bare.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    env["PATH"] = str(bare)
    out = subprocess.run([sys.executable, "-m", "sealtrail.cli.main", "dev", "up", "--broker",
                          "kafka"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2, out.stderr
    assert "needs Java 17 or newer" in out.stderr and "apt-get install" in out.stderr
    assert not (tmp_path / ".sealtrail" / "dev" / "stack.json").exists()


@needs_kafka
def test_a_failed_fetch_says_what_could_not_be_fetched(tmp_path: Path) -> None:
    """A version Maven Central does not have fails with TransportError quoting Maven, and
    leaves no half-filled cache that a later run would take as complete."""
    with pytest.raises(TransportError, match=r"could not fetch Apache Kafka 0\.0\.1-none"):
        fetch_kafka("0.0.1-none", root=tmp_path)
    assert not (tmp_path / "kafka-0.0.1-none" / ".complete").exists()
    assert not (tmp_path / "kafka-0.0.1-none" / "libs").exists()


@needs_kafka
@pytest.mark.kafka
def test_dev_up_kafka_serves_clients_and_dev_down_stops_it(tmp_path: Path) -> None:
    """`dev up --broker kafka --json` starts Apache Kafka with the pipeline's topics; a
    client produces and reads back a record; `dev down` stops broker and registry."""
    up = run(["dev", "up", "--broker", "kafka", "--json"], tmp_path)
    assert up.returncode == 0, up.stderr
    stack = json.loads(up.stdout)
    try:
        assert stack["broker"] == "kafka" and stack["users_file"] == ""
        assert b"kafka.Kafka" in Path(f"/proc/{stack['broker_pid']}/cmdline").read_bytes()
        producer = Producer({"bootstrap.servers": stack["bootstrap"], "acks": "all"})
        marker = uuid.uuid4().hex.encode()
        producer.produce("audit.raw", marker, partition=0)
        assert producer.flush(30) == 0
        consumer = Consumer({"bootstrap.servers": stack["bootstrap"], "group.id": "t"})
        consumer.assign([TopicPartition("audit.raw", 0, 0)])
        msg = consumer.poll(30)
        consumer.close()
        assert msg is not None and msg.value() == marker
        status = run(["dev", "status"], tmp_path)
        assert status.returncode == 0 and "(kafka)" in status.stdout
        log = (tmp_path / ".sealtrail" / "dev" / "kafka.log").read_text()
        assert "Kafka Server started" in log  # the SLF4J binding works: the broker logs
    finally:
        down = run(["dev", "down"], tmp_path)
    assert down.returncode == 0
    for pid in (stack["broker_pid"], stack["registry_pid"]):
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text().lower()


@needs_kafka
@pytest.mark.kafka
@pytest.mark.stack
def test_demo_on_kafka_after_the_embedded_demo_verifies(tmp_path: Path) -> None:
    """The acceptance check: after `demo` on the embedded broker, `demo --broker kafka` in
    the same directory exits 0, says the archive verified (both runs' chains), and stops
    the broker it started."""
    first = run(["demo", "--events", "300"], tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    second = run(["demo", "--broker", "kafka", "--events", "900"], tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "kafka stack: broker" in second.stdout
    assert "sealed             900 events" in second.stdout
    assert "PASSED: 6 chains in the archive (3 from earlier runs)" in second.stdout
    assert not (tmp_path / ".sealtrail" / "dev" / "stack.json").exists()


@needs_kafka
@pytest.mark.kafka
def test_secure_demo_runs_each_stage_as_its_own_principal(tmp_path: Path) -> None:
    """`demo --broker kafka --secure`: SASL/SCRAM and ACLs, each stage as its own user; it
    verifies, the users file is 0600, and no password appears in its output or the logs."""
    out = run(["demo", "--broker", "kafka", "--secure", "--events", "300"], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "with SASL/SCRAM and ACLs" in out.stdout
    assert "verify             PASSED: 3 chains" in out.stdout
    users_file = tmp_path / ".sealtrail" / "dev" / "kafka-users.json"
    assert users_file.stat().st_mode & 0o777 == 0o600
    passwords = json.loads(users_file.read_text()).values()
    logs = "".join(p.read_text(errors="replace")
                   for p in (tmp_path / ".sealtrail").rglob("*.log"))
    for password in passwords:
        assert password not in out.stdout + out.stderr + logs
    assert "AUTHORIZATION_FAILED" not in logs
