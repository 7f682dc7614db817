"""Replay from the archive and from Kafka: verified while read, filtered, resumable, and
stopping with a clear report at the first break."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import fastavro
import pytest
from helpers.archive_builder import T0, build_archive, reseal, segment_bytes, write_object
from helpers.cli import sealtrail
from helpers.stages import run_pipeline

from sealtrail.archive import open_store
from sealtrail.config import Settings
from sealtrail.core.canonical import canonical_json, entry_body
from sealtrail.core.hashing import ENTRY_DOMAIN, sha256
from sealtrail.core.times import parse_time
from sealtrail.replay import (
    ArchiveSource,
    Query,
    ReplayState,
    replay_archive,
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def events_of(built: Any) -> list[dict[str, Any]]:
    return [r for chain in built.chain_ids for r in built.records[chain] if r["event"]]


def test_archive_to_jsonl_writes_every_event_with_a_recomputable_seal(tmp_path: Path) -> None:
    """Every archived event comes out once, and its entry hash recomputes from the JSON line."""
    built = build_archive(tmp_path, chains=2, segments=3, records=5)
    out = tmp_path / "out.jsonl"
    proc = sealtrail(tmp_path, "replay", "--source", "archive", "--archive", built.root,
                     "--keys", built.keyring_path, "--to", f"file:{out}")
    assert proc.returncode == 0, proc.stderr
    lines = read_jsonl(out)
    expected = events_of(built)
    assert [(r["chain_id"], r["seq"]) for r in lines] == [(r["chain_id"], r["seq"])
                                                        for r in expected]
    for line in lines:
        assert sha256(ENTRY_DOMAIN, canonical_json(entry_body(line))).hex() == line["entry_hash"]
    assert "REPLAYED: 26 records" in proc.stderr
    assert "chain of custody NOT recorded" in proc.stderr  # no stack configured: said plainly


def test_filters_select_by_ingestion_time_actor_type_and_service(tmp_path: Path) -> None:
    """--since/--until (ingested_at), --actor, --event-type and --service select exactly the
    matching events."""
    built = build_archive(tmp_path, chains=2, segments=4, records=6, rejections=())
    source = ArchiveSource(built.store, built.keyring)
    since, until = T0 + 10_000, T0 + 40_000
    cases = [
        (Query(since, until, event_type="record.read", service="billing-api"),
         lambda e: e["event_type"] == "record.read"),
        (Query(actor="user-3"), lambda e: e["actor"]["id"] == "user-3"),
        (Query(service="nobody"), lambda e: False),
    ]
    for n, (query, wanted) in enumerate(cases):
        out = tmp_path / f"f{n}.jsonl"
        result = replay_archive(source, query, f"file:{out}")
        expected = [r for r in events_of(built) if query.since is None or (
            since <= r["ingested_at"] < until) if wanted(r["event"])]
        assert result.ok and result.written == len(expected)
        assert [r["event"]["event_id"] for r in read_jsonl(out)] == [
            r["event"]["event_id"] for r in expected]
    assert 0 < len([r for r in events_of(built) if since <= r["ingested_at"] < until]) < 48


def test_archive_to_avro_round_trips_the_sealed_records(tmp_path: Path) -> None:
    """The Avro output holds the sealed records exactly as archived."""
    built = build_archive(tmp_path, chains=1, segments=2, records=4)
    out = tmp_path / "out.avro"
    result = replay_archive(ArchiveSource(built.store, built.keyring), Query(), f"file:{out}")
    assert result.ok
    with out.open("rb") as f:
        got = list(fastavro.reader(f))
    assert got == events_of(built)


def _tamper_entry(built: Any, chain: int, index: int, position: int) -> int:
    """Change one event of a segment and re-chain it (entry signature now stale); the seq."""
    records = built.read_records(chain, index)
    records[position]["event"]["action"] = "delete"
    reseal(records, position)
    write_object(built.segment_path(chain, index),
                 segment_bytes(built.chain_ids[chain], records))
    return int(records[position]["seq"])


def test_replay_stops_at_the_first_break_and_names_it(tmp_path: Path) -> None:
    """A modified segment stops the replay with exit 1, naming chain, segment and the seq
    of the entry that breaks, as verify does; nothing of the broken segment is written."""
    built = build_archive(tmp_path, chains=2, segments=3, records=4, rejections=())
    seq = _tamper_entry(built, 0, 1, 2)
    out = tmp_path / "out.jsonl"
    proc = sealtrail(tmp_path, "replay", "--archive", built.root, "--keys",
                     built.keyring_path, "--to", f"file:{out}")
    assert proc.returncode == 1
    assert seq == 6
    line = f"BROKEN chain {built.chain_ids[0]}, segment {built.segment_key(0, 1)}, seq 6: " \
           "modified"
    assert line in proc.stderr
    verified = sealtrail(tmp_path, "verify", built.root, "--keys", built.keyring_path)
    assert f"chain {built.chain_ids[0]}, segment {built.segment_key(0, 1)}, seq 6: modified" \
        in verified.stdout
    assert "STOPPED AT A BREAK" in proc.stderr
    assert [r["seq"] for r in read_jsonl(out)] == [0, 1, 2, 3]


def test_continue_on_error_lists_breaks_and_replays_the_other_chains(tmp_path: Path) -> None:
    """With --continue-on-error the broken chain stops at its break, the others are replayed
    whole; a re-signed-less forgery is caught by the entry signature."""
    built = build_archive(tmp_path, chains=2, segments=3, records=4, rejections=())
    # rewrite a segment AND its checkpoint consistently, without the signing key
    records = built.read_records(0, 2)
    records[1]["event"]["actor"]["id"] = "mallory"
    reseal(records, 1)
    write_object(built.segment_path(0, 2), segment_bytes(built.chain_ids[0], records))
    source = ArchiveSource(built.store, built.keyring)
    result = replay_archive(source, Query(), f"file:{tmp_path / 'o.jsonl'}",
                            continue_on_error=True)
    assert not result.ok and len(result.breaks) == 1
    assert result.breaks[0].chain_id == built.chain_ids[0]
    assert result.written == 8 + 12


@pytest.mark.parametrize("suffix", [".jsonl", ".avro"])
def test_replay_resumes_after_an_interruption_without_duplicates(
        tmp_path: Path, suffix: str) -> None:
    """An interrupted replay leaves a state file; rerunning completes the output with every
    event exactly once, whatever the interrupted run wrote after its last durable point."""
    built = build_archive(tmp_path, chains=2, segments=4, records=5, rejections=())
    source = ArchiveSource(built.store, built.keyring)
    out, state = tmp_path / f"out{suffix}", tmp_path / "state.json"
    calls = {"n": 0}

    def stop_after_three() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    import sealtrail.replay as replay_module

    saved = replay_module.SAVE_EVERY_S
    replay_module.SAVE_EVERY_S = 0.0
    try:
        first = replay_archive(source, Query(), f"file:{out}", state_path=state,
                               stop=stop_after_three)
        with out.open("ab") as f:  # a half-written line after the last durable point
            f.write(b'{"partial": ')
        saved_state = ReplayState.load(state)
        assert saved_state is not None and not saved_state.complete
        second = replay_archive(source, Query(), f"file:{out}", state_path=state)
    finally:
        replay_module.SAVE_EVERY_S = saved
    assert 0 < first.written < 40 and second.resumed and second.ok
    if suffix == ".avro":
        with out.open("rb") as f:
            lines = list(fastavro.reader(f))
    else:
        lines = read_jsonl(out)
    assert len(lines) == 40
    assert len({(r["chain_id"], r["seq"]) for r in lines}) == 40
    loaded = ReplayState.load(state)
    assert loaded is not None and loaded.complete


def test_workers_give_the_same_output_as_one_process(tmp_path: Path) -> None:
    """Checking segments on two cores writes the same bytes as one process."""
    built = build_archive(tmp_path, chains=2, segments=3, records=6)
    source = ArchiveSource(built.store, built.keyring)
    one, two = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    assert replay_archive(source, Query(), f"file:{one}").ok
    assert replay_archive(source, Query(), f"file:{two}", workers=2).ok
    assert one.read_bytes() == two.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".sealtrail-replay-")
                  ) == []  # the workers' files are gone


def test_workers_stop_at_the_same_break_and_leave_no_files(tmp_path: Path) -> None:
    """A break in the middle: two cores write what one process writes, then stop."""
    from helpers.archive_builder import write_object

    built = build_archive(tmp_path, chains=1, segments=5, records=6)
    chain = built.chain_ids[0]
    key = f"chains/{chain}/segments/0000000002.avro"
    write_object(built.root / key, built.store.get(key)[:-1] + b"\x00")
    source = ArchiveSource(built.store, built.keyring)
    outputs = []
    for workers in (1, 2):
        out = tmp_path / f"{workers}.jsonl"
        result = replay_archive(source, Query(), f"file:{out}", workers=workers)
        assert [b.kind for b in result.breaks] == ["modified"]
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and len(outputs[0].splitlines()) == 2 * 6 - 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".sealtrail-replay-")]


def test_heartbeat_checkpoints_are_followed(tmp_path: Path) -> None:
    """A chain with heartbeat checkpoints (no segment) replays whole."""
    from helpers.archive_builder import Clock, signer

    from sealtrail.consumers.archiver import SegmentWriter

    built = build_archive(tmp_path, chains=1, segments=2, records=3, rejections=())
    writer = SegmentWriter(open_store(built.root), signer("sealer-1"), retention_days=1,
                           clock=Clock(T0 + 10**9))
    if not hasattr(writer, "heartbeat"):
        pytest.skip("this archiver has no heartbeat checkpoints")
    writer.heartbeat(0.0, built.chain_ids)  # the first call loads the chain
    time.sleep(0.01)
    writer.heartbeat(0.0, built.chain_ids)
    assert built.checkpoint_path(0, 2).exists()
    result = replay_archive(ArchiveSource(built.store, built.keyring), Query(),
                            f"file:{tmp_path / 'o.jsonl'}")
    assert result.ok and result.written == 6, result.breaks


def test_parse_time_accepts_dates_iso_times_and_microseconds() -> None:
    """Times are read as UTC dates, ISO-8601 times or integer microseconds."""
    assert parse_time("2024-01-01") == T0
    assert parse_time("2024-01-01T00:00:01Z") == T0 + 1_000_000
    assert parse_time("2024-01-01T01:00:00+01:00") == T0
    assert parse_time(str(T0)) == T0


# -- Kafka -------------------------------------------------------------------------------


def sealed_count(settings: Settings) -> int:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "count"})
    try:
        meta = consumer.list_topics(settings.sealed_topic, timeout=10)
        total = 0
        for p in meta.topics[settings.sealed_topic].partitions:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(settings.sealed_topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def test_kafka_replay_to_file_and_topic_keeps_event_ids(
        settings: Settings, stages: list[Any], tmp_path: Path) -> None:
    """From the sealed topic by time: every sealed event is replayed verified, to a file and
    to a topic keyed by event_id; the replay is recorded as an audit.access event."""
    from confluent_kafka import Consumer
    from helpers.pipeline_checks import wait_until

    run_pipeline(settings, stages, tmp_path, 300)
    # 300 events; transaction markers also take offsets, so wait on the replay itself
    env = settings.to_env()
    out = tmp_path / "k.jsonl"

    def replayed_all() -> bool:
        if out.exists():
            out.unlink()
        state = Path(str(out) + ".replay-state.json")
        if state.exists():
            state.unlink()
        proc = sealtrail(tmp_path, "replay", "--source", "kafka", "--to", f"file:{out}",
                         "--keys", settings.keys / "public.json", env=env)
        assert proc.returncode == 0, proc.stderr
        return len(billing(read_jsonl(out))) >= 300

    def billing(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in lines if r["event"]["origin"]["service"] == "billing"]

    wait_until(replayed_all, 60, "300 events sealed and replayed", stages[0].alive)
    lines = read_jsonl(out)
    assert len({r["event"]["event_id"] for r in billing(lines)}) == 300
    # the replays' own chain-of-custody events were sealed too (service sealtrail-tools)
    assert {r["event"]["origin"]["service"] for r in lines} <= {"billing", "sealtrail-tools"}

    # by time: nothing sealed after "now" -> nothing replayed
    later = str(time.time_ns() // 1000 + 3_600_000_000)
    proc = sealtrail(tmp_path, "replay", "--source", "kafka", "--since", later, "--to", "-",
                     "--keys", settings.keys / "public.json", env=env)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr

    topic = f"replayed-{settings.raw_topic}"
    proc = sealtrail(tmp_path, "replay", "--source", "kafka", "--to", f"topic:{topic}",
                     "--service", "billing", "--keys", settings.keys / "public.json",
                     "--operator", "alice", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "chain of custody: replay by alice recorded" in proc.stderr
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "check-replay",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    keys: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while len(keys) < 300 and time.monotonic() < deadline:
        for msg in consumer.consume(500, 1.0):
            if msg.error() is None:
                value = json.loads(msg.value())
                assert msg.key().decode() == value["event"]["event_id"]
                keys[msg.key().decode()] = keys.get(msg.key().decode(), 0) + 1
    consumer.close()
    assert len(keys) == 300 and set(keys.values()) == {1}


def test_kafka_replay_detects_a_forged_record(
        settings: Settings, stages: list[Any], tmp_path: Path) -> None:
    """A record on the sealed topic whose signature does not check out stops the replay."""
    from confluent_kafka import Producer
    from helpers.pipeline_checks import wait_until

    from sealtrail import schemas
    from sealtrail.core.avro import AvroCodec, frame
    from sealtrail.schemas.cache import WriterSchemas
    from sealtrail.schemas.registry_client import registry_client

    run_pipeline(settings, stages, tmp_path, 20)
    wait_until(lambda: sealed_count(settings) >= 20, 60, "20 sealed records",
               stages[0].alive)
    stages[0].stop()
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "steal",
                         "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(settings.sealed_topic, p, OFFSET_BEGINNING)
                     for p in range(settings.partitions)])
    writers = WriterSchemas(registry_client(settings.registry_url))
    newest: dict[int, tuple[dict[str, Any], bytes]] = {}
    seen = 0
    deadline = time.monotonic() + 30
    while seen < 20 and time.monotonic() < deadline:
        for msg in consumer.consume(100, 1.0):
            if msg.error() is None:
                seen += 1
                newest[msg.partition()] = (writers.decode(msg.value())[0], msg.value()[1:5])
    consumer.close()
    assert seen >= 20
    partition, (record, schema_id) = next(iter(newest.items()))
    forged = dict(record)  # claims to be the next entry, keeps the old seal
    forged["seq"] = record["seq"] + 1
    forged["prev_hash"] = record["entry_hash"]
    forged["source"] = {**record["source"], "offset": record["source"]["offset"] + 1}
    forged["event"] = {**record["event"], "action": "forged"}
    codec = AvroCodec(schemas.sealed_record())
    producer = Producer({"bootstrap.servers": settings.bootstrap})
    producer.produce(settings.sealed_topic, frame(int.from_bytes(schema_id, "big"),
                                                  codec.encode(forged)),
                     partition=partition)
    producer.flush(10)
    proc = sealtrail(tmp_path, "replay", "--source", "kafka", "--to", "-", "--keys",
                     settings.keys / "public.json", env=settings.to_env())
    assert proc.returncode == 1, proc.stderr
    assert f"BROKEN chain {record['chain_id']}" in proc.stderr and "hash" in proc.stderr


def test_archive_replay_reads_only_the_segments_covering_the_range(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments checkpointed before --since are not read; reading stops after --until; the
    first segment read is anchored at its predecessor's signed head."""
    import sealtrail.replay as replay_module

    monkeypatch.setattr(replay_module, "CLOCK_SKEW_US", 0)
    built = build_archive(tmp_path, chains=1, segments=5, records=4, rejections=())
    records = built.records[built.chain_ids[0]]
    since, until = records[8]["ingested_at"], records[12]["ingested_at"]
    result = replay_archive(ArchiveSource(built.store, built.keyring), Query(since, until),
                            f"file:{tmp_path / 'o.jsonl'}")
    assert result.ok and result.written == 4
    assert result.checked == 8  # segments 2 and 3 of 0..4
    assert [r["seq"] for r in read_jsonl(tmp_path / "o.jsonl")] == [8, 9, 10, 11]
