"""Helpers shared by the subcommands: settings, the locations a command uses (archive,
index, keys), and output."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sealtrail.config import Settings, load_settings
from sealtrail.errors import ConfigError, SealtrailError


def settings_from(args: argparse.Namespace, **overrides: Any) -> Settings:
    return load_settings(getattr(args, "config", None), **overrides)


# -- locations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """Where a command reads or writes one thing, and why there: a command-line option,
    a setting (sealtrail.toml or SEALTRAIL_*), or the default under ``home``."""

    what: str  # "archive", "index", "keyring", "keys directory"
    where: str
    origin: str

    def __str__(self) -> str:
        return f"{self.what} {self.where} ({self.origin})"


def _origin(option: str, explicit: str | None, setting: str, value: str, default: str) -> str:
    if explicit:
        return option
    if value:
        return f"setting {setting}"
    return f"the default {default}; set {setting} in sealtrail.toml or pass {option}"


def archive_location(args: argparse.Namespace, settings: Settings,
                     explicit: str | None = None) -> Location:
    """The archive a command uses: ``explicit`` (a positional ARCHIVE), ``--archive``, the
    ``archive_url`` setting, or ``<home>/archive``."""
    flag = explicit or getattr(args, "archive", None)
    where = flag or settings.archive
    return Location("archive", where, _origin("--archive", flag, "archive_url",
                                              settings.archive_url, "<home>/archive"))


def index_location(args: argparse.Namespace, settings: Settings) -> Location:
    """The search index: ``--index``, the ``index_url`` setting, or ``<home>/index.sqlite``."""
    flag = getattr(args, "index", None)
    where = flag or settings.index_url or str(settings.home / "index.sqlite")
    return Location("index", where, _origin("--index", flag, "index_url", settings.index_url,
                                            "<home>/index.sqlite"))


def keyring_location(args: argparse.Namespace, settings: Settings) -> Location:
    """The trusted public keyring: ``--keys``, or ``public.json`` of the keys directory."""
    from sealtrail.keys import PUBLIC_KEYRING

    flag = getattr(args, "keys", None)
    where = flag or str(settings.keys / PUBLIC_KEYRING)
    return Location("keyring", where, _origin("--keys", flag, "keys_dir", settings.keys_dir,
                                              "<home>/keys/public.json"))


def keys_location(settings: Settings) -> Location:
    """The keys directory (signing, HMAC, master and DLQ keys): ``keys_dir`` or
    ``<home>/keys``."""
    origin = ("setting keys_dir" if settings.keys_dir
              else "the default <home>/keys; set keys_dir in sealtrail.toml")
    return Location("keys directory", str(settings.keys), origin)


def keys_hint(settings: Settings) -> str:
    """A hint for errors of commands that sign: how to create the keys when there are none."""
    from sealtrail.keys import SIGNING_KEY

    if (settings.keys / SIGNING_KEY).exists():
        return ""
    return (f"no signing key in {settings.keys}: create the keys with `sealtrail keys init` "
            "(or point keys_dir at the directory that holds them)")


def archive_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--archive", metavar="URL",
                   help="archive: a directory, file:// or s3://bucket/prefix (default: the "
                   "archive_url setting, else <home>/archive)")


def keyring_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", metavar="KEYRING",
                   help="public keyring the archive is verified against (default: "
                   "<keys_dir>/public.json)")


def index_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", metavar="URL",
                   help="search index: a SQLite file or postgresql://... (default: the "
                   "index_url setting, else <home>/index.sqlite)")


def operator_option(p: argparse.ArgumentParser, recorded: str,
                    who: str = "who runs this") -> None:
    """``--operator``: ``who`` the command names ``recorded`` (e.g. "in the chain-of-custody
    event"); the default is resolved by sealtrail.custody.operator_name."""
    p.add_argument("--operator", metavar="ID",
                   help=f"{who} ({recorded}; default: the operator setting, else the login "
                   "name)")


@contextmanager
def using(*locations: Location, hint: str = "") -> Iterator[None]:
    """Errors raised inside name the locations the command used and where each came from
    (as notes ``main`` prints on the same line); ``hint`` is added unless the message gives
    the same advice already (its backticked command)."""
    try:
        yield
    except (SealtrailError, OSError) as exc:
        message = str(exc)
        for location in locations:
            exc.add_note(f"{location.what}: {location.origin}" if location.where in message
                         else f"{location.what} used: {location}")
        command = hint.split("`")[1] if hint.count("`") >= 2 else hint
        if hint and command not in message:
            exc.add_note(hint)
        raise


def open_archive_at(settings: Settings, location: Location, *, create: bool = False) -> Any:
    """The archive store at ``location``. A local archive directory that does not exist is
    a ConfigError naming the location and its origin (exit 2: an archive that is not there
    is not an empty one), unless ``create`` (the archiver makes it). An S3 archive is
    checked by reading it."""
    from sealtrail.archive import open_archive

    url = location.where
    if not create and not url.startswith("s3://") and not Path(url.removeprefix("file://")).is_dir():
        raise ConfigError(f"no archive at {url} ({location.origin})")
    return open_archive(settings, url)


def archive_and_keyring(args: argparse.Namespace,
                        settings: Settings) -> tuple[Location, Location, Any, Any]:
    """The archive and the trusted keyring a command reads (``--archive``, ``--keys`` or
    the settings): their locations, the store and the loaded keyring. A local archive that
    does not exist is a ConfigError (exit 2), not an empty archive."""
    where, keys = archive_location(args, settings), keyring_location(args, settings)
    store = open_archive_at(settings, where)
    return where, keys, store, load_keyring_at(keys)


def load_keyring_at(location: Location) -> Any:
    """The public keyring at ``location``; a bad or missing keyring names its origin."""
    from sealtrail.keys import load_keyring

    with using(location):
        return load_keyring(Path(location.where))


# -- input and output -------------------------------------------------------------------------


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
