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
import traceback

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


#: One or more example command lines per subcommand (shown under "example:" in its --help).
EXAMPLES = {
    "cache": "workbench cache list\nworkbench cache clear --model resnet18",
    "cache list": "workbench cache list --dir /big/disk/workbench/activations",
    "cache clear": "workbench cache clear --model resnet18",
    "compare-models": "workbench compare-models resnet18 sew_resnet18 --datasets cowley2023_v4 --out runs/b",
    "data": "workbench data list\nworkbench data fetch cowley2023_v4 --mirror ../shared/data\n"
            "workbench data info cowley2023_v4",
    "data list": "workbench data list",
    "data fetch": "workbench data fetch cowley2023_v4 --mirror ../shared/data",
    "data info": "workbench data info cowley2023_v4 -o session=201025",
    "demo": "workbench demo --out reports/demo\nworkbench demo --weights imagenet",
    "figures": "workbench figures runs/a --out runs/a/figures_again",
    "methods": "workbench methods list",
    "methods list": "workbench methods list",
    "models": "workbench models list --family snn --study\nworkbench models weights resnet18",
    "models list": "workbench models list --family snn --pattern 'sew_*'",
    "models weights": "workbench models weights resnet18 sew_resnet18",
    "report": "workbench report --models sew_resnet18 resnet18 --datasets cowley2023_v4 --out runs/a",
    "report-run": "workbench report-run runs/lats",
    "score": "workbench score --models sew_resnet18 resnet18 --datasets cowley2023_v4 --out runs/a\n"
             "workbench score --models runs/lats resnet18 --datasets cowley2023_v4 --out runs/v4"
             "   # a training run directory as a model\n"
             "workbench score --models my_package.models:my_net --datasets kriegeskorte2008_92 --out runs/mine "
             "--device cuda:0",
    "study": "workbench study list\nworkbench study run huang2023 --out runs/huang2023",
    "study list": "workbench study list",
    "study run": "workbench study run huang2023 --out runs/huang2023 --models resnet18 sew_resnet18",
    "train": "workbench train lats --preset tiny --out runs/lats --report\n"
             "workbench train lats --preset paper --device cuda:0 --out runs/lats_paper --set epochs=10",
}


def _document(parser: argparse.ArgumentParser, path: str = "") -> None:
    """Give every subcommand under ``parser`` a description (its one-line help, where it has
    none of its own) and its :data:`EXAMPLES` as an epilog, recursively."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            command = f"{path} {name}".strip()
            sub.formatter_class = argparse.RawDescriptionHelpFormatter
            if sub.description is None and helps.get(name):
                sub.description = helps[name][0].upper() + helps[name][1:] + "."
            lines = EXAMPLES.get(command, "").splitlines()
            if lines:
                examples = "\n".join(f"  {line}" for line in lines)
                heading = "examples:" if len(lines) > 1 else "example:"
                sub.epilog = "\n\n".join(filter(None, [sub.epilog, f"{heading}\n{examples}"]))
            _document(sub, command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Compare deep networks' representations with visual-cortex recordings.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log at INFO level, and print the traceback of an error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        importlib.import_module(f"{__name__}.{module.name}").register(subparsers)
    _document(parser)
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
        if args.verbose:  # the traceback, for a bug report; without -v only the line below
            traceback.print_exc()
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
