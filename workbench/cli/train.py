"""``workbench methods list | train | report-run``: train networks with the methods, report runs.

- ``methods list``: one line per method (name, presets, paper).
- ``train METHOD --preset P --out DIR``: a run directory (see docs/training.md); under
  ``torchrun --nproc_per_node N -m workbench train ...`` the processes share the work (DDP);
  ``--smoke``: every phase for 2 steps on CPU on generated files (:mod:`workbench.training.smoke`).
- ``report-run DIR``: the method's papermill report of a finished run (``--report`` of train).
"""

from __future__ import annotations

import argparse

from workbench.analysis.checks import training_device


def register(subparsers) -> None:
    methods = subparsers.add_parser("methods", help="the training methods")
    actions = methods.add_subparsers(dest="methods_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list the training methods, their presets and papers")
    listing.set_defaults(func=_list)

    train = subparsers.add_parser("train", help="train a network with a method into a run directory")
    train.add_argument("method", metavar="METHOD", help="a method (see `workbench methods list`)")
    train.add_argument("--preset", default="tiny", help='"tiny" (CPU, offline, minutes; default) or "paper"')
    train.add_argument("--out", required=True, metavar="DIR", help="the run directory")
    train.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                       help="override config fields, e.g. --set epochs=3 batch_size=64 (several values; the "
                            "flag may be repeated)")
    train.add_argument("--seed", type=int, default=None, help="override the config's seed")
    train.add_argument("--device", type=training_device, default=None, metavar="DEVICE",
                       help='"cpu", "cuda" or "cuda:N", as for `workbench score` (default: the config\'s device)')
    resume = train.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    resume.add_argument("--force", action="store_true", help="delete a previous run in --out and train again")
    train.add_argument("--smoke", action="store_true",
                       help="a smoke run: every phase for 2 steps on CPU at the preset's architecture and "
                            "resolution, on a few generated images in the dataset's format (docs/training.md)")
    train.add_argument("--report", action="store_true", help="then run the method's report (report.html)")
    train.set_defaults(func=_train)

    report = subparsers.add_parser("report-run", help="run a training run's report notebook (report.html)")
    report.add_argument("run_dir", metavar="DIR", help="a finished run directory")
    report.set_defaults(func=_report)


def _list(args: argparse.Namespace) -> int:
    from workbench.methods import get_method, list_methods

    for name in list_methods():
        spec = get_method(name)
        print(f"{name:<14} presets: {', '.join(spec.presets()):<12} {spec.summary}")
        print(f"{'':<14} {spec.paper}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from workbench.training import read_card, train

    out = train(args.method, out=args.out, preset=args.preset, overrides=args.overrides, seed=args.seed,
                device=args.device, resume=args.resume, force=args.force, smoke=args.smoke)
    if not _is_main():
        return 0
    card = read_card(out)
    evaluation = ", ".join(f"{k}={v:.4g}" for k, v in card.get("evaluation", {}).items())
    print(f"trained {card['method']} ({card['architecture']}) into {out}: {evaluation}")
    if args.report:
        return _report(argparse.Namespace(run_dir=out))
    return 0


def _report(args: argparse.Namespace) -> int:
    from workbench.reports.training_report import report_run

    print(f"report: {report_run(args.run_dir)}")
    return 0


def _is_main() -> bool:
    import os

    return int(os.environ.get("RANK", "0")) == 0
