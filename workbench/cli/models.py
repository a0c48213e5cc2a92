"""``workbench models list`` (the model zoo by family: study names, layer counts) and ``workbench models weights``."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="the model zoo")
    commands = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = commands.add_parser("list", help="list registered models by family")
    listing.add_argument("--family", choices=("snn", "cnn", "vit"), help="only this family")
    listing.add_argument("--pattern", help="shell-style name filter, e.g. 'sew_*'")
    listing.add_argument("--study", action="store_true", help="only the reference study's 81 networks")
    listing.set_defaults(func=_list)
    weights = commands.add_parser(
        "weights", help="where each model's published weights come from, the local path, and whether present and verified")
    weights.add_argument("names", nargs="*", metavar="NAME", help="models to list (default: every model)")
    weights.add_argument("--family", choices=("snn", "cnn", "vit"), help="only this family")
    weights.set_defaults(func=_weights)

    compare = subparsers.add_parser(
        "compare-models",
        help="layer x layer CKA/RSA between two networks on one stimulus set (heatmaps, .nc, .csv)")
    compare.add_argument("model_a", metavar="A", help="a model name, or package.module:factory")
    compare.add_argument("model_b", metavar="B", help="a model name, or package.module:factory (may equal A)")
    dataset = compare.add_mutually_exclusive_group(required=True)  # --datasets, as `score` spells it
    dataset.add_argument("--datasets", dest="dataset", metavar="DATASET",
                         help="dataset name or manifest path whose stimuli both models see")
    dataset.add_argument("--dataset", dest="dataset", help=argparse.SUPPRESS)  # the former spelling
    compare.add_argument("--out", required=True, metavar="DIR", help="where to write the results")
    compare.add_argument("--metrics", nargs="+", default=["cka", "rsa"], choices=("cka", "rsa"), metavar="METRIC",
                         help="cka and/or rsa (default: both)")
    compare.add_argument("--weights", nargs="+", default=["random"], metavar="WEIGHTS",
                         help='"random" (default), "imagenet" or a checkpoint path for both; MODEL=WEIGHTS per model')
    compare.add_argument("--layers-a", nargs="+", default=None, metavar="LAYER", help="layers of A (default: all)")
    compare.add_argument("--layers-b", nargs="+", default=None, metavar="LAYER", help="layers of B (default: all)")
    compare.add_argument("--protocol", nargs="+", action="extend", default=[], metavar="FIELD=VALUE",
                         help="override Protocol fields (z-scoring, time_steps, batch_size, seed): several "
                              "values; the flag may be repeated")
    compare.add_argument("--device", default="cpu", metavar="DEVICE", help='"cpu" (default), "cuda" or "cuda:N"')
    compare.set_defaults(func=_compare)


def _list(args: argparse.Namespace) -> int:
    """Per family, one line per model: name, family, the study's name (or -), layers, T, description.

    Models are built on torch's meta device only (no memory, no weights).
    """
    from workbench.models import (FAMILIES, list_models, model_aliases, model_info, model_study_name,
                                  study_models)

    families = [args.family] if args.family else list(FAMILIES)
    for family in families:
        names = list_models(family=family, pattern=args.pattern)
        infos = [model_info(name) for name in names if model_study_name(name) or not args.study]
        if not infos:
            continue
        print(f"{family} ({len(infos)} models)")
        print(f"  {'name':<34} {'family':<6} {'study name':<34} {'layers':>6}  {'T':<4} description")
        for info in infos:
            t = f"T={info.time_steps}" if info.family == "snn" else ""
            aliases = model_aliases(info.name)
            also = f" (also: {', '.join(aliases)})" if aliases else ""
            print(f"  {info.name:<34} {info.family:<6} {info.study or '-':<34} {len(info.layers):>3} layers  "
                  f"{t:<4} {info.description}{also}")
    if args.pattern is None:
        zoo = set(list_models())
        missing = [n for f in families for n in study_models(f) if n not in zoo]
        if missing:
            print(f"# {len(missing)} of the study's networks are not in the zoo: {', '.join(missing)}")
    return 0


def _weights(args: argparse.Namespace) -> int:
    """One tab-separated line per model: name, status, expected local path, source."""
    import sys

    from workbench.models import list_models, model_family
    from workbench.models.weights import weights_file_status, weights_source

    names = args.names or list_models(family=args.family)
    undeclared, mismatched = [], []
    print("model\tstatus\tpath\tsource")
    for name in names:
        if args.family and model_family(name) != args.family:
            continue
        source = weights_source(name)
        if source is None:
            undeclared.append(name)
            continue
        status = weights_file_status(source)
        where = source.url or f"by hand: {source.origin}"
        published = f" (sha256 {source.sha256}...)" if source.sha256 else " (no published sha256)"
        print(f"{name}\t{status}\t{source.path}\t{where}{published}")
        if status.startswith("HASH MISMATCH"):
            mismatched.append(str(source.path))
    if undeclared:
        print(f"# {len(undeclared)} model(s) declare no published weights: {', '.join(undeclared)}")
    if mismatched:
        print(f"error: {len(mismatched)} file(s) differ from their published sha256: {', '.join(mismatched)}",
              file=sys.stderr)
        return 1
    return 0


def _compare(args: argparse.Namespace) -> int:
    from workbench.analysis import Protocol
    from workbench.analysis.checks import check_device, check_out_dir, weights_by_model
    from workbench.analysis.model_comparison import compare_models
    from workbench.data import read_manifest
    from workbench.models import check_model_names, model_info
    from workbench.reports.model_comparison import save_model_similarity

    check_out_dir(args.out)
    models = list(dict.fromkeys([args.model_a, args.model_b]))
    check_model_names(models)
    read_manifest(args.dataset)
    protocol = Protocol().replace(**Protocol.parse_overrides(args.protocol))
    weights = weights_by_model(args.weights, models)
    from workbench.analysis.checks import check_weights

    check_weights(weights)
    device = check_device(args.device)
    for model, layers in ((args.model_a, args.layers_a), (args.model_b, args.layers_b)):
        declared = model_info(model).layers
        bad = [layer for layer in layers or () if layer not in declared]
        if bad:
            from workbench.errors import ValidationError

            raise ValidationError(f"layers {bad} are not analysis layers of {model}; expected some of {list(declared)}")
    similarity = compare_models(args.model_a, args.model_b, args.dataset, metrics=args.metrics, protocol=protocol,
                                weights_a=weights[args.model_a], weights_b=weights[args.model_b],
                                layers_a=args.layers_a, layers_b=args.layers_b, device=device)
    written = save_model_similarity(similarity, args.out)
    print(f"wrote {len(written)} files to {args.out} ({similarity.sizes['layer_a']} x "
          f"{similarity.sizes['layer_b']} layers, {', '.join(args.metrics)})")
    return 0
