"""Shared fixtures: a real embedded stack (Tansu broker + sealtrail registry) for the
session, and per-test settings with their own topics, groups, keys and archive."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sealtrail.config import Settings
from sealtrail.kafka.admin import ensure_topics
from sealtrail.keys import init_keys
from sealtrail.runtime import dev


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dev.Stack]:
    """The embedded broker and registry, started once for the test session."""
    home = tmp_path_factory.mktemp("stack")
    started = dev.start_stack(home)
    try:
        yield started
    finally:
        dev.stop_stack(home)


@pytest.fixture(scope="session")
def kafka_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dev.Stack]:
    """Single-node Apache Kafka (KRaft, jars fetched from Maven Central on first use) and a
    registry, started once for the test session; skips, saying why, without java or mvn."""
    from sealtrail.kafka._fetch import missing_tools

    why = missing_tools()
    if why:
        pytest.skip(f"Apache Kafka cannot run here: {why}")
    home = tmp_path_factory.mktemp("kafka")
    started = dev.start_stack(home, broker_kind="kafka")
    try:
        yield started
    finally:
        dev.stop_stack(home)


#: Run a test once on each broker: ``@on_both_brokers`` (the ``settings`` fixture follows).
on_both_brokers = pytest.mark.parametrize("broker", ["tansu", "kafka"])


@pytest.fixture
def broker() -> str:
    """The broker ``settings`` points at: Tansu unless a test is ``@on_both_brokers``."""
    return "tansu"


@pytest.fixture
def settings(broker: str, request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for one test: unique topics and groups on the shared stack, fresh keys."""
    stack: dev.Stack = request.getfixturevalue("kafka_stack" if broker == "kafka" else "stack")
    tag = uuid.uuid4().hex[:8]
    s = Settings(
        home=tmp_path / "home",
        bootstrap=stack.bootstrap,
        registry_url=stack.registry,
        raw_topic=f"raw-{tag}",
        sealed_topic=f"sealed-{tag}",
        dlq_topic=f"dlq-{tag}",
        sealer_group=f"sealer-{tag}",
        archiver_group=f"archiver-{tag}",
        archive_url=str(tmp_path / "archive"),
        segment_max_records=2000,
        segment_max_seconds=1.0,
        # On Apache Kafka, groups use the KIP-848 protocol; Tansu has only the classic one.
        kafka_group_protocol="consumer" if broker == "kafka" else "classic",
    )
    init_keys(s.keys)
    ensure_topics(s)
    return s


class Stage:
    """A pipeline stage (`sealtrail seal` / `sealtrail archive`) running as a real process."""

    def __init__(
        self, settings: Settings, command: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.command = command
        self.log = log
        env = {**os.environ, **settings.to_env(), **(env or {})}
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sealtrail.cli.main", command],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env,
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: the stage flushes and exits 0."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def stages(settings: Settings, tmp_path: Path) -> Iterator[list[Stage]]:
    """Start stages with ``stages.append(Stage(...))``; all are killed at the end."""
    started: list[Stage] = []
    yield started
    for stage in started:
        if stage.alive():
            stage.kill()


def with_settings(settings: Settings, **changes: object) -> Settings:
    return dataclasses.replace(settings, **changes)
