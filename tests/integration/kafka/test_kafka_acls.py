"""G8, least privilege, enforced by Apache Kafka itself: SASL/SCRAM and the StandardAuthorizer
with the ACLs of `sealtrail kafka acls`. The broker refuses an unknown principal, a producer
writing the sealed topic and a producer reading the raw topic, each with a clear client error,
while the pipeline, each stage as its own principal, seals, archives and verifies."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from helpers.pipeline_checks import archived_count, finish_producer, run_producer, store_of, verify
from helpers.pipeline_checks import wait_until as wait
from helpers.stages import Stage

from sealtrail.config import Settings
from sealtrail.kafka.acls import as_user, provision
from sealtrail.kafka.client import kafka_config
from sealtrail.kafka.principals import PRINCIPALS, acls_for, transactional_id_prefix
from sealtrail.keys import init_keys
from sealtrail.runtime import dev

SEALTRAIL = [sys.executable, "-m", "sealtrail.cli.main"]


@pytest.fixture(scope="session")
def secure_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dev.Stack]:
    """Apache Kafka with SASL/SCRAM and ACLs (`dev up --broker kafka --secure`), once."""
    from sealtrail.kafka._fetch import missing_tools

    why = missing_tools()
    if why:
        pytest.skip(f"Apache Kafka cannot run here: {why}")
    home = tmp_path_factory.mktemp("secure-kafka")
    started = dev.start_stack(home, broker_kind="kafka", secure=True)
    try:
        yield started
    finally:
        dev.stop_stack(home)


@pytest.fixture
def secured(secure_stack: dev.Stack, tmp_path: Path) -> Settings:
    """Fresh topics and groups on the secured broker, created and granted by its admin;
    the settings carry no user (each test picks one)."""
    tag = uuid.uuid4().hex[:8]
    s = Settings(home=tmp_path / "home", bootstrap=secure_stack.bootstrap,
                 registry_url=secure_stack.registry, raw_topic=f"raw-{tag}",
                 sealed_topic=f"sealed-{tag}", dlq_topic=f"dlq-{tag}",
                 sealer_group=f"sealer-{tag}", archiver_group=f"archiver-{tag}",
                 archive_url=str(tmp_path / "archive"), segment_max_records=2000,
                 segment_max_seconds=1.0)
    init_keys(s.keys)
    provision(s, secure_stack.users_file)
    return s


def as_(settings: Settings, stack: dev.Stack, user: str) -> Settings:
    return as_user(settings, stack.users_file, user)


def errors_of(conf: dict[str, Any]) -> tuple[dict[str, Any], list[KafkaError]]:
    seen: list[KafkaError] = []
    return {**conf, "error_cb": seen.append}, seen


def read_until(consumer: Consumer, code: int, timeout: float = 20.0) -> list[Any]:
    """Everything ``consumer`` gets (records and errors) until an error with ``code``."""
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += consumer.consume(10, 0.5)
        if any(m.error() is not None and m.error().code() == code for m in got):
            break
    return got


# -- the ACLs themselves ---------------------------------------------------------------

def test_the_producer_may_only_write_the_raw_topic() -> None:
    """The producer principal's whole grant: DESCRIBE and WRITE on the raw topic. No
    principal gets ALL, a cluster right or a wildcard resource; the sealer's transactional
    ids are granted by the prefix its producers use."""
    s = Settings()
    acls = acls_for(s)
    producer = {(a.resource, a.name, a.pattern, a.operation) for a in acls
                if a.principal == "producer"}
    assert producer == {("TOPIC", s.raw_topic, "LITERAL", "DESCRIBE"),
                        ("TOPIC", s.raw_topic, "LITERAL", "WRITE")}
    assert all(a.operation != "ALL" and a.resource != "CLUSTER" and a.name not in ("*", "")
               for a in acls)
    assert {a.principal for a in acls} == {p.user for p in PRINCIPALS}
    writers_of_sealed = {a.principal for a in acls
                         if a.name == s.sealed_topic and a.operation == "WRITE"}
    assert writers_of_sealed == {"sealer"}
    from sealtrail.pipeline.sealer import Sealer

    txn = [a for a in acls if a.resource == "TRANSACTIONAL_ID"]
    assert {a.principal for a in txn} == {"sealer"} and {a.pattern for a in txn} == {"PREFIXED"}
    sealer_txn_id = Sealer.transactional_id(dataclasses.make_dataclass(  # no broker needed
        "S", [("settings", Settings)])(s), 7)  # type: ignore[arg-type]
    assert sealer_txn_id.startswith(transactional_id_prefix(s))


def test_acls_print_lists_every_binding_and_apply_needs_an_admin(
    secured: Settings, secure_stack: dev.Stack
) -> None:
    """`sealtrail kafka acls --print` prints what acls_for derives; `--apply` as the tools
    principal is refused with a message saying an admin is needed; as admin it succeeds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    tools = as_(secured, secure_stack, "tools")
    printed = subprocess.run([*SEALTRAIL, "kafka", "acls", "--print", "--json"],
                             env={**env, **secured.to_env()}, capture_output=True, text=True,
                             timeout=60)
    assert printed.returncode == 0, printed.stderr
    assert len(json.loads(printed.stdout)) == len(acls_for(secured))
    refused = subprocess.run([*SEALTRAIL, "kafka", "acls", "--apply"],
                             env={**env, **dataclasses.replace(
                                 tools, kafka_sasl_username="producer",
                                 kafka_sasl_password=json.loads(Path(
                                     secure_stack.users_file).read_text())["producer"]
                             ).to_env()}, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "refused" in refused.stderr and "admin principal" in refused.stderr
    admin = as_(secured, secure_stack, "admin")
    applied = subprocess.run([*SEALTRAIL, "kafka", "acls", "--apply"],
                             env={**env, **admin.to_env()}, capture_output=True, text=True,
                             timeout=120)
    assert applied.returncode == 0, applied.stderr
    assert f"{len(acls_for(secured))} ACLs applied" in applied.stdout
    assert secure_stack.users_file not in applied.stdout + applied.stderr
    for password in json.loads(Path(secure_stack.users_file).read_text()).values():
        assert password not in applied.stdout + applied.stderr + refused.stderr


# -- what the broker refuses -----------------------------------------------------------

def test_an_unknown_principal_is_refused_at_authentication(secured: Settings) -> None:
    """A client with a user the broker does not know gets an authentication error naming
    SASL and the mechanism, and no metadata."""
    mallory = dataclasses.replace(secured, kafka_security_protocol="SASL_PLAINTEXT",
                                  kafka_sasl_username="mallory",
                                  kafka_sasl_password="guess")
    conf, seen = errors_of({**kafka_config(mallory), "message.timeout.ms": 4000})
    producer = Producer(conf)
    producer.produce(secured.raw_topic, b"x")
    producer.flush(10)
    assert len(producer) == 0 and seen  # failed, not pending
    assert seen, "no error reported"
    assert seen[0].code() == KafkaError._AUTHENTICATION
    assert "SASL authentication error" in seen[0].str()
    assert "SCRAM-SHA-256" in seen[0].str()


def test_the_producer_cannot_write_the_sealed_topic(
    secured: Settings, secure_stack: dev.Stack
) -> None:
    """The producer principal, configured exactly as AuditClient configures it (idempotent,
    acks=all), is refused by the broker when it writes the sealed topic (and the DLQ), while
    its writes to the raw topic go through."""
    conf = {**kafka_config(as_(secured, secure_stack, "producer")),
            "enable.idempotence": True, "acks": "all"}
    for topic, expected in ((secured.raw_topic, None),
                            (secured.sealed_topic, KafkaError.TOPIC_AUTHORIZATION_FAILED),
                            (secured.dlq_topic, KafkaError.TOPIC_AUTHORIZATION_FAILED)):
        results: list[KafkaError | None] = []
        producer = Producer(conf)
        producer.produce(topic, b"forged",
                         on_delivery=lambda err, _m, out=results: out.append(err))
        producer.flush(30)
        assert len(results) == 1, topic
        err = results[0]
        if expected is None:
            assert err is None, f"{topic}: {err}"
        else:
            assert err is not None and err.code() == expected, f"{topic}: {err}"
            assert "Topic authorization failed" in err.str()


def test_the_producer_cannot_read_the_raw_topic(
    secured: Settings, secure_stack: dev.Stack
) -> None:
    """The producer principal gets TOPIC_AUTHORIZATION_FAILED fetching the raw topic it
    writes, and GROUP_AUTHORIZATION_FAILED joining the sealer's group."""
    producer = as_(secured, secure_stack, "producer")
    p = Producer({**kafka_config(producer), "enable.idempotence": True})
    p.produce(secured.raw_topic, b"secret")
    assert p.flush(30) == 0
    reader = Consumer({**kafka_config(producer), "group.id": secured.sealer_group,
                       "auto.offset.reset": "earliest"})
    try:
        reader.assign([TopicPartition(secured.raw_topic, 0, 0),
                       TopicPartition(secured.raw_topic, 1, 0),
                       TopicPartition(secured.raw_topic, 2, 0)])
        got = read_until(reader, KafkaError.TOPIC_AUTHORIZATION_FAILED)
        assert all(m.error() is not None for m in got), "a record was read"
        refused = [m.error() for m in got
                   if m.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED]
        assert refused and "Topic authorization failed" in refused[0].str()
    finally:
        reader.close()
    joiner = Consumer({**kafka_config(producer), "group.id": secured.sealer_group})
    try:
        joiner.subscribe([secured.raw_topic])
        got = read_until(joiner, KafkaError.GROUP_AUTHORIZATION_FAILED)
        assert all(m.error() is not None for m in got), "a record was read"
        assert KafkaError.GROUP_AUTHORIZATION_FAILED in {m.error().code() for m in got}
    finally:
        joiner.close()


def test_the_archiver_cannot_write_the_sealed_topic(
    secured: Settings, secure_stack: dev.Stack
) -> None:
    """Only the sealer writes sealed records: the archiver principal, which reads them, is
    refused when it tries to write one."""
    results: list[KafkaError | None] = []
    producer = Producer(kafka_config(as_(secured, secure_stack, "archiver")))
    producer.produce(secured.sealed_topic, b"forged", on_delivery=lambda e, _m: results.append(e))
    producer.flush(30)
    assert results and results[0] is not None
    assert results[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


# -- and what it allows: the whole pipeline, each stage as itself ----------------------

def test_the_pipeline_runs_with_each_stage_as_its_own_principal(
    secured: Settings, secure_stack: dev.Stack, tmp_path: Path
) -> None:
    """Producer, sealer (transactions, DLQ) and archiver, each authenticated as its own
    least-privileged principal, seal and archive every event, including a rejected record
    (DLQ write), and the archive verifies."""
    stages = [Stage(as_(secured, secure_stack, "sealer"), "seal", tmp_path / "seal.log"),
              Stage(as_(secured, secure_stack, "archiver"), "archive", tmp_path / "arch.log")]
    try:
        producer = as_(secured, secure_stack, "producer")
        emitted = finish_producer(run_producer(producer, "svc", 500, seed=1))["emitted"]
        p = Producer(kafka_config(producer))
        p.produce(secured.raw_topic, b"not avro")
        assert p.flush(30) == 0
        store = store_of(secured)
        wait(lambda: archived_count(store) >= emitted + 1, 120, "archive",
             alive=lambda: all(s.alive() for s in stages))
        for stage in stages:
            assert stage.stop() == 0, stage.output()
        report = verify(secured)
        assert report.ok and sum(c.events for c in report.chains) == emitted
        assert sum(sum(c.rejections.values()) for c in report.chains) == 1
        for stage in stages:
            assert "AUTHORIZATION_FAILED" not in stage.output(), stage.output()
    finally:
        for stage in stages:
            if stage.alive():
                stage.kill()


def test_the_monitor_reads_as_its_own_principal(
    secured: Settings, secure_stack: dev.Stack, tmp_path: Path
) -> None:
    """The faust monitor authenticates as `monitor` (SASL/SCRAM through aiokafka) and, with
    only its ACLs, reads the sealed records the sealer writes: its metrics count them."""
    import urllib.request

    from sealtrail.runtime.dev import free_port

    port = free_port()
    monitor_settings = dataclasses.replace(
        as_(secured, secure_stack, "monitor"), metrics_port=port, monitor_probe_seconds=1.0)
    stages = [Stage(monitor_settings, "monitor", tmp_path / "monitor.log"),
              Stage(as_(secured, secure_stack, "sealer"), "seal", tmp_path / "seal.log")]

    def metrics() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return str(r.read().decode())
        except OSError:
            return ""

    try:
        # The monitor starts at the end of the sealed topic: keep sealing garbage until it
        # has joined and counts some.
        p = Producer(kafka_config(as_(secured, secure_stack, "producer")))
        deadline = time.monotonic() + 120
        while 'sealtrail_monitor_rejections_total{reason="UNDECODABLE"}' not in metrics():
            assert time.monotonic() < deadline, "the monitor counted no sealed rejection"
            assert all(s.alive() for s in stages), stages[0].output()
            for _ in range(5):
                p.produce(secured.raw_topic, b"not avro")
            p.flush(30)
            time.sleep(1)
        for stage in stages:
            assert "AUTHORIZATION_FAILED" not in stage.output(), stage.output()
            assert "SaslAuthenticationFailed" not in stage.output()
    finally:
        for stage in stages:
            if stage.alive():
                stage.kill()


def test_replay_and_dlq_read_authenticate_as_tools_and_triage(
    secured: Settings, secure_stack: dev.Stack, tmp_path: Path
) -> None:
    """The operators' readers work on a secured broker, each as its least-privileged
    principal: `replay --source kafka` as tools, into a file and into a topic; `dlq read`
    as triage; each records its chain-of-custody event on the raw topic (custody_required
    on, so a refused custody write would fail the command)."""
    stages = [Stage(as_(secured, secure_stack, "sealer"), "seal", tmp_path / "seal.log")]
    try:
        producer = as_(secured, secure_stack, "producer")
        emitted = finish_producer(run_producer(producer, "svc", 50, seed=2))["emitted"]
        p = Producer(kafka_config(producer))
        p.produce(secured.raw_topic, b"not avro either")
        assert p.flush(30) == 0
        out = tmp_path / "replayed.jsonl"

        def run(user: str, *args: str) -> subprocess.CompletedProcess[str]:
            s = dataclasses.replace(as_(secured, secure_stack, user), custody_required=True)
            return subprocess.run([*SEALTRAIL, *args], capture_output=True, text=True,
                                  timeout=120, env={**os.environ, **s.to_env()})

        def replayed() -> bool:
            done = run("tools", "replay", "--source", "kafka", "--to", f"file:{out}",
                       "--json")
            assert done.returncode == 0, done.stdout + done.stderr
            return len(out.read_text().splitlines()) >= emitted

        wait(replayed, 90, "replay from Kafka", alive=lambda: stages[0].alive())
        done = run("tools", "replay", "--source", "kafka", "--to",
                   f"topic:{secured.raw_topic}-copy")
        # the tools principal may not write an arbitrary topic: a clear refusal, exit 2
        assert done.returncode == 2, done.stdout + done.stderr
        assert "authoriz" in done.stderr.lower(), done.stderr
        listed = run("triage", "dlq", "read", "--json")
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert len(listed.stdout.splitlines()) == 1
        refused = run("tools", "dlq", "read", "--json")
        assert refused.returncode == 2, refused.stdout + refused.stderr
    finally:
        for stage in stages:
            if stage.alive():
                stage.kill()
