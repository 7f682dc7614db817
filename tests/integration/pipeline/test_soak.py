"""The long exactly-once soak (`make soak`): at least 20 SIGKILLs and 10 rebalances over at
least 200,000 events, then the summary table: emitted, sealed, rejected, lost, duplicated,
forks."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.chaos import run_chaos

from sealtrail.config import Settings


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_soak_kills_and_rebalances_over_200k_events(settings: Settings, tmp_path: Path) -> None:
    """200,000 events emitted in waves while sealer processes are killed (>= 20), join and
    leave (>= 10): nothing lost, duplicated or forked, and every chain verifies."""
    result = run_chaos(settings, tmp_path, seed=2026, events=200_000, wave=4_000, faults=36,
                       min_kills=22, min_rebalances=12, interval=5.0, title="soak")
    assert result.emitted >= 200_000
    assert not result.problems, result.problems
    assert result.lost == result.duplicated == result.forks == 0
