"""Replay from the archive to a JSON-lines file, verified while read.

* ``replay.hash_eps_1``: one process, hash-chain checking (entry hashes, links, raw-offset
  completeness, Merkle roots, checkpoint signatures), events written per second (wall).
* ``replay.hash_eps_per_cpu_s``: the same run, events per CPU-second of this process (what
  one uncontended core does; the machine is shared, so wall figures vary).
* ``replay.hash_eps_all``: the same with segments checked on every core (``workers``).
* ``replay.sig_eps_1`` / ``replay.sig_eps_all``: full checking, every entry's Ed25519
  signature too, on one core and on every core.
* ``replay.python_hash_eps_1`` and ``replay.native_vs_python``: the one-process hash run
  again with the native segment reader switched off (sealtrail.archive.fast_segments), and the
  ratio of the two (the Python path is what runs without a C compiler).
* ``verify.hash_eps`` / ``verify.sig_eps``: ``verify_archive`` of the same archive without
  and with entry signatures (one process).
* ``verify.batch_sig_eps`` / ``verify.batch_vs_entry``: ``verify_archive`` with signatures of
  an archive of the same events sealed in batches of 250 (record format 2, one batch seal
  per batch, as the sealer writes them), and its ratio to ``verify.sig_eps``.

The archive (``SEALTRAIL_BENCH_REPLAY_EVENTS``, default 100000 events in 2 chains of
segments of 5000) is built with tests/helpers/archive_builder.py, without Kafka.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _build(base: Path, events: int, batch: int | None = None) -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from helpers.archive_builder import build_archive

    per_segment = 5000
    segments = max(events // (2 * per_segment), 1)
    built = build_archive(base, chains=2, segments=segments, records=per_segment,
                          rejections=(), batch=batch)
    built.records.clear()  # a real replay process does not hold the archive in memory
    return built


def _one(built: Any, out: Path, *, signatures: bool, workers: int) -> tuple[float, float, int]:
    from sealtrail.replay import ArchiveSource, Query, replay_archive

    source = ArchiveSource(built.store, built.keyring, check_signatures=signatures)
    if out.exists():
        out.unlink()
    cpu, wall = time.process_time(), time.perf_counter()
    result = replay_archive(source, Query(), f"file:{out}", workers=workers)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert result.ok, result.breaks
    return wall, cpu, result.written


def _python_path(built: Any, out: Path, native_eps: Any) -> dict[str, object]:
    from sealtrail.archive import fast_segments

    saved, fast_segments.native = fast_segments.native, None
    try:
        wall, _, n = _one(built, out, signatures=False, workers=1)
    finally:
        fast_segments.native = saved
    if saved is None:
        return {"replay.native": "not built"}
    return {"replay.python_hash_eps_1": round(n / wall),
            "replay.native_vs_python": round(native_eps / (n / wall), 1)}


def _verify_eps(built: Any, *, signatures: bool) -> float:
    """Entries per second of ``verify_archive`` of ``built``."""
    from sealtrail.verify import verify_archive

    started = time.perf_counter()
    report = verify_archive(built.store, built.keyring, check_signatures=signatures)
    assert report.ok, report.to_json()
    return sum(c.entries for c in report.chains) / (time.perf_counter() - started)


def run() -> dict[str, object]:
    events = int(os.environ.get("SEALTRAIL_BENCH_REPLAY_EVENTS", "100000"))
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="sealtrail-bench-replay-") as tmp:
        base = Path(tmp)
        started = time.perf_counter()
        built = _build(base, events)
        figures: dict[str, object] = {"replay.build_s": round(time.perf_counter() - started, 1)}
        out = base / "out.jsonl"
        wall, cpu, n = _one(built, out, signatures=False, workers=1)
        figures.update({"replay.events": n, "replay.cores": cores,
                        "replay.hash_eps_1": round(n / wall),
                        "replay.hash_eps_per_cpu_s": round(n / cpu)})
        wall, _, n = _one(built, out, signatures=False, workers=cores)
        figures["replay.hash_eps_all"] = round(n / wall)
        wall, cpu, n = _one(built, out, signatures=True, workers=1)
        figures["replay.sig_eps_1"] = round(n / wall)
        figures["replay.sig_eps_per_cpu_s"] = round(n / cpu)
        wall, _, n = _one(built, out, signatures=True, workers=cores)
        figures["replay.sig_eps_all"] = round(n / wall)
        figures["replay.target_hash_eps"] = 100_000
        figures.update(_python_path(built, out, figures["replay.hash_eps_1"]))
        figures["verify.hash_eps"] = round(_verify_eps(built, signatures=False))
        sig_eps = _verify_eps(built, signatures=True)
        figures["verify.sig_eps"] = round(sig_eps)
        batch_eps = _verify_eps(_build(base / "batched", events, batch=250), signatures=True)
        figures["verify.batch_sig_eps"] = round(batch_eps)
        figures["verify.batch_vs_entry"] = round(batch_eps / sig_eps, 1)
    return figures


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value}")
