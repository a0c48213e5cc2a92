"""``workbench score | report | figures | demo``: run a study, report it, redraw its figures.

- ``score``: the sweep only; writes ``scores.nc``, ``scores.csv`` and ``rdms.nc`` to ``--out``.
- ``report``: executes ``notebooks/02_similarity_report.ipynb`` with papermill into
  ``OUT/report.ipynb`` and converts it to ``OUT/report.html`` (figures in ``OUT/figures``).
- ``figures RUN_DIR``: redraws every figure of a saved run from its files alone.
- ``demo``: the two small real datasets, an SNN, a CNN and a ViT, reported to ``reports/demo``.
"""

from __future__ import annotations

import argparse
import sys


def _add_study_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--models", nargs="+", required=required, metavar="MODEL",
                        help="model names (see workbench.models.list_models())")
    parser.add_argument("--datasets", nargs="+", required=required, metavar="DATASET",
                        help="dataset names or manifest paths (see `workbench data list`)")
    parser.add_argument("--metrics", nargs="+", default=None, metavar="METRIC",
                        help="metric names (default: every metric, each where it applies)")
    parser.add_argument("--out", required=required, metavar="DIR", help="the run directory")
    _add_weights_argument(parser)
    _add_protocol_argument(parser)
    add_execution_arguments(parser)


def _add_protocol_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a Protocol field, e.g. --protocol bootstrap=100 (repeatable)")


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dask`` and ``--force``, passed to the sweep as ``executor=`` and ``force=``."""
    parser.add_argument("--dask", default="serial", metavar="EXECUTOR",
                        help='where the sweep\'s units run: "serial" (default), "local:N" (a local '
                             'Dask cluster of N processes) or "tcp://HOST:PORT" (an existing scheduler)')
    parser.add_argument("--force", action="store_true",
                        help="recompute units the run directory's store already holds")


def _add_weights_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", default="random", metavar="WEIGHTS",
                        help='"random" (default: random initialisation, no download), "imagenet" '
                             "(published weights) or a checkpoint path")


def register(subparsers) -> None:
    score = subparsers.add_parser("score", help="score models against neural data (scores.nc, scores.csv)")
    _add_study_arguments(score)
    score.set_defaults(func=_score)

    report = subparsers.add_parser(
        "report", help="run the similarity report notebook (report.ipynb, report.html, figures/)")
    _add_study_arguments(report)
    report.set_defaults(func=_report)

    figures = subparsers.add_parser("figures", help="redraw every figure of a saved run from its files")
    figures.add_argument("run_dir", metavar="RUN_DIR", help="a directory holding scores.nc")
    figures.add_argument("--out", default=None, metavar="DIR", help="where to write (default RUN_DIR/figures)")
    figures.set_defaults(func=_figures)

    demo = subparsers.add_parser(
        "demo", help="score an SNN, a CNN and a ViT on the two small real datasets (reports/demo)")
    demo.add_argument("--out", default="reports/demo", metavar="DIR", help="default: reports/demo")
    _add_weights_argument(demo)
    _add_protocol_argument(demo)
    add_execution_arguments(demo)
    demo.set_defaults(func=_demo)


def parse_protocol(pairs: list[str]) -> dict:
    """``["bootstrap=100", "zscore=false"]`` -> ``{"bootstrap": 100, "zscore": False}`` (YAML values)."""
    import yaml

    from workbench.errors import ValidationError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValidationError(f"--protocol expects FIELD=VALUE, found {pair!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def _study_kwargs(args: argparse.Namespace) -> dict:
    return {
        "metrics": args.metrics,
        "weights": args.weights,
        "protocol": parse_protocol(args.protocol),
        "executor": args.dask,
        "force": args.force,
    }


def _score(args: argparse.Namespace) -> int:
    from workbench.reports.study import run_study

    scores = run_study(args.models, args.datasets, args.out, **_study_kwargs(args))
    failed = [str(m) for m, e in zip(scores["model"].values, scores["error"].values) if str(e)]
    print(f"wrote {args.out}/scores.nc and scores.csv ({scores.sizes['model']} models, "
          f"{scores.sizes['region']} regions)")
    if failed:
        print(f"models with errors (see scores.csv, column 'error'): {', '.join(failed)}", file=sys.stderr)
    return 0


def _report(args: argparse.Namespace) -> int:
    from workbench.reports.demo import run_report

    html = run_report(args.models, args.datasets, args.out, **_study_kwargs(args))
    print(f"wrote {html}")
    return 0


def _figures(args: argparse.Namespace) -> int:
    from workbench.reports.figures import render_all_figures

    written = render_all_figures(args.run_dir, args.out)
    print(f"wrote {len(written)} files to {written[0].parent}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from workbench.reports.demo import run_demo

    html = run_demo(args.out, weights=args.weights, protocol=parse_protocol(args.protocol),
                    executor=args.dask, force=args.force)
    print(f"wrote {html}")
    return 0
