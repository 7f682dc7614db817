"""``sealtrail``: one command, one subcommand per job.

Exit codes (the same for every subcommand):
  0  ok
  1  verification failed: the evidence does not check out (and nothing else)
  2  usage, configuration, input or I/O error: a file that is not what the command checks,
     a service that cannot be reached; nothing was checked
  3  internal error: a sealtrail bug (one line; the traceback with --debug)
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Sequence

from sealtrail import __version__
from sealtrail.cli.commands import COMMANDS
from sealtrail.cli.common import EscapingStdout
from sealtrail.core.disclosure import escape_control, mask_urls_in
from sealtrail.errors import IntegrityError, SealtrailError, VerificationFailedError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

EPILOG = """\
Typical session on the embedded default (no configuration needed):
  sealtrail demo                         the whole pipeline end to end, then verify
  sealtrail dev up                       start broker + registry for local development
  sealtrail keys init                    create signing keys in .sealtrail/keys
  sealtrail seal & sealtrail archive &   run the stages
  sealtrail verify .sealtrail/archive --keys .sealtrail/keys/public.json

Configuration: --config FILE (TOML, default ./sealtrail.toml), SEALTRAIL_* environment
variables; see docs/configuration.md. Every command takes the archive, the search index and
the keys from the settings archive_url, index_url and keys_dir (default: under .sealtrail/),
says which it used, and names it in its errors; --archive, --index, --keys override them for
one run. Every command: docs/cli.md.

Exit codes: 0 ok, 1 verification failed (and nothing else), 2 usage, input or I/O error,
3 internal error (a bug; --debug shows the traceback).
"""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command in :data:`COMMANDS`, in the table's order."""
    parser = argparse.ArgumentParser(
        prog="sealtrail",
        description="Tamper-evident audit trail: emit, seal, archive, verify.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sealtrail {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--debug", action="store_true",
                        help="on an internal error (exit 3), print the traceback")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        module = importlib.import_module(f"sealtrail.cli.{command.module}")
        configure: Callable[[argparse.ArgumentParser], None] = getattr(module, command.configure)
        configure(sub.add_parser(name, help=command.summary))
    return parser


def safe_message(exc: BaseException) -> str:
    """An error for the terminal, on one line with its notes (the locations the command
    used, a hint): secrets in URLs masked, control characters escaped."""
    notes = "; ".join(getattr(exc, "__notes__", ()))
    text = f"{exc} [{notes}]" if notes else str(exc)
    return escape_control(mask_urls_in(text), keep_newlines=True)


def _masking_filter(record: logging.LogRecord) -> bool:
    """Mask URL secrets in every log line of the CLI's processes (a connection error of a
    library may quote the URL it was given)."""
    message = record.getMessage()
    masked = mask_urls_in(message)
    if masked != message:
        record.msg, record.args = masked, None
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the only place that turns outcomes into exit codes. A handler
    returns when all went well and raises otherwise."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_masking_filter)
    for noisy in ("botocore", "httpx", "httpx2", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stdout = sys.stdout
    sys.stdout = EscapingStdout(stdout)  # type: ignore[assignment]
    try:
        args.func(args)
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_USAGE
    except Exception as exc:
        return exit_code(exc, debug=args.debug)
    finally:
        sys.stdout = stdout


def exit_code(exc: Exception, *, debug: bool) -> int:
    """Report ``exc`` on stderr in one line and return its exit code: 1 when the evidence
    failed (and nothing else), 2 for usage, configuration, input or I/O errors, 3 for
    anything unexpected (a bug, never mistaken for failed evidence)."""
    if isinstance(exc, IntegrityError | VerificationFailedError):
        code, prefix = EXIT_FAILED, ""
    elif isinstance(exc, SealtrailError):
        code, prefix = EXIT_USAGE, ""
    elif isinstance(exc, OSError):  # a file or socket the command was pointed at
        code, prefix = EXIT_USAGE, "I/O error: "
    else:
        return internal_error(exc, debug=debug)
    print(f"sealtrail: {prefix}{safe_message(exc)}", file=sys.stderr)
    return code


def internal_error(exc: BaseException, *, debug: bool) -> int:
    """Report an unexpected exception in one line (its type and where it was raised; the
    message and traceback only with --debug, since a message may quote data) and return
    :data:`EXIT_INTERNAL`."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    print(f"sealtrail: internal error: {type(exc).__name__}{where} (a sealtrail bug; run "
          "again with --debug for the traceback and report it)", file=sys.stderr)
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
