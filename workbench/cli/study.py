"""``workbench score | report | figures | demo``: run a study, report it, redraw its figures.

- ``score``: the sweep only; writes ``scores.nc``, ``scores.csv`` and ``rdms.nc`` to ``--out``.
- ``report``: executes ``notebooks/02_similarity_report.ipynb`` with papermill into
  ``OUT/report.ipynb`` and converts it to ``OUT/report.html`` (figures in ``OUT/figures``).
- ``figures RUN_DIR``: redraws every figure of a saved run from its files alone.
- ``demo``: the two small real datasets, an SNN, a CNN and a ViT, reported to ``reports/demo``.

Every argument is checked before any extraction starts, the data and published weights too
(:func:`workbench.analysis.checks.check_study` with ``resources=True``). When some units (model x dataset) fail, the
results are still written, each failure is listed on stderr and kept in ``scores.csv``, and
the exit code is 3 (``EXIT_PARTIAL``) unless ``--allow-failures`` is given.
"""

from __future__ import annotations

import argparse
import sys


def _add_study_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument("--models", nargs="+", required=required, metavar="MODEL",
                        help="model names (`workbench models list`), training run directories (the --out "
                             "folder of `workbench train`, e.g. runs/lats), or your own model as "
                             "package.module:factory (a factory returning workbench.models.wrap_model(...)) "
                             "or a name declared in the 'workbench.models' entry-point group")
    parser.add_argument("--datasets", nargs="+", required=required, metavar="DATASET",
                        help="dataset names or manifest paths (see `workbench data list`)")
    parser.add_argument("--metrics", nargs="+", default=None, metavar="METRIC",
                        help="metric names (default: every metric, each where it applies)")
    parser.add_argument("--out", required=required, metavar="DIR", help="the run directory")
    parser.add_argument("--layers", nargs="+", default=None, metavar="LAYER",
                        help='score only these layers of every model (default: its declared analysis layers): '
                             'any layer spec on a module of every model, "PATH" (its output), "PATH:input", '
                             '"PATH:out[i]" or "PATH:call[k]". Declared layers come first, in the model\'s '
                             "order and at their depth in it; others follow in the order given, with relative "
                             "depth NaN (left out of depth figures)")
    _add_weights_argument(parser)
    add_protocol_argument(parser)
    add_execution_arguments(parser)


def add_protocol_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", nargs="+", action="extend", default=[], metavar="FIELD=VALUE",
                        help="override Protocol fields, e.g. --protocol bootstrap=100 time_steps=8, or "
                             "permutations=0 to skip the chance level (several values; the flag may be repeated)")


def add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dask`` and ``--force``, passed to the sweep as ``executor=`` and ``force=``."""
    parser.add_argument("--dask", default="serial", metavar="EXECUTOR",
                        help='where the sweep\'s units run: "serial" (default), "local:N" (a local '
                             'Dask cluster of N processes) or "tcp://HOST:PORT" (an existing scheduler)')
    parser.add_argument("--force", action="store_true",
                        help="recompute units the run directory's store already holds")
    parser.add_argument("--device", default="cpu", metavar="DEVICE",
                        help='where the networks run: "cpu" (default), "cuda" or "cuda:N"')
    parser.add_argument("--allow-failures", action="store_true",
                        help="exit 0 even when some units (model x dataset) failed (default: exit 3)")


def _add_weights_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", nargs="+", default=["random"], metavar="WEIGHTS",
                        help='"random" (default: random initialisation, no download), "imagenet" '
                             "(published weights) or a checkpoint path, for every model; "
                             "MODEL=WEIGHTS for one model (e.g. --weights alexnet=alexnet_sd.pth "
                             "cornet_z=random)")


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
    add_protocol_argument(demo)
    add_execution_arguments(demo)
    demo.set_defaults(func=_demo)


def parse_protocol(pairs: list[str]) -> dict:
    """``["bootstrap=100", "zscore=0"]`` -> ``{"bootstrap": 100, "zscore": False}``, each field parsed
    strictly to its type (:meth:`workbench.analysis.Protocol.parse_overrides`)."""
    from workbench.analysis import Protocol

    overrides = Protocol.parse_overrides(pairs)
    Protocol().replace(**overrides)  # the values' ranges, checked now
    return overrides


def _weights(args: argparse.Namespace, models) -> str | dict:
    """``--weights``: one spelling for every model (a str), or ``{model: weights}``."""
    from workbench.analysis.checks import weights_by_model

    per_model = weights_by_model(args.weights, models)
    if len(args.weights) == 1 and len(set(per_model.values())) <= 1 and "=" not in args.weights[0]:
        return args.weights[0]
    return {m: "random" if w is None else w for m, w in per_model.items()}


def _study_kwargs(args: argparse.Namespace, models=None, datasets=None) -> tuple[dict, dict]:
    """The study's keyword arguments, and what :func:`~workbench.analysis.checks.check_study`
    returned for them: every one is checked before any work starts."""
    from workbench.analysis.checks import check_study

    models = args.models if models is None else models
    datasets = args.datasets if datasets is None else datasets
    protocol = parse_protocol(args.protocol)
    weights = _weights(args, models)
    checked = check_study(models, datasets, args.out, metrics=getattr(args, "metrics", None), weights=weights,
                          protocol=protocol, layers=getattr(args, "layers", None), device=args.device,
                          executor=args.dask, resources=True)
    kwargs = {
        "metrics": getattr(args, "metrics", None),
        "weights": weights,
        "protocol": protocol,
        "executor": args.dask,
        "force": args.force,
    }
    if getattr(args, "layers", None):
        kwargs["layers"] = args.layers
    if args.device != "cpu":
        kwargs["device"] = args.device
    return kwargs, checked


def finish(args: argparse.Namespace, scores) -> int:
    """Print the failed units, notes and unscored cells of a run; the exit code (3 when some
    units failed; unscored cells alone do not change it)."""
    import json

    from workbench.analysis.sweeps import failed_units
    from workbench.cli import EXIT_OK, EXIT_PARTIAL

    for note in json.loads(scores.attrs.get("notes", "[]")):
        print(f"note: {note}", file=sys.stderr)
    from workbench.analysis.scores import unscored_summary

    unscored = unscored_summary(scores)  # cells the protocol left unscored, or scored on fewer stimuli
    if unscored:
        print(unscored, file=sys.stderr)
    failed = failed_units(scores)
    for unit in failed:
        print(f"failed: {unit['model']} on {unit['dataset']}: {unit['error']}", file=sys.stderr)
    if not failed:
        return EXIT_OK
    datasets = [d for d in str(scores.attrs.get("datasets", "")).split(",") if d]
    total = scores.sizes["model"] * max(len(datasets), 1)
    tolerated = "; tolerated (--allow-failures)" if args.allow_failures else (
        f"; exit code {EXIT_PARTIAL} (--allow-failures exits 0)")
    print(f"workbench {args.command}: {len(failed)} of {total} unit(s) (model x dataset) failed; their rows "
          f"in {args.out}/scores.csv carry the error{tolerated}", file=sys.stderr)
    return EXIT_OK if args.allow_failures else EXIT_PARTIAL


def _finish_run(args: argparse.Namespace, run_dir) -> int:
    from pathlib import Path

    from workbench.analysis import load_scores

    if not (Path(run_dir) / "scores.nc").is_file():
        return 0  # the notebook wrote no scores (it raised, or was replaced in a test)
    return finish(args, load_scores(run_dir))


def _score(args: argparse.Namespace) -> int:
    from workbench.reports.study import run_study

    kwargs, checked = _study_kwargs(args)
    scores = run_study(args.models, args.datasets, args.out, **kwargs, checked=checked)  # checked once
    print(f"wrote {args.out}/scores.nc and scores.csv ({scores.sizes['model']} models, "
          f"{scores.sizes['region']} regions)")
    return finish(args, scores)


def _report(args: argparse.Namespace) -> int:
    from workbench.reports.demo import run_report

    kwargs, _ = _study_kwargs(args)  # the notebook's run_study checks them again, in its own kernel
    html = run_report(args.models, args.datasets, args.out, **kwargs)
    print(f"wrote {html}")
    return _finish_run(args, html.parent)


def _figures(args: argparse.Namespace) -> int:
    from workbench.analysis.checks import check_out_dir
    from workbench.reports.figures import render_all_figures

    if args.out is not None:
        check_out_dir(args.out)
    written = render_all_figures(args.run_dir, args.out)
    print(f"wrote {len(written)} files to {written[0].parent}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from workbench.reports.demo import DEMO_DATASETS, DEMO_MODELS, run_demo

    kwargs, _ = _study_kwargs(args, DEMO_MODELS, DEMO_DATASETS)
    html = run_demo(args.out, weights=kwargs["weights"], protocol=kwargs["protocol"],
                    executor=args.dask, force=args.force, **({"device": args.device} if args.device != "cpu" else {}))
    print(f"wrote {html}")
    return _finish_run(args, html.parent)
