"""``workbench study run | list``: a study preset (``huang2023``, or a YAML file) in one command.

``study run`` checks every argument, scores the grid through the same resumable sweep as
``workbench score`` (:func:`workbench.reports.run_study`: finished units in ``OUT/store`` are
loaded, not recomputed; units run largest first under one progress bar), then writes the
report as ``workbench report`` does (:func:`workbench.reports.run_report`).
"""

from __future__ import annotations

import argparse

from workbench.cli.study import add_protocol_argument, add_execution_arguments, finish, parse_protocol


def register(subparsers) -> None:
    study = subparsers.add_parser("study", help="run a study preset (the paper's grid) or list the presets")
    commands = study.add_subparsers(dest="study_command", metavar="{run,list}", required=True)
    run = commands.add_parser(
        "run", help="score a study's models x datasets (resumable) and write its report",
        description="Score a study preset's grid through the resumable sweep, then write its report "
                    "(report.html, figures/, scores.nc, scores.csv). Run it again to resume.")
    run.add_argument("study", metavar="NAME|FILE.yaml", help="a preset (`workbench study list`) or a study YAML file")
    run.add_argument("--out", required=True, metavar="DIR", help="the run directory")
    run.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                     help="run these models instead of the study's (e.g. a subset)")
    run.add_argument("--datasets", nargs="+", default=None, metavar="DATASET",
                     help="run these datasets (names or manifest paths) instead of the study's")
    run.add_argument("--paper-metrics", action="store_true",
                     help="the study's own metrics and protocol only, without our additions "
                          "(CKA, the permutation null)")
    run.add_argument("--weights", nargs="+", default=None, metavar="WEIGHTS",
                     help='as for `workbench score`: "random", "imagenet", a checkpoint, or MODEL=WEIGHTS '
                          "items (default: the study's weights)")
    add_protocol_argument(run)
    add_execution_arguments(run)
    run.set_defaults(func=_run)
    listing = commands.add_parser("list", help="the study presets: name, models, datasets, title")
    listing.set_defaults(func=_list)


def _run(args: argparse.Namespace) -> int:
    from workbench.reports import run_report, run_study

    kwargs, checked = _run_arguments(args)
    models, datasets = checked["models"], checked["datasets"]
    print(f"study {args.study}: {len(models)} model(s) x {len(datasets)} dataset(s) = "
          f"{len(models) * len(datasets)} unit(s), into {args.out}")
    run_study(models, datasets, args.out, **kwargs, rdms=False, checked=checked)  # the RDMs: in the report
    html = run_report(models, datasets, args.out, **{**kwargs, "force": False})  # loads the finished units
    print(f"wrote {html}")
    from workbench.analysis import load_scores

    return finish(args, load_scores(html.parent))


def _run_arguments(args: argparse.Namespace) -> tuple[dict, dict]:
    """``run_study``'s keyword arguments for the study and its overrides, and what
    :func:`~workbench.analysis.checks.check_study` returned for them (all checked now)."""
    from workbench.analysis.checks import check_study
    from workbench.studies import load_study

    study = load_study(args.study)
    models = list(args.models or study.models)
    datasets = list(args.datasets or study.datasets)
    metrics = study.run_metrics(paper_only=args.paper_metrics)
    protocol = {**study.run_protocol(paper_only=args.paper_metrics), **parse_protocol(args.protocol)}
    weights = _weights(args.weights, study.weights, models)
    checked = check_study(models, datasets, args.out, metrics=metrics, weights=weights, protocol=protocol,
                          device=args.device, executor=args.dask, resources=True)
    kwargs = {"metrics": metrics, "weights": weights, "protocol": protocol, "executor": args.dask,
              "force": args.force, "device": args.device}
    return kwargs, checked


def _weights(items: list[str] | None, default: str, models: list[str]):
    """``--weights`` items over the study's weights: one spelling for all, or ``{model: weights}``."""
    from workbench.analysis.checks import weights_by_model

    if items is None:
        return default
    per_model = weights_by_model([default, *items] if all("=" in item for item in items) else items, models)
    values = set(per_model.values())
    if len(values) == 1:
        return next(iter(values)) or "random"
    return {model: value or "random" for model, value in per_model.items()}


def _list(args: argparse.Namespace) -> int:
    from workbench.studies import list_studies, load_study

    for name in list_studies():
        study = load_study(name)
        print(f"{study.name:<12} {len(study.models):>3} models x {len(study.datasets)} datasets "
              f"({', '.join(study.datasets)}); weights {study.weights}: {study.title}")
    return 0
