"""The demo: start the embedded stack and the stages as separate processes, emit from
three simulated services plus a few malformed records, wait until everything is
archived, verify, print a summary, stop everything it started.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from sealtrail.archive import ArchiveStore, open_archive
from sealtrail.config import Settings
from sealtrail.core import layout
from sealtrail.core.avro import frame
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.errors import ConfigError, TransportError
from sealtrail.kafka.acls import as_user, provision
from sealtrail.kafka.client import kafka_config
from sealtrail.keys import PUBLIC_KEYRING, init_keys, load_keyring
from sealtrail.runtime import dev
from sealtrail.verify import verify_archive

SERVICES = ("auth-gateway", "billing", "crm")


@dataclass
class DemoResult:
    emitted: int = 0
    malformed: int = 0
    new_chains: list[str] = field(default_factory=list)
    ok: bool = False


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def _archived_entries(store: ArchiveStore, chains: list[str]) -> int:
    total = 0
    for chain_id in chains:
        for key in store.list(f"{layout.CHAINS}{chain_id}/checkpoints/"):
            total += SignedCheckpoint.from_bytes(store.get(key)).checkpoint.size
    return total


def malformed_records(registry_url: str) -> list[bytes]:
    """Raw records no service should send: each must come out as a sealed rejection."""
    import fastavro

    from sealtrail import schemas
    from sealtrail.core.avro import AvroCodec
    from sealtrail.schemas.registry_client import registry_client

    # A writer schema registered under another subject that lacks required fields.
    partial = {"type": "record", "name": "AuditEvent", "namespace": "io.sealtrail",
               "fields": [{"name": "event_id", "type": "string"},
                          {"name": "event_type", "type": "string"}]}
    from confluent_kafka.schema_registry import Schema

    partial_id = registry_client(registry_url).register_schema(
        "demo.partial-value", Schema(json.dumps(partial), "AVRO"))
    import io

    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(partial),
                               {"event_id": "e-partial", "event_type": "auth.login"})
    good_id = registry_client(registry_url).register_schema(
        "audit.raw-value", Schema(json.dumps(schemas.load(schemas.AUDIT_EVENT)), "AVRO"))
    empty_id_event = {
        "event_id": " ", "event_type": "auth.login", "action": "login", "occurred_at": 1,
        "actor": {"id": "u-1", "type": "user", "principal": None},
        "origin": {"service": "crm", "instance": "i-1", "service_version": None,
                   "environment": None, "source_ip": None, "user_agent": None,
                   "request_id": None, "trace_id": None},
        "resource": {"type": "t", "id": "1"}, "outcome": "SUCCESS", "reason": None,
        "authorization": None, "tenant": None, "classification": "INTERNAL",
        "attributes": {},
    }
    return [
        b"this is not avro at all",
        b"\x01\x00\x00\x00\x01garbage-after-wrong-magic",
        frame(999_999, b"\x02\x04ab"),
        frame(partial_id, buf.getvalue()),
        frame(good_id, AvroCodec(schemas.load(schemas.AUDIT_EVENT)).encode(empty_id_event)),
    ]


def _spawn(args: list[str], log: Path, settings: Settings) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", *args],
                                stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                env={**os.environ, **settings.to_env()})


def _as(settings: Settings, stack: dev.Stack, user: str) -> Settings:
    """``settings`` as Kafka user ``user`` on a secured stack; unchanged otherwise."""
    return as_user(settings, stack.users_file, user) if stack.users_file else settings


def _stack(settings: Settings, broker: str, secure: bool) -> tuple[dev.Stack, bool]:
    """The running dev stack of ``settings.home`` (it must be of the broker asked for), or
    a new one; and whether the demo started it (and so stops it)."""
    running = dev.running_stack(settings.home)
    if running is not None and (running.broker, bool(running.users_file)) != (broker, secure):
        raise ConfigError(f"a dev stack with broker {running.broker}"
                          f"{' (secure)' if running.users_file else ''} is running for "
                          f"{settings.home}: `sealtrail dev down` first, or run the demo with "
                          "its --broker")
    if running is not None:
        return running, False
    _say(f"starting the {broker} broker" + (" with SASL/SCRAM and ACLs" if secure else ""))
    return dev.start_stack(settings.home, broker_kind=broker, secure=secure), True


def _run_services(settings: Settings, stack: dev.Stack, logs: Path, events: int,
                  timeout: float) -> int:
    """Run the simulated services, each a process emitting its share of ``events``; how
    many they emitted."""
    per_service = events // len(SERVICES)
    services = []
    for i, name in enumerate(SERVICES):
        with open(logs / f"{name}.log", "ab") as err:
            services.append(subprocess.Popen(
                [sys.executable, "-m", "sealtrail.demo.traffic", "--service", name,
                 "--count", str(per_service), "--seed", str(i)],
                stdout=subprocess.PIPE, stderr=err,
                env={**os.environ, **_as(settings, stack, "producer").to_env()},
            ))
    emitted = 0
    for proc in services:
        out, _ = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            raise TransportError(f"a simulated service failed (see {logs})")
        report = json.loads(out)
        emitted += report["emitted"]
        _say(f"service {report['service']}: emitted {report['emitted']}")
    return emitted


def _inject_malformed(settings: Settings, stack: dev.Stack) -> int:
    """Write :func:`malformed_records` to the raw topic; how many."""
    bad = malformed_records(settings.registry_url)
    producer = Producer(kafka_config(_as(settings, stack, "producer")))
    for value in bad:
        producer.produce(settings.raw_topic, value, b"malformed")
    producer.flush(30)
    _say(f"injected {len(bad)} malformed raw records")
    return len(bad)


def _wait_archived(store: ArchiveStore, before: set[str], expected: int,
                   procs: list[subprocess.Popen[bytes]], timeout: float, logs: Path
                   ) -> list[str]:
    """Wait until the chains new since ``before`` hold ``expected`` archived entries; the
    new chains. Raises when a pipeline process exits or the time is up."""
    deadline = time.monotonic() + timeout
    archived = 0
    while time.monotonic() < deadline:
        new = sorted(set(layout.chain_ids(store.list(layout.CHAINS))) - before)
        archived = _archived_entries(store, new)
        if archived >= expected:
            break
        for proc in procs:
            if proc.poll() is not None:
                raise TransportError(f"a pipeline process exited (logs in {logs})")
        time.sleep(1)
    _say(f"archived {archived} of {expected} entries")
    if archived < expected:
        raise TransportError(f"only {archived} of {expected} entries archived within "
                             f"{timeout:.0f} s (logs in {logs})")
    return new


def run_demo(settings: Settings, *, events: int = 10_200, timeout: float = 300.0,
             broker: str = "tansu", secure: bool = False) -> DemoResult:
    result = DemoResult()
    home = settings.home
    logs = home / "demo-logs"
    logs.mkdir(parents=True, exist_ok=True)
    signer, created = init_keys(settings.keys)
    _say(f"{'created' if created else 'using'} signing key {signer.key_id} in {settings.keys}")
    stack, started_stack = _stack(settings, broker, secure)
    _say(f"{stack.broker} stack: broker {stack.bootstrap}, registry {stack.registry}")
    # Smaller segments than the production default, so the demo shows several per chain.
    settings = dataclasses.replace(
        settings.with_stack(), segment_max_records=min(settings.segment_max_records, 1000))
    store = open_archive(settings)
    before = set(layout.chain_ids(store.list(layout.CHAINS)))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        provision(settings, stack.users_file)
        procs.append(_spawn(["seal"], logs / "sealer.log", _as(settings, stack, "sealer")))
        procs.append(_spawn(["archive"], logs / "archiver.log",
                            _as(settings, stack, "archiver")))
        _say(f"sealer pid {procs[0].pid}, archiver pid {procs[1].pid} (logs in {logs})")
        result.emitted = _run_services(settings, stack, logs, events, timeout)
        result.malformed = _inject_malformed(settings, stack)
        result.new_chains = _wait_archived(store, before, result.emitted + result.malformed,
                                           procs, timeout, logs)
    finally:
        for proc in procs:
            dev.stop_pid(proc.pid)
            proc.wait()
        if started_stack:
            dev.stop_stack(home)
            _say("embedded stack stopped")
    report = verify_archive(store, load_keyring(settings.keys / PUBLIC_KEYRING))
    _print_summary(settings, store, report, result)
    new_reports = [c for c in report.chains if c.chain_id in result.new_chains]
    result.ok = report.ok and sum(c.events for c in new_reports) == result.emitted
    return result


def _print_summary(settings: Settings, store: ArchiveStore, report: Any,
                   result: DemoResult) -> None:
    """What the demo did and what verify found, for a person."""
    new_reports = [c for c in report.chains if c.chain_id in result.new_chains]
    rejections: Counter[str] = Counter()
    for chain in new_reports:
        rejections.update(chain.rejections)
    print()
    print("sealtrail demo summary")
    print(f"  emitted            {result.emitted} events from {len(SERVICES)} services, "
          f"+{result.malformed} malformed records")
    print(f"  sealed             {sum(c.events for c in new_reports)} events")
    print(f"  rejected           {sum(rejections.values())} "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(rejections.items()))})")
    print(f"  segments           {sum(c.segments for c in new_reports)} in this run")
    print(f"  chains (this run)  {len(new_reports)}")
    for chain in new_reports:
        print(f"    {chain.chain_id}  head seq {chain.head_seq}  {chain.head_hash[:16]}…")
    newest = store.list(f"{layout.CHAINS}{result.new_chains[0]}/checkpoints/")[-1]
    retention = store.retention(newest)
    print(f"  retention          {retention.mode} until "
          f"{retention.retain_until.date().isoformat()}"
          + ("" if store.enforces_retention else " (recorded; the local file system does "
             "not enforce it)"))
    broken = [c for c in report.chains if not c.ok]
    print(f"  verify             {'PASSED' if report.ok else 'FAILED'}: {len(report.chains)} "
          f"chains in the archive ({len(report.chains) - len(new_reports)} from earlier "
          f"runs), {sum(c.entries for c in report.chains)} entries, {len(broken)} broken")
    for chain in broken:
        for finding in chain.findings:
            print(f"    {finding}")
    print(f"  archive            {store.url}")
    print(f"  check it yourself  .venv/bin/sealtrail verify {settings.archive} "
          f"--keys {settings.keys / PUBLIC_KEYRING}")

