"""A verify run as Prometheus metrics, in the text format node_exporter's textfile
collector reads (``sealtrail verify --metrics-file``): verify runs from cron or a job, so
its result is a file the next scrape picks up, not a server."""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from sealtrail.verify import ArchiveReport

__all__ = ["write_verify_metrics"]


def write_verify_metrics(path: Path, report: ArchiveReport, archive: str) -> None:
    """Write ``report`` to ``path`` atomically (a scrape never sees half a file)."""
    registry = CollectorRegistry()
    labels = ["archive"]
    Gauge("sealtrail_verify_last_run_timestamp_seconds", "When verify last ran.", labels,
          registry=registry).labels(archive).set(time.time())
    Gauge("sealtrail_verify_ok", "1 when the last verify passed, else 0.", labels,
          registry=registry).labels(archive).set(1 if report.ok else 0)
    Gauge("sealtrail_verify_chains", "Chains checked by the last verify.", labels,
          registry=registry).labels(archive).set(len(report.chains))
    Gauge("sealtrail_verify_broken_chains", "Chains whose evidence broke in the last verify.",
          labels, registry=registry).labels(archive).set(sum(not c.ok for c in report.chains))
    Gauge("sealtrail_verify_entries", "Entries that checked out in the last verify.", labels,
          registry=registry).labels(archive).set(sum(c.entries for c in report.chains))
    failures = Gauge("sealtrail_verify_failures", "Findings of the last verify, by kind.",
                     ["archive", "kind"], registry=registry)
    kinds = Counter(f.kind for c in report.chains for f in c.findings)
    kinds.update(f.kind for f in report.findings)
    for kind, n in kinds.items():
        failures.labels(archive, kind).set(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".sealtrail-verify-")
    os.close(fd)
    write_to_textfile(tmp, registry)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
