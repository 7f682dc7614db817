"""Pipeline stages as real processes, and per-test variations of the shared settings."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers.pipeline_checks import finish_producer, run_producer
from sealtrail.config import Settings

#: Run a test once on each broker: ``@on_both_brokers`` (the ``settings`` fixture follows).
on_both_brokers = pytest.mark.parametrize("broker", ["tansu", "kafka"])


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


def with_settings(settings: Settings, **changes: object) -> Settings:
    """A copy of ``settings`` with ``changes`` applied."""
    return dataclasses.replace(settings, **changes)


def run_pipeline(settings: Settings, stages: list[Any], tmp_path: Path, count: int) -> None:
    """Seal ``count`` demo events onto the sealed topic (sealer as a real process)."""
    sealer = Stage(settings, "seal", tmp_path / "seal.log")
    stages.append(sealer)
    finish_producer(run_producer(settings, "billing", count))


# -- what a sealer's log says about its partitions ------------------------------------------

_TOOK = r"partition (\d+): (?:new chain|chain \S+ resumes)"
_RELEASED = r"partition (\d+): released"


def took(stage: Stage, since: int = 0) -> set[int]:
    """Partitions the sealer ``stage`` was assigned and recovered (after character ``since``
    of its log), whether or not there was anything left to seal in them."""
    return {int(p) for p in re.findall(_TOOK, stage.output()[since:])}


def released(stage: Stage, since: int = 0) -> set[int]:
    """Partitions the sealer ``stage`` let go of (after character ``since`` of its log)."""
    return {int(p) for p in re.findall(_RELEASED, stage.output()[since:])}


def writing(stage: Stage) -> set[int]:
    """Partitions the sealer ``stage`` has written to as their owner (its first write to
    each checked), according to its log."""
    return {int(p) for p in re.findall(r"partition (\d+): chain \S+ continues at seq",
                                       stage.output())}


def holding(stage: Stage) -> set[int]:
    """The partitions the sealer ``stage`` holds now: taken and not released since."""
    held: set[int] = set()
    for taken, gone in re.findall(f"{_TOOK}|{_RELEASED}", stage.output()):
        if taken:
            held.add(int(taken))
        else:
            held.discard(int(gone))
    return held
