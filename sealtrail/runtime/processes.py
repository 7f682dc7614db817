"""Knowing that a process id still names the process we started (Linux ``/proc``).

A PID in a state file proves nothing after a reboot or once the process exited and the
kernel reused its number: signalling it may kill something unrelated. So whoever starts a
background process records its identity: the boot it ran in, its start time (clock ticks
since that boot, from ``/proc/<pid>/stat``) and its command line. Before signalling, the
same three are read again; a process is signalled only when all match. Where ``/proc``
cannot be read, nothing can be proven and nothing is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ProcessIdentity", "stop_if_same"]

_PROC = Path("/proc")


def _boot_id() -> str | None:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the name may hold spaces and parentheses
    return int(fields[19]) if len(fields) > 19 else None  # field 22: starttime


def _cmdline(pid: int) -> tuple[str, ...] | None:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    return tuple(part.decode("utf-8", "replace") for part in raw.split(b"\0") if part)


@dataclass(frozen=True)
class ProcessIdentity:
    """Who ``pid`` was when it was recorded."""

    pid: int
    boot_id: str
    start_ticks: int
    cmdline: tuple[str, ...]

    @classmethod
    def of(cls, pid: int) -> ProcessIdentity | None:
        """The identity of running process ``pid``; None when it cannot be read."""
        boot, ticks, cmd = _boot_id(), _start_ticks(pid), _cmdline(pid)
        if boot is None or ticks is None or not cmd:  # no command line: a zombie, a kernel
            return None  # thread, or a process in the middle of its exec
        return cls(pid, boot, ticks, cmd)

    def why_not_same(self) -> str | None:
        """None when ``pid`` is still this process; else why it cannot be proven to be."""
        now = ProcessIdentity.of(self.pid)
        if now is None:
            return f"process {self.pid} is gone (or /proc cannot be read)"
        if now.boot_id != self.boot_id:
            return f"process {self.pid} is from another boot"
        if now.start_ticks != self.start_ticks:
            return f"process {self.pid} was started at another time: the id was reused"
        if now.cmdline != self.cmdline:
            return f"process {self.pid} runs another command line"
        return None

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "boot_id": self.boot_id, "start_ticks": self.start_ticks,
                "cmdline": list(self.cmdline)}

    @classmethod
    def from_json(cls, doc: Any) -> ProcessIdentity | None:
        """An identity from a state file; None when the record is missing or malformed."""
        try:
            cmdline = tuple(str(part) for part in doc["cmdline"])
            pid, ticks, boot = doc["pid"], doc["start_ticks"], doc["boot_id"]
        except (KeyError, TypeError):
            return None
        if not (isinstance(pid, int) and isinstance(ticks, int) and isinstance(boot, str)):
            return None
        return cls(pid, boot, ticks, cmdline)


def stop_if_same(identity: ProcessIdentity, timeout: float = 10.0) -> str | None:
    """SIGTERM the process, then SIGKILL it if it has not exited within ``timeout``, each
    signal only after checking that it is still the recorded process. Returns None when
    stopped (or already gone), else why it was left alone."""
    why = identity.why_not_same()
    if why is not None:
        return None if ProcessIdentity.of(identity.pid) is None else why
    with contextlib.suppress(ProcessLookupError):
        os.kill(identity.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(identity.pid, os.WNOHANG)  # reap it when it is our child
        if identity.why_not_same() is not None:
            return None
        time.sleep(0.05)
    if identity.why_not_same() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(identity.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(identity.pid, 0)
    return None
