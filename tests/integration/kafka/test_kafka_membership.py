"""Static membership on Apache Kafka: a sealer killed with SIGKILL and restarted with the same
``kafka_group_instance_id`` gets its own partitions back (the other sealer keeps its own and
takes none of them), its predecessor's transactions are fenced through the per-partition
transactional ids, and every event is sealed exactly once. With the KIP-848 protocol the
restarted member first finds its instance id still held by the dead one
(UNRELEASED_INSTANCE_ID, fatal in librdkafka) and joins again until it is released;
when the dead member's session ends, its partitions go to whoever is in the group at that
moment, so the test asserts only that the restarted member seals again and nothing is lost.
No timing is asserted: `make bench` (bench_recovery) measures how fast."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from helpers.chaos import account
from helpers.pipeline_checks import (
    archived_count,
    finish_producer,
    run_producer,
    store_of,
    wait_until,
)
from helpers.stages import Stage, took

from sealtrail.config import Settings


@pytest.mark.parametrize("broker", ["kafka"])
@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_a_restarted_static_member_gets_its_own_partitions_back(
    settings: Settings, tmp_path: Path, protocol: str
) -> None:
    """SIGKILL sealer "a" mid-stream and restart it as "a": it takes back exactly the
    partitions it had, "b" never takes one of them, and the archive accounts for every
    event once."""
    s = dataclasses.replace(settings, kafka_group_protocol=protocol, partitions=3)
    stages: list[Stage] = []

    def sealer(instance: str, n: int) -> Stage:
        stage = Stage(s, "seal", tmp_path / f"seal-{instance}-{n}.log",
                      env={"SEALTRAIL_KAFKA_GROUP_INSTANCE_ID": instance})
        stages.append(stage)
        return stage

    try:
        stages.append(Stage(s, "archive", tmp_path / "archive.log"))
        a, b = sealer("a", 0), sealer("b", 0)
        wait_until(lambda: bool(took(a)) and bool(took(b))
                   and took(a) | took(b) == {0, 1, 2}, 120,
                   "the two sealers to share the partitions", alive=a.alive)
        theirs = took(b)
        mine = took(a) - theirs  # "a" came first: "b" joined and took some of its partitions
        producer = run_producer(s, "billing", 9_000, seed=5, rate=1_500)
        wait_until(lambda: "continues at seq" in a.output(), 60, "a sealing", alive=a.alive)
        a.kill()
        again = sealer("a", 1)
        if protocol == "classic":
            wait_until(lambda: took(again) == mine, 120,
                       "the restarted member to take its partitions back", alive=again.alive)
        else:  # KIP-848: when the dead member's session ends, whoever is in the group then
            # gets its partitions (the restarted one, "b", or both): no assertion on which
            wait_until(lambda: bool(took(again)) and took(again) | took(b) >= {0, 1, 2}, 120,
                       "the restarted member to take partitions again", alive=again.alive)
        emitted = finish_producer(producer)["emitted"]
        store = store_of(s)
        wait_until(lambda: archived_count(store) >= emitted, 180, "archive",
                   alive=lambda: again.alive() and b.alive())
        if protocol == "classic":
            assert took(b) == theirs, "a partition of the killed member moved to the other one"
        if protocol == "consumer":  # restarted well within the dead member's session
            assert "instance ID is still used" in again.output()
            assert "joining the group again" in again.output()
        for stage in stages:
            if stage.alive():
                assert stage.stop(60) == 0, stage.output()
        result = account(s, emitted)
        print()
        print(result.table(f"static member restarted ({protocol} protocol)"))
        assert not result.problems, result.problems
        assert result.lost == result.duplicated == result.forks == 0
        assert result.chains == 3
    finally:
        for stage in stages:
            if stage.alive():
                stage.kill()
