"""Replay from the sealed topic written by the current sealer (record format 2, batch
seals), on the real broker: every record released once its batch seal verifies, a forged
seal breaks its whole batch, an unsealed batch is held and reported, and an interrupted
run resumes from a batch start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from helpers.chaos import sealed_framer, sealed_topic_at
from helpers.cli import sealtrail
from helpers.pipeline_checks import finish_producer, run_producer, wait_until
from helpers.stages import run_pipeline

import sealtrail.replay as replay_module
from sealtrail.config import Settings
from sealtrail.core.chain import BATCH_SEAL_SIZE, ChainHead, seal
from sealtrail.core.findings import Kind
from sealtrail.keys import load_keyring
from sealtrail.replay import KafkaSource, Query, ReplayState, replay_kafka


def events_sealed(settings: Settings) -> int:
    return sum(r["kind"] == "EVENT" for rs in sealed_topic_at(settings).values() for _, r in rs)


def visible(settings: Settings, partition: int, offset: int) -> bool:
    """Whether the sealed partition's high watermark (where a replay stops) is past
    ``offset`` (Tansu's can lag behind a produce a moment)."""
    consumer = Consumer({"bootstrap.servers": settings.bootstrap, "group.id": "watermark"})
    try:
        _low, high = consumer.get_watermark_offsets(
            TopicPartition(settings.sealed_topic, partition), timeout=10, cached=False)
        return bool(high > offset)
    finally:
        consumer.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def source(settings: Settings) -> KafkaSource:
    return KafkaSource(settings, load_keyring(settings.keys / "public.json"))


def test_batch_sealed_topic_replays_whole_and_resumes_at_a_batch_start(
        settings: Settings, stages: list[Any], tmp_path: Path) -> None:
    """A topic the sealer wrote in several batches per partition replays every event once;
    a run interrupted mid-batch saves positions just after signed entries (and the chains'
    anchors there), and the rerun completes the output with every event exactly once."""
    run_pipeline(settings, stages, tmp_path, 40)
    wait_until(lambda: events_sealed(settings) >= 40, 60, "40 events sealed", stages[0].alive)
    finish_producer(run_producer(settings, "billing", 40, seed=1))  # more batches
    wait_until(lambda: events_sealed(settings) >= 80, 60, "80 events sealed", stages[0].alive)
    stages[0].stop()
    topic = sealed_topic_at(settings)
    signatures = [len(r["signature"]) for rs in topic.values() for _, r in rs]
    assert signatures.count(0) > 0 and signatures.count(BATCH_SEAL_SIZE) >= 2, \
        "the sealer did not write batch seals"

    whole = replay_kafka(source(settings), Query(), f"file:{tmp_path / 'whole.jsonl'}")
    assert whole.ok and whole.written == 80, whole.breaks
    assert whole.unsealed == 0 and whole.anchoring == 0 and whole.notes == []

    out, state = tmp_path / "out.jsonl", tmp_path / "state.json"

    def some_written() -> bool:  # asked before each consume: stop once a batch is out
        return state.exists() and json.loads(state.read_text())["written"] > 0

    saved_batch = replay_module.KAFKA_BATCH
    replay_module.KAFKA_BATCH = 7
    try:
        first = replay_kafka(source(settings), Query(), f"file:{out}", state_path=state,
                             stop=some_written)
    finally:
        replay_module.KAFKA_BATCH = saved_batch
    assert 0 < first.written < 80
    saved = ReplayState.load(state)
    assert saved is not None and not saved.complete and saved.positions
    for name, position in saved.positions.items():
        records = topic[int(name.split("-")[1])]
        before = [r for offset, r in records if offset < position["next_offset"]]
        assert not before or before[-1]["signature"], f"{name} saved inside a batch"
        for chain_id, anchor in position["chains"].items():
            assert (anchor["seq"], anchor["entry_hash"]) == (
                before[-1]["seq"], before[-1]["entry_hash"].hex()) and \
                before[-1]["chain_id"] == chain_id
    assert any(p["chains"] for p in saved.positions.values())

    second = replay_kafka(source(settings), Query(), f"file:{out}", state_path=state)
    assert second.resumed and second.ok and second.anchoring == 0, second.breaks
    lines = read_jsonl(out)
    assert len(lines) == 80 and len({r["event"]["event_id"] for r in lines}) == 80
    assert sorted(r["entry_hash"] for r in lines) == sorted(
        r["entry_hash"] for r in read_jsonl(tmp_path / "whole.jsonl"))


def test_unsealed_batch_is_held_and_a_forged_seal_breaks_the_batch(
        settings: Settings, stages: list[Any], tmp_path: Path) -> None:
    """Unsigned records appended after a chain's last seal (what an aborted transaction a
    broker still shows looks like) are not replayed and are reported, exit 0; once a
    forged seal (a real seal's signature, reused) closes them, the batch is a SIGNATURE
    break naming it, exit 1, and none of its records is written."""
    run_pipeline(settings, stages, tmp_path, 20)
    wait_until(lambda: events_sealed(settings) >= 20, 60, "20 events sealed", stages[0].alive)
    stages[0].stop()
    partition, records = next((p, rs) for p, rs in sealed_topic_at(settings).items() if rs)
    last = records[-1][1]
    assert len(last["signature"]) == BATCH_SEAL_SIZE
    head = ChainHead(last["chain_id"], last["seq"], last["entry_hash"], last["epoch"])
    framed, producer = sealed_framer(settings), Producer({"bootstrap.servers": settings.bootstrap})
    class Mallory:  # no sealer key, only its id: entries are sealed unsigned by anyone
        key_id = last["key_id"]

        def sign(self, data: bytes) -> bytes:
            raise AssertionError("the attacker has no key")

    mallory: Any = Mallory()
    appended = []
    for i in range(4):
        event = {**last["event"], "event_id": f"forged-{i}", "action": "forged"}
        record = seal(head, {"kind": "EVENT", "event": event, "rejection": None,
                             "redaction": last["redaction"],
                             "ingested_at": last["ingested_at"] + 1 + i,
                             "source": {**last["source"],
                                        "offset": last["source"]["offset"] + 1 + i}},
                      mallory, sign=False)
        head = head.advance(record)
        appended.append(record)
    for record in appended[:3]:  # one batch each: Tansu's high watermark follows batches
        producer.produce(settings.sealed_topic, framed(record), partition=partition)
        assert producer.flush(30) == 0
    end = records[-1][0] + 4  # after the seal's transaction marker
    wait_until(lambda: visible(settings, partition, end), 30, "the records appended")
    env, keys = settings.to_env(), settings.keys / "public.json"

    out = tmp_path / "held.jsonl"
    proc = sealtrail(tmp_path, "replay", "--source", "kafka", "--to", f"file:{out}",
                     "--keys", keys, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert not [r for r in read_jsonl(out) if r["event"]["action"] == "forged"]
    first = appended[0]["seq"]
    assert f"NOT REPLAYED chain {last['chain_id']}: seq {first}..{first + 2} are unsigned" \
        in proc.stderr
    summary = json.loads(next(line for line in proc.stderr.splitlines()
                              if line.startswith("{")))
    assert summary["unsealed"] == 3 and summary["ok"]

    appended[3]["signature"] = last["signature"]  # a real seal, of another batch
    producer.produce(settings.sealed_topic, framed(appended[3]), partition=partition)
    assert producer.flush(30) == 0
    wait_until(lambda: visible(settings, partition, end + 1), 30, "the forged seal")
    result = replay_kafka(source(settings), Query(), f"file:{tmp_path / 'broken.jsonl'}",
                          continue_on_error=True)
    [problem] = result.breaks
    assert (problem.kind, problem.chain_id, problem.seq) == (Kind.SIGNATURE,
                                                            last["chain_id"], first)
    assert f"the batch seal of seq {first}..{first + 3}" in problem.message
    written = read_jsonl(tmp_path / "broken.jsonl")
    assert written and not [r for r in written if r["event"]["action"] == "forged"]
    assert result.unsealed == 0
    proc = sealtrail(tmp_path, "replay", "--source", "kafka", "--to", "-", "--keys", keys,
                     env=env)
    assert proc.returncode == 1 and f"BROKEN chain {last['chain_id']}" in proc.stderr
