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
import pkgutil
import sys
import traceback
from collections.abc import Sequence
from types import ModuleType

from sealtrail import __version__
from sealtrail.cli.common import EscapingStdout
from sealtrail.core.disclosure import escape_control, mask_urls_in
from sealtrail.errors import IntegrityError, SealtrailError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

EPILOG = """\
Typical session on the embedded default (no configuration needed):
  sealtrail demo                         the whole pipeline end to end, then verify
  sealtrail dev up                       start broker + registry for local development
  sealtrail keys init                    create signing keys in .sealtrail/keys
  sealtrail seal & sealtrail archive &   run the stages
  sealtrail verify .sealtrail/archive --keys .sealtrail/keys/public.json

Configuration: --config FILE (TOML), SEALTRAIL_* environment variables; see
docs/configuration.md. Exit codes: 0 ok, 1 verification failed (and nothing else), 2 usage,
input or I/O error, 3 internal error (a bug; --debug shows the traceback).
"""


def build_parser() -> argparse.ArgumentParser:
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
    for module in _command_modules():
        module.register(sub)
    return parser


# The order commands appear in `sealtrail --help`: the pipeline first, then the tools.
HELP_ORDER = (
    "run_demo", "run_stack", "run_stages", "run_tools", "run_keys", "run_schemas",
    "run_archive_tools", "run_replay", "run_search", "run_report", "run_forget",
    "run_monitor", "run_status", "run_config",
)


def _command_modules() -> list[ModuleType]:
    """Every ``sealtrail/cli/run_*.py``: each defines ``register(subparsers)``."""
    import sealtrail.cli as package

    found = {m.name for m in pkgutil.iter_modules(package.__path__) if m.name.startswith("run_")}
    names = [n for n in HELP_ORDER if n in found] + sorted(found - set(HELP_ORDER))
    return [importlib.import_module(f"sealtrail.cli.{name}") for name in names]


def safe_message(exc: BaseException) -> str:
    """An error for the terminal: secrets in URLs masked, control characters escaped."""
    return escape_control(mask_urls_in(str(exc)), keep_newlines=True)


def _masking_filter(record: logging.LogRecord) -> bool:
    """Mask URL secrets in every log line of the CLI's processes (a connection error of a
    library may quote the URL it was given)."""
    message = record.getMessage()
    masked = mask_urls_in(message)
    if masked != message:
        record.msg, record.args = masked, None
    return True


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the only place that turns outcomes into exit codes."""
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
        code: int = args.func(args)
        return code
    except KeyboardInterrupt:
        return EXIT_USAGE
    except IntegrityError as exc:  # the evidence does not check out, whatever the command
        print(f"sealtrail: {safe_message(exc)}", file=sys.stderr)
        return EXIT_FAILED
    except SealtrailError as exc:
        print(f"sealtrail: {safe_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a file or socket the command was pointed at
        print(f"sealtrail: I/O error: {safe_message(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a bug: never mistaken for failed evidence (exit 1)
        return internal_error(exc, debug=args.debug)
    finally:
        sys.stdout = stdout


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
