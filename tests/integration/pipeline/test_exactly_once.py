"""Exactly-once sealing under failure on the real stack: a zombie sealer (SIGSTOP while its
partitions move, then SIGCONT) gets nothing into any chain, and random SIGKILLs, joins and
leaves under load leave every chain gapless and fork-free with every raw record sealed
once; `sealtrail verify --completeness` proves it per raw partition."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.chaos import Chaos, account, inject_zombie_records, pause, resume, run_chaos
from helpers.pipeline_checks import archived_count, archived_records, store_of, wait_until
from helpers.stages import Stage, on_both_brokers, took, writing

from sealtrail.config import Settings
from sealtrail.keys import PUBLIC_KEYRING
from sealtrail.producers import AuditClient


@on_both_brokers
def test_zombie_sealer_paused_while_its_partitions_move_gets_nothing_into_any_chain(
    settings: Settings, tmp_path: Path
) -> None:
    """Pause a sealer with SIGSTOP mid-stream until the group gives its partitions to
    another sealer, resume it with SIGCONT: its late records are refused by every reader,
    each chain stays gapless and fork-free and every raw record is sealed once."""
    chaos = Chaos(settings, tmp_path, seed=7)
    everything = set(range(settings.partitions))
    try:
        chaos.start_archiver()
        chaos.emit_wave(15_000)
        chaos.reap_producers(wait=True)
        zombie = chaos.start_sealer()
        wait_until(lambda: writing(zombie) == everything, 60,
                   "the first sealer to own every partition", alive=zombie.alive)
        heir = chaos.start_sealer()
        wait_until(lambda: bool(took(heir)), 60, "the second sealer to get a partition",
                   alive=heir.alive)
        chaos.emit_wave(4_000)  # services keep emitting
        time.sleep(0.3)
        # The first sealer is sealing a backlog, so it spends most of its time inside a
        # transaction: paused now, it resumes in the middle of one.
        pause(zombie)
        wait_until(lambda: took(heir) == everything, 150,
                   "the second sealer to take every partition over", alive=heir.alive)
        time.sleep(2)
        resume(zombie)
        # Apache Kafka fences the zombie's producers (the heir initialised their
        # transactional ids): it may stop with that fatal error instead of carrying on, so
        # the drain below does not count on it.
        chaos.sealers.remove(zombie)
        # Tansu fences a zombie's produce requests sent after the new owner initialised
        # its producer, but not, e.g., requests already sent; write such records for
        # certain: validly signed, continuing the old epoch, after the new owner's. Then
        # kill the new owner, so that the next one recovers from a tail holding them.
        wait_until(lambda: "continues at seq" in heir.output(), 30, "the heir sealing")
        stale = inject_zombie_records(settings, partition=0, count=5)
        chaos.emit_wave(3_000)
        time.sleep(3)
        heir.kill()
        chaos.sealers.remove(heir)
        chaos.start_sealer()
        chaos.drain(180)
        assert zombie.alive() or re.search(r"fenced by (a )?newer", zombie.output())
        chaos.stop()
        result = account(settings, chaos.emitted)
        print()
        print(result.table("zombie sealer (SIGSTOP/SIGCONT)"))
        assert not result.problems, result.problems
        assert result.lost == result.duplicated == result.forks == 0
        assert result.chains == settings.partitions
        assert result.fenced >= 5, "the zombie records were not refused"
        archive_log = (tmp_path / "archive.log").read_text()
        assert f"epoch {stale} (stale)" in archive_log and "fenced" in archive_log
    finally:
        chaos.kill_all()


@on_both_brokers
def test_random_kills_joins_and_leaves_under_load_seal_every_record_once(
    settings: Settings, tmp_path: Path
) -> None:
    """Several sealer processes in one group, services emitting throughout, random SIGKILLs,
    joins and leaves: every chain verifies, every raw offset is sealed exactly once (accepted
    or rejected) and `sealtrail verify --completeness` says so."""
    result = run_chaos(settings, tmp_path, seed=11, events=24_000, wave=3_000, faults=5,
                       min_kills=3, min_rebalances=2)
    assert not result.problems, result.problems
    out = subprocess.run(
        [sys.executable, "-m", "sealtrail.cli.main", "verify", settings.archive, "--keys",
         str(settings.keys / PUBLIC_KEYRING), "--completeness"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("COMPLETE ") == settings.partitions
    assert "unaccounted" not in out.stdout


pytestmark = pytest.mark.timeout(600)


def test_a_resent_event_is_a_duplicate_even_after_the_sealer_restarts(
    settings: Settings, stages: list[Stage], tmp_path: Path
) -> None:
    """An event re-sent with the same event_id after the sealer was killed and replaced is
    sealed as a DUPLICATE rejection naming the original's seq, not as a second event: the dedupe
    window is rebuilt from the chain at takeover."""
    def emit(event_id: str | None = None) -> str:
        with AuditClient(service="svc", bootstrap=settings.bootstrap,
                         registry_url=settings.registry_url, topic=settings.raw_topic,
                         spool_dir=tmp_path / "spool") as client:
            return client.emit("auth.login", "login", actor_id="u-1", resource_type="session",
                               resource_id="s-1", event_id=event_id)

    first = Stage(settings, "seal", tmp_path / "seal-1.log")
    stages.append(first)
    stages.append(Stage(settings, "archive", tmp_path / "archive.log"))
    store = store_of(settings)
    original = emit()
    wait_until(lambda: archived_count(store) >= 1, 60, "the first event archived",
               alive=first.alive)
    first.kill()
    stages.append(Stage(settings, "seal", tmp_path / "seal-2.log"))
    emit(original)
    wait_until(lambda: archived_count(store) >= 2, 90, "the re-sent event archived")
    records = sorted(archived_records(store), key=lambda r: r["seq"])
    assert [r["kind"] for r in records] == ["EVENT", "REJECTION"]
    assert records[0]["event"]["event_id"] == original
    assert records[1]["rejection"]["reason"] == "DUPLICATE"
    # The detail names the original by its seq, not by the event_id (details never quote
    # values of the rejected record)
    assert f"was sealed as seq {records[0]['seq']} of chain {records[0]['chain_id']}" in \
        records[1]["rejection"]["detail"]
    assert records[1]["epoch"] == records[0]["epoch"] + 1
