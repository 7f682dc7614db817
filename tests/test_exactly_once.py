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
from chaos import Accounting, Chaos, account, pause, resume
from conftest import Stage
from pipeline_checks import wait_until

from sealtrail.config import Settings
from sealtrail.keys import PUBLIC_KEYRING


def owned(stage: Stage) -> set[int]:
    """Partitions ``stage`` holds according to its log (assigned after its last revoke)."""
    text = stage.output()
    return {int(p) for p in re.findall(r"partition (\d+): chain \S+ continues at seq", text)}


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
        chaos.emit_wave(50_000)
        chaos.reap_producers(wait=True)
        zombie = chaos.start_sealer()
        wait_until(lambda: owned(zombie) == everything, 60,
                   "the first sealer to own every partition", alive=zombie.alive)
        heir = chaos.start_sealer()
        wait_until(lambda: bool(owned(heir)), 60, "the second sealer to get a partition",
                   alive=heir.alive)
        chaos.emit_wave(6_000)  # services keep emitting
        commits = zombie.output().count("continues at seq")
        wait_until(lambda: zombie.output().count("continues at seq") > commits, 60,
                   "the first sealer to seal again after the rebalance", alive=zombie.alive)
        time.sleep(0.3)
        # The first sealer is sealing a backlog, so it spends most of its time inside a
        # transaction: paused now, it resumes in the middle of one.
        pause(zombie)
        wait_until(lambda: owned(heir) == everything, 90,
                   "the second sealer to take every partition over", alive=heir.alive)
        time.sleep(2)
        resume(zombie)
        chaos.drain(180)
        chaos.stop()
        result = account(settings, chaos.emitted)
        print()
        print(result.table("zombie sealer (SIGSTOP/SIGCONT)"))
        assert not result.problems, result.problems
        assert result.lost == result.duplicated == result.forks == 0
        assert result.chains == settings.partitions
        assert result.fenced > 0, "the paused sealer wrote nothing after resuming: no zombie"
        assert "fenced" in (tmp_path / "archive.log").read_text()
    finally:
        chaos.kill_all()


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


def run_chaos(settings: Settings, tmp_path: Path, *, seed: int, events: int, wave: int,
              faults: int, min_kills: int, min_rebalances: int, interval: float = 4.0,
              title: str = "chaos") -> Accounting:
    """Emit ``events`` in waves of ``wave`` while applying ``faults`` random faults every
    ``interval`` s (at least ``min_kills`` SIGKILLs and ``min_rebalances`` joins/leaves),
    then account for every event and print the summary table."""
    chaos = Chaos(settings, tmp_path, seed)
    try:
        chaos.start_archiver()
        for _ in range(2):
            chaos.start_sealer()
        waves = max(1, events // wave)
        done_faults = 0
        plan: list[str] = ["kill"] * min_kills + ["rebalance"] * min_rebalances
        chaos.rng.shuffle(plan)
        plan += ["any"] * max(0, faults - len(plan))
        for i in range(max(waves, len(plan))):
            if i < waves:
                chaos.emit_wave(wave)
            time.sleep(interval)
            chaos.reap_producers()
            if done_faults < len(plan):
                kind = plan[done_faults]
                if kind == "kill" and chaos.sealers:
                    chaos.kill_one()
                    if not chaos.sealers or chaos.rng.random() < 0.7:
                        chaos.start_sealer()
                        chaos.joins += 1
                elif kind == "rebalance":
                    if len(chaos.sealers) > 1 and chaos.rng.random() < 0.5:
                        chaos.leave_one()
                    else:
                        chaos.start_sealer()
                        chaos.joins += 1
                else:
                    chaos.step()
                done_faults += 1
        if not chaos.sealers:
            chaos.start_sealer()
        chaos.drain(300)
        chaos.stop()
        result = account(settings, chaos.emitted)
        print()
        print(result.table(title, kills=chaos.kills, joins=chaos.joins, leaves=chaos.leaves,
                           **{"sealer processes": chaos.started}))
        assert chaos.kills >= min_kills and chaos.joins + chaos.leaves >= min_rebalances
        return result
    finally:
        chaos.kill_all()


pytestmark = pytest.mark.timeout(600)
