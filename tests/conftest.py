"""Shared fixtures: a real embedded stack (Tansu broker + sealtrail registry) for the
session, and per-test settings with their own topics, groups, keys and archive; and the
markers that say what a test needs (registered in pyproject.toml, see CONTRIBUTING.md),
applied here from the fixtures each test uses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.stages import Stage

from sealtrail.config import Settings
from sealtrail.kafka.admin import ensure_topics
from sealtrail.keys import init_keys
from sealtrail.runtime import dev

#: Fixtures that start something, and the marker a test using them gets.
_FIXTURE_MARKERS = {
    "stack": "stack",
    "kafka_stack": "kafka",
    "secure_stack": "kafka",  # test_kafka_acls.py: Kafka with SASL and ACLs
    "postgres_url": "postgres",
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with what it needs, from the fixtures it uses: ``settings`` (and
    anything built on it) runs on the embedded stack, or on Apache Kafka when its
    ``broker`` parameter says so (``@on_both_brokers``)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        wanted = {marker for name, marker in _FIXTURE_MARKERS.items() if name in names}
        if "settings" in names:
            callspec = getattr(item, "callspec", None)
            broker = callspec.params.get("broker", "tansu") if callspec else "tansu"
            wanted.add("kafka" if broker == "kafka" else "stack")
        for marker in sorted(wanted - {m.name for m in item.iter_markers()}):
            item.add_marker(marker)


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


@pytest.fixture
def stages(settings: Settings, tmp_path: Path) -> Iterator[list[Stage]]:
    """Start stages with ``stages.append(Stage(...))``; all are killed at the end."""
    started: list[Stage] = []
    yield started
    for stage in started:
        if stage.alive():
            stage.kill()
