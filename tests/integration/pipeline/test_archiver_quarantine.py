"""The archiver process, on the real embedded stack, refuses to write after a chain whose
tail was removed while it was down: it logs it loudly, exports the failure as metrics,
archives the other chains, and commits no offset (a restart reads the records again)."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

from helpers.pipeline_checks import (
    archived_count,
    finish_producer,
    run_producer,
    store_of,
    wait_until,
)
from helpers.stages import Stage, with_settings

from sealtrail.config import Settings
from sealtrail.core import layout
from sealtrail.core.checkpoint import SignedCheckpoint
from sealtrail.verify import verify_archive


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} is not exported")


def test_a_removed_tail_quarantines_its_chain(settings: Settings, stages: list[Stage],
                                              tmp_path: Path) -> None:
    stages.append(Stage(settings, "seal", tmp_path / "seal.log"))
    archiver = Stage(settings, "archive", tmp_path / "archive1.log")
    stages.append(archiver)
    first = finish_producer(run_producer(settings, "svc", 600, seed=1))["emitted"]
    store = store_of(settings)
    wait_until(lambda: archived_count(store) >= first, 90, "the first events archived",
               alive=archiver.alive)
    assert archiver.stop() == 0, archiver.output()
    chains = layout.chain_ids(store.list(layout.CHAINS))
    victim = max(chains, key=lambda c: len(store.list(f"{layout.CHAINS}{c}/checkpoints/")))
    newest = store.list(f"{layout.CHAINS}{victim}/checkpoints/")[-1]
    cp = SignedCheckpoint.from_bytes(store.get(newest)).checkpoint
    root = Path(settings.archive)
    (root / newest).unlink()
    if cp.segment_key:
        (root / cp.segment_key).unlink()
    before = store.list(f"{layout.CHAINS}{victim}/")
    archived_before = archived_count(store)

    port = _free_port()
    restarted = Stage(with_settings(settings, metrics_port=port), "archive",
                      tmp_path / "archive2.log")
    stages.append(restarted)
    finish_producer(run_producer(settings, "svc", 600, seed=2))
    wait_until(lambda: "TAIL CHECK FAILED" in restarted.output(), 90, "the tail check",
               alive=restarted.alive)
    wait_until(lambda: archived_count(store) > archived_before, 90, "other chains archived",
               alive=restarted.alive)
    wait_until(lambda: _metric(port, "sealtrail_archiver_quarantined_chains") == 1, 30,
               "the quarantine metric")
    assert _metric(port, "sealtrail_archiver_tail_check_failures_total") >= 1
    time.sleep(2)  # a few more flushes: still nothing for the victim, no offset committed
    assert store.list(f"{layout.CHAINS}{victim}/") == before
    log = restarted.output()
    assert f"chain {victim} quarantined" in log and "offsets NOT committed" in log
    assert restarted.stop() == 0, log
    report = verify_archive(store, verify_keyring(settings))
    broken = {c.chain_id for c in report.chains if not c.ok}
    assert broken == {victim}


def verify_keyring(settings: Settings) -> object:
    from sealtrail.keys import PUBLIC_KEYRING, load_keyring

    return load_keyring(settings.keys / PUBLIC_KEYRING)
