"""The CLI around the embedded stack, as a user runs it: `dev up/down` and `demo`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from helpers.cli import run


@pytest.mark.stack
def test_dev_up_prints_where_it_listens_and_dev_down_stops_it(tmp_path: Path) -> None:
    """`dev up --json` starts a reachable broker and registry and says where; `dev down`
    stops both processes."""
    up = run(["dev", "up", "--json"], tmp_path)
    assert up.returncode == 0, up.stderr
    stack = json.loads(up.stdout)
    try:
        host, port = stack["bootstrap"].split(":")
        with socket.create_connection((host, int(port)), timeout=5):
            pass
        with urllib.request.urlopen(stack["registry"] + "/subjects", timeout=5) as resp:
            assert json.loads(resp.read()) == []
        status = run(["dev", "status", "--json"], tmp_path)
        assert status.returncode == 0 and json.loads(status.stdout)["bootstrap"] == \
            stack["bootstrap"]
        again = run(["dev", "up"], tmp_path)
        assert again.returncode == 2 and "already running" in again.stderr
    finally:
        down = run(["dev", "down"], tmp_path)
    assert down.returncode == 0
    for pid in (stack["broker_pid"], stack["registry_pid"]):
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text().lower()
    assert run(["dev", "status"], tmp_path).returncode == 2


@pytest.mark.stack
def test_demo_twice_keeps_old_and_new_chains_apart_and_verifies(tmp_path: Path) -> None:
    """Two demo runs on a fresh directory each exit 0; the second starts new chains, and
    verify passes over the chains of both runs; the keys are private (0600)."""
    first = run(["demo", "--events", "900"], tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "verify             PASSED: 3 chains in the archive (0 from earlier runs)" in \
        first.stdout
    assert "rejected           5 (INVALID: 2, UNDECODABLE: 2, UNKNOWN_SCHEMA: 1)" in first.stdout
    second = run(["demo", "--events", "900"], tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "PASSED: 6 chains in the archive (3 from earlier runs)" in second.stdout
    keys = tmp_path / ".sealtrail" / "keys"
    assert (keys / "signing.key").stat().st_mode & 0o777 == 0o600
    assert (keys / "hmac.key").stat().st_mode & 0o777 == 0o600
    verify = run(["verify", ".sealtrail/archive", "--keys", ".sealtrail/keys/public.json"],
                 tmp_path)
    assert verify.returncode == 0, verify.stdout
    assert "VERIFIED: 6 chains" in verify.stdout
    assert not (tmp_path / ".sealtrail" / "dev" / "stack.json").exists()  # demo cleaned up


def _stack_json(home: Path, pid: int, processes: dict[str, object] | None) -> None:
    doc: dict[str, object] = {"bootstrap": "127.0.0.1:1", "registry": "http://127.0.0.1:1",
                              "broker_pid": pid, "registry_pid": pid, "home": str(home)}
    if processes is not None:
        doc["processes"] = processes
    (home / "dev").mkdir(parents=True, exist_ok=True)
    (home / "dev" / "stack.json").write_text(json.dumps(doc))


def test_dev_down_signals_only_processes_it_can_prove_it_started(tmp_path: Path) -> None:
    """stack.json naming a live process that the stack did not start (as after a reboot or
    PID reuse): with no identity recorded, with another start time, or with another command
    line, `dev down` leaves it running and says why; `dev status` does not call it running
    either."""
    from sealtrail.runtime.processes import ProcessIdentity

    bystander = subprocess.Popen(["sleep", "60"])
    try:
        # Popen returns once exec has begun; the new command line appears a moment later.
        deadline = time.monotonic() + 10
        while (real := ProcessIdentity.of(bystander.pid)) is None or \
                real.cmdline != ("sleep", "60"):
            assert time.monotonic() < deadline, f"sleep's identity never read: {real}"
            time.sleep(0.01)
        home = tmp_path / ".sealtrail"
        reused = {**real.to_json(), "start_ticks": real.start_ticks - 1}
        other_command = {**real.to_json(), "cmdline": ["tansu", "broker"]}
        for processes in (None, {"broker": reused, "registry": reused},
                          {"broker": other_command, "registry": other_command}):
            _stack_json(home, bystander.pid, processes)
            assert run(["dev", "status"], tmp_path).returncode == 2  # not running
            down = run(["dev", "down"], tmp_path)
            assert down.returncode == 0, down.stderr
            assert f"not signalling process {bystander.pid}" in down.stderr
            assert bystander.poll() is None, "dev down killed a process it did not start"
            assert not (home / "dev" / "stack.json").exists()
        # Recorded as it is, the process is signalled: proof that the check is what spared it.
        _stack_json(home, bystander.pid, {"broker": real.to_json(), "registry": real.to_json()})
        assert run(["dev", "down"], tmp_path).returncode == 0
        assert bystander.wait(10) is not None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_process_without_a_command_line_has_no_identity() -> None:
    """A zombie (as a process in the middle of its exec) shows no command line: nothing can
    be proven about it, so it has no identity and is never signalled."""
    from sealtrail.runtime.processes import ProcessIdentity

    child = subprocess.Popen(["true"])
    try:
        deadline = time.monotonic() + 10
        while "zombie" not in Path(f"/proc/{child.pid}/status").read_text().lower():
            assert time.monotonic() < deadline, "`true` never exited"
            time.sleep(0.01)
        assert ProcessIdentity.of(child.pid) is None
        assert ProcessIdentity.of(os.getpid()) is not None
    finally:
        child.wait()
