"""Fatal Kafka errors never stop a stage (G10): which errors are fatal, and a real
sealer paused with SIGSTOP past its session timeout, resumed with SIGCONT, that keeps
running, rejoins the group and seals again, with every record sealed exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from helpers.chaos import Chaos, account, pause, resume
from helpers.pipeline_checks import wait_until
from helpers.stages import Stage, holding, released, took

from sealtrail.config import Settings
from sealtrail.runtime.kafka_faults import Retakes, is_fatal


def test_which_errors_are_fatal() -> None:
    """librdkafka's fatal flag, and the fencing codes however they are flagged; retriable
    and abortable errors are not."""
    assert is_fatal(KafkaException(KafkaError(KafkaError._FENCED)))
    assert is_fatal(KafkaException(KafkaError(KafkaError.PRODUCER_FENCED)))
    assert is_fatal(KafkaError(KafkaError.INVALID_PRODUCER_EPOCH))
    assert is_fatal(KafkaError(KafkaError.UNKNOWN_PRODUCER_ID, fatal=True))
    assert is_fatal(KafkaError(KafkaError.FENCED_INSTANCE_ID))
    assert not is_fatal(KafkaException(KafkaError(KafkaError._TIMED_OUT, retriable=True)))
    assert not is_fatal(KafkaError(KafkaError.REBALANCE_IN_PROGRESS))
    assert not is_fatal(KafkaException("no KafkaError inside"))
    assert not is_fatal(ValueError("x")) and not is_fatal(None)


def test_retakes_wait_a_session() -> None:
    now = [100.0]
    retakes = Retakes(6.0, clock=lambda: now[0])
    retakes.mark(2)
    assert retakes.pending(2) and not retakes.due(2) and retakes.partitions() == [2]
    now[0] += 6.0
    assert retakes.due(2)
    retakes.clear(2)
    assert not retakes.pending(2) and not retakes.due(2)


# On Apache Kafka: Tansu's group coordinator keeps a leader that has left (JoinGroup keeps
# naming it, SyncGroup answers REBALANCE_IN_PROGRESS for ever), so a sealer that rejoined
# while another held every partition can wait for ever once that one stops
# (docs/operations.md, "Fatal Kafka errors").
@pytest.mark.parametrize("broker", ["kafka"])
def test_a_sealer_paused_past_its_session_rejoins_and_seals_again(
    settings: Settings, tmp_path: Path
) -> None:
    """SIGSTOP a sealer in the middle of its transactions until another sealer has taken
    every partition (its producers are fenced by the new owner's init_transactions), then
    SIGCONT: it does not exit; it drops what is unusable, rejoins the group, and when the
    other sealer is gone it takes the partitions again and seals the rest. Nothing is lost,
    duplicated or forked."""
    chaos = Chaos(settings, tmp_path, seed=13)
    everything = set(range(settings.partitions))
    try:
        chaos.start_archiver()
        chaos.emit_wave(12_000)
        chaos.reap_producers(wait=True)
        zombie = chaos.start_sealer()
        wait_until(lambda: took(zombie) == everything, 60, "the first sealer's partitions",
                   alive=zombie.alive)
        time.sleep(0.5)  # sealing the backlog: mostly inside a transaction
        pause(zombie)
        heir = chaos.start_sealer()
        wait_until(lambda: took(heir) == everything, 150,
                   "the second sealer to take every partition over", alive=heir.alive)
        chaos.emit_wave(2_000)
        time.sleep(2)
        resumed = len(zombie.output())
        resume(zombie)
        time.sleep(settings.session_timeout_ms / 1000 * 3)
        assert zombie.alive(), zombie.output()[-3000:]
        chaos.emit_wave(2_000)
        seen = len(zombie.output())
        heir.stop(60)
        chaos.sealers.remove(heir)
        # The resumed sealer is the group's only member again: it takes every partition
        # (some may be its own again already, if it rejoined while the heir was alive).
        wait_until(lambda: holding(zombie) == everything and took(zombie, seen), 120,
                   "the resumed sealer to take the partitions again", alive=zombie.alive)
        assert released(zombie, resumed) == everything, "it never noticed losing them"
        chaos.emit_wave(2_000)
        chaos.drain(180)
        assert zombie.alive()
        chaos.stop()
        assert "Traceback" not in zombie.output(), zombie.output()[-3000:]
        result = account(settings, chaos.emitted)
        print()
        print(result.table("sealer paused past its session (SIGSTOP/SIGCONT)"))
        assert not result.problems, result.problems
        assert result.lost == result.duplicated == result.forks == 0
    finally:
        chaos.kill_all()


def test_a_fenced_producer_is_replaced_and_the_sealer_goes_on(
    settings: Settings, tmp_path: Path
) -> None:
    """Another producer initialises the transactional.id of the sealer's partition 0 (what
    a new owner does), so the broker fences the sealer's producer: its next produce or commit
    fails with the fatal _FENCED. The sealer process drops that producer, takes the
    partition again a session later (it still owns it), and seals everything once (it
    exited 1 with an unhandled KafkaException once)."""
    from confluent_kafka import Producer
    from helpers.pipeline_checks import archived_count, store_of, verify

    from sealtrail.keys import PUBLIC_KEYRING

    chaos = Chaos(settings, tmp_path, seed=5)
    try:
        chaos.start_archiver()
        sealer = chaos.start_sealer()
        wait_until(lambda: took(sealer) == set(range(settings.partitions)), 60,
                   "the sealer's partitions", alive=sealer.alive)
        chaos.emit_wave(3_000)
        chaos.reap_producers(wait=True)
        usurper = Producer({"bootstrap.servers": settings.bootstrap,
                            "transactional.id": f"sealtrail-sealer.{settings.raw_topic}.0"})
        usurper.init_transactions(30)
        chaos.emit_wave(3_000)
        # The fence surfaces as a fatal _FENCED, or first as _STATE with an abort that
        # never completes: either way the producer is dropped.
        wait_until(lambda: "dropping its producer" in sealer.output(), 60,
                   "the sealer to be fenced", alive=sealer.alive)
        wait_until(lambda: "partition 0: chain" in sealer.output().split(
            "dropping its producer", 1)[1], 60, "partition 0 taken again", alive=sealer.alive)
        chaos.emit_wave(3_000)
        chaos.drain(180)
        assert sealer.alive()
        chaos.stop()
        assert "Traceback" not in sealer.output()
        result = account(settings, chaos.emitted)
        assert not result.problems, result.problems
        assert result.lost == result.duplicated == result.forks == 0
        store = store_of(settings)
        assert archived_count(store) == chaos.emitted
        report = verify(settings)
        assert report.ok, [str(f) for c in report.chains for f in c.findings]
        assert (settings.keys / PUBLIC_KEYRING).exists()
    finally:
        chaos.kill_all()


def test_the_archiver_replaces_a_consumer_that_hit_a_fatal_error(
    settings: Settings, tmp_path: Path, caplog: object
) -> None:
    """The archiver's consumer fails fatally (a static member id fenced, as librdkafka
    reports it: the real consumer with that one error injected); the archiver makes a new
    consumer, rejoins and archives everything, instead of dying."""
    import logging
    import threading

    from confluent_kafka import Consumer
    from helpers.pipeline_checks import (
        archived_count,
        finish_producer,
        run_producer,
        store_of,
        verify,
    )

    from sealtrail.archive import open_archive
    from sealtrail.consumers.archiver import Archiver
    from sealtrail.keys import load_signer
    from sealtrail.schemas.registry_client import registry_client

    class FencedOnce(Consumer):  # type: ignore[misc]
        fired = False

        def consume(self, *args: object, **kwargs: object) -> object:
            if not FencedOnce.fired and self.assignment():
                FencedOnce.fired = True
                raise KafkaException(KafkaError(KafkaError.FENCED_INSTANCE_ID, fatal=True))
            return super().consume(*args, **kwargs)

    class Injected(Archiver):
        def _new_consumer(self) -> Consumer:
            plain = super()._new_consumer()
            plain.close()
            return FencedOnce({"bootstrap.servers": self.settings.bootstrap,
                               "group.id": self.settings.archiver_group,
                               "session.timeout.ms": self.settings.session_timeout_ms,
                               "enable.auto.commit": False, "auto.offset.reset": "earliest",
                               "isolation.level": "read_committed"})

    sealer = Stage(settings, "seal", tmp_path / "seal.log")
    archiver = Injected(settings, store=open_archive(settings),
                        signer=load_signer(settings.keys),
                        registry=registry_client(settings.registry_url))
    failures: list[BaseException] = []

    def run() -> None:
        try:
            archiver.run()
        except BaseException as exc:  # the test fails on anything escaping run()
            failures.append(exc)

    caplog.set_level(logging.WARNING)  # type: ignore[attr-defined]
    thread = threading.Thread(target=run)
    thread.start()
    try:
        emitted = finish_producer(run_producer(settings, "svc", 1500))["emitted"]
        store = store_of(settings)
        wait_until(lambda: archived_count(store) >= emitted, 120, "archive",
                   alive=lambda: thread.is_alive() and sealer.alive())
    finally:
        archiver.stop()
        thread.join(60)
        sealer.stop()
    assert not failures, failures
    assert FencedOnce.fired
    assert "joining the group again with a new consumer" in caplog.text  # type: ignore[attr-defined]
    assert archived_count(store) == emitted
    assert verify(settings).ok
