"""The ``workbench`` command line.

Each module in this package adds its own subcommands through a ``register(subparsers)``
function and is discovered automatically, so a feature's commands live beside nothing else.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys

from workbench import __version__
from workbench.errors import WorkbenchError

#: Exit codes of every command (also in ``workbench --help`` and the README).
EXIT_OK = 0
#: An error stopped the command (a bad argument, a missing file, nothing could be scored).
EXIT_ERROR = 1
#: The command line itself is malformed (argparse).
EXIT_USAGE = 2
#: The command finished and wrote its results, but some units (model x dataset) failed;
#: ``--allow-failures`` turns this into 0.
EXIT_PARTIAL = 3
#: Interrupted (Ctrl-C, SIGINT); every write is atomic, so the same command resumes the work.
EXIT_INTERRUPTED = 130
#: The output was closed early (e.g. ``workbench cache list | head -1``); nothing is printed.
EXIT_BROKEN_PIPE = 141

EPILOG = f"""exit codes:
  {EXIT_OK}    success
  {EXIT_ERROR}    error: a bad argument, a missing or unreadable file, or nothing could be scored
       (one line on stderr names the argument or file and what was expected)
  {EXIT_USAGE}    malformed command line
  {EXIT_PARTIAL}    results written, but some units (model x dataset) failed: each is listed on
       stderr and kept in scores.csv with its error; --allow-failures exits {EXIT_OK} instead
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C): run the same command again to resume
  {EXIT_BROKEN_PIPE}  output closed early (e.g. piped into `head`)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Compare deep networks' representations with visual-cortex recordings.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe raises here, inside the handler below, not at exit
        return code
    except WorkbenchError as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())  # one line
        print(f"workbench {args.command}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush does not raise again."""
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError):
        pass
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass
