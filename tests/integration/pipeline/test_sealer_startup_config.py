"""The sealer starts without librdkafka configuration warnings: each client is given only
the properties of its kind (a producer no consumer properties, and the other way round)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sealtrail.config import Settings


def test_a_sealer_start_logs_no_configuration_warning(settings: Settings,
                                                      tmp_path: Path) -> None:
    """A sealer that takes its partitions over (transactional producers, the recovery
    reader, the group consumer) logs no CONFWARN line, e.g. "session.timeout.ms is a
    consumer property and will be ignored by this producer instance"."""
    log = tmp_path / "seal.log"
    env = {**os.environ, **settings.to_env()}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sealtrail.cli.main", "seal"],
                                stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 120
        while "new chain" not in log.read_text(errors="replace"):
            assert proc.poll() is None, f"the sealer exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no partition taken over:\n{log.read_text()}"
            time.sleep(0.2)
        time.sleep(1.0)  # the warnings come as clients are created: give them a moment
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert "new chain" in output
    assert "CONFWARN" not in output, output
