"""The command table and the one exit-code mapper (sealtrail.cli.commands, cli.main)."""

from __future__ import annotations

import argparse
import pkgutil

import pytest

import sealtrail.cli as cli_package
from sealtrail.cli import main as cli_main
from sealtrail.cli.commands import COMMANDS
from sealtrail.cli.main import build_parser, exit_code, main
from sealtrail.errors import (
    ConfigError,
    DataError,
    IntegrityError,
    MalformedInputError,
    SealtrailError,
    TransportError,
    VerificationFailedError,
)


def _subcommands(parser: argparse.ArgumentParser) -> list[str]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(action.choices)


def test_help_lists_exactly_the_table_in_its_order() -> None:
    """`sealtrail --help` shows every command of COMMANDS, in the table's order, with the
    table's summary; nothing is discovered behind the table's back."""
    parser = build_parser()
    assert _subcommands(parser) == list(COMMANDS)
    text = parser.format_help()
    listed = [line.split()[0] for line in text.splitlines()
              if line.startswith("    ") and not line.startswith("     ")]
    assert listed == list(COMMANDS)
    for command in COMMANDS.values():
        assert command.summary.split()[0] in text


def test_every_command_module_is_in_the_table_and_every_row_resolves() -> None:
    """Each run_<family> module defines at least one command of the table, and each row
    names a module and a configure function that exist and give the command a handler."""
    modules = {m.name for m in pkgutil.iter_modules(cli_package.__path__)
               if m.name.startswith("run_")}
    assert modules == {c.module for c in COMMANDS.values()}
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in action.choices.items():
        assert sub.description, f"{name} has no description for its --help"


@pytest.mark.parametrize(("exc", "code"), [
    (IntegrityError("a hash does not match"), 1),
    (VerificationFailedError("2 chains broken"), 1),
    (MalformedInputError("not JSON"), 2),
    (ConfigError("no archive at /x"), 2),
    (TransportError("broker unreachable"), 2),
    (DataError("bad data"), 2),
    (SealtrailError("anything else of ours"), 2),
    (FileNotFoundError(2, "No such file or directory"), 2),
    (KeyError("bug"), 3),
    (ValueError("bug"), 3),
])
def test_main_alone_maps_exceptions_to_exit_codes(exc: Exception, code: int,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """1 only for failed evidence, 2 for usage, input and I/O, 3 for anything unexpected,
    each reported in one line on stderr."""
    assert exit_code(exc, debug=False) == code
    err = capsys.readouterr().err
    assert err.startswith("sealtrail: ") and len(err.splitlines()) == 1


def test_notes_appear_on_the_same_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Locations a command adds to an error (as exception notes) are printed with it."""
    exc = ConfigError("no usable checkpoint in the archive")
    exc.add_note("archive used: archive /tmp/a (--archive)")
    assert exit_code(exc, debug=False) == 2
    assert capsys.readouterr().err == ("sealtrail: no usable checkpoint in the archive "
                                       "[archive used: archive /tmp/a (--archive)]\n")


def test_a_handler_that_raises_gets_its_code_from_main(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A handler returns nothing on success and raises otherwise; main turns that into the
    exit code (run through main itself, with a handler that raises)."""
    outcomes = {"ok": None, "failed": VerificationFailedError("1 chain broken"),
                "usage": ConfigError("bad option"), "bug": ZeroDivisionError("bug")}
    real = cli_main.build_parser

    def parser_with(outcome: str) -> argparse.ArgumentParser:
        def handler(args: argparse.Namespace) -> None:
            if outcomes[outcome] is not None:
                raise outcomes[outcome]  # type: ignore[misc]

        parser = real()
        parser.set_defaults(func=handler)
        for sub in parser._actions:
            if isinstance(sub, argparse._SubParsersAction):
                sub.choices["config"].set_defaults(func=handler)
                for action in sub.choices["config"]._actions:
                    if isinstance(action, argparse._SubParsersAction):
                        action.choices["show"].set_defaults(func=handler)
        return parser

    for outcome, code in (("ok", 0), ("failed", 1), ("usage", 2), ("bug", 3)):
        monkeypatch.setattr(cli_main, "build_parser", lambda o=outcome: parser_with(o))
        assert main(["config", "show"]) == code, outcome
    err = capsys.readouterr().err
    assert "sealtrail: 1 chain broken" in err and "sealtrail: bad option" in err
    assert "internal error: ZeroDivisionError" in err


def test_no_handler_chooses_an_exit_code() -> None:
    """No module under sealtrail/cli/ but main returns or exits with a number."""
    import inspect
    import re

    for name in {c.module for c in COMMANDS.values()}:
        module = __import__(f"sealtrail.cli.{name}", fromlist=["x"])
        source = inspect.getsource(module)
        assert not re.search(r"\breturn [0-9]\b|sys\.exit\(|-> int:\n", source), name


def test_the_docs_name_only_real_commands_and_docs_cli_names_them_all() -> None:
    """README.md and docs/cli.md teach commands that exist; docs/cli.md lists every one."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    readme = (root / "README.md").read_text()
    named = set(re.findall(r"`sealtrail ([a-z][a-z-]+)", readme))
    assert named and named <= set(COMMANDS), named - set(COMMANDS)
    cli_doc = (root / "docs" / "cli.md").read_text()
    rows = [line for line in cli_doc.splitlines() if line.startswith("| `")]
    documented = {name for row in rows
                  for name in re.findall(r"`([a-z][a-z-]+)[` \[]", row.split("|")[1])}
    assert documented == set(COMMANDS), documented ^ set(COMMANDS)
    for command in COMMANDS.values():
        assert f"`{command.module}`" in cli_doc
