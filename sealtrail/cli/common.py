"""Helpers shared by the subcommands."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from sealtrail.config import Settings, load_settings
from sealtrail.errors import ConfigError


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(getattr(args, "config", None), **overrides)


def read_input(path: str) -> bytes:
    """The bytes of a file named on the command line; ConfigError (exit 2) if unreadable."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None


def print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def stop_on_signals(stop: Any) -> threading.Event:
    """Call ``stop()`` on SIGTERM or SIGINT; returns an event set at the same time."""
    done = threading.Event()

    def handler(signum: int, frame: object) -> None:
        done.set()
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return done


class EscapingStdout:
    """``sys.stdout`` with control characters escaped (newlines and tabs kept): what the
    tools print comes from events and archives a hostile producer or archive writer may
    have filled with terminal escape sequences (docs/search.md). Binary output through
    ``.buffer`` (replay to ``-``) is left alone; it is canonical JSON, escaped already."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        from sealtrail.core.disclosure import escape_control

        self._stream.write(escape_control(text, keep_newlines=True))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
