"""Running the sealtrail command as a user does: a subprocess of the installed command,
with no SEALTRAIL_* settings inherited from the environment the tests run in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_BIN = Path(sys.executable).with_name("sealtrail")
COMMAND = [str(_BIN)] if _BIN.exists() else [sys.executable, "-m", "sealtrail.cli.main"]


def sealtrail(cwd: Path, *args: str | Path, env: dict[str, str] | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the sealtrail command in ``cwd``: no SEALTRAIL_* settings inherited but ``env``,
    the home in ``cwd/.sealtrail``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    base["SEALTRAIL_HOME"] = str(cwd / ".sealtrail")
    proc = subprocess.run([*COMMAND, *map(str, args)], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def sealtrail_bare(cwd: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run the sealtrail command in ``cwd`` with no SEALTRAIL_* settings inherited, not even
    SEALTRAIL_HOME (test_verify_cli.py, test_witness.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    proc = subprocess.run([*COMMAND, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


SEALTRAIL = [sys.executable, "-m", "sealtrail.cli.main"]


def run(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m sealtrail.cli.main`` in ``cwd`` with no SEALTRAIL_* settings inherited;
    the caller checks the result (the stack commands: test_cli_stack.py and others)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALTRAIL_")}
    return subprocess.run([*SEALTRAIL, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
